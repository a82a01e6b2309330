"""The status view: a pod's status from the worker's memory, reported only when it changes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from corral.objects import Obj
from nodeagent.podstate import ContainerState, PodHost
from nodeagent.prober import ProberManager
from nodeagent.runtime.base import ContainerRecord
from nodeagent.status import ContainerView, build_status, pod_phase
from nodeagent.volumes import pod_dir

# The kubelet's cap on a termination message.
_MESSAGE_LIMIT = 4096


def termination_log(pods_dir: Path, uid: str, container: str, restart: int) -> Path:
    """The host file one instance of a container writes its termination message to."""
    return pod_dir(pods_dir, uid) / "containers" / container / f"termination-{restart}"


class StatusView:
    """Builds the pod's status and hands it to the agent when more than its times changed."""

    def __init__(self, host: PodHost, uid: str, prober: ProberManager) -> None:
        self.host = host
        self.uid = uid
        self.prober = prober
        self.last: Obj | None = None

    def report(
        self,
        pod: Obj,
        *,
        init_failed: bool,
        init: dict[str, ContainerState],
        apps: dict[str, ContainerState],
        pod_ip: str,
        start_time: datetime | None,
    ) -> None:
        spec = pod.get("spec") or {}
        init_views = [self._view(c, init) for c in spec.get("initContainers") or []]
        views = [self._view(c, apps) for c in spec.get("containers") or []]
        init_done = all(
            v.current is not None and v.current.state == "exited" and v.current.exit_code == 0
            for v in init_views
        )
        phase = pod_phase(spec.get("restartPolicy", "Always"), init_done, init_failed, views)
        status = build_status(
            pod,
            phase=phase,
            init_views=init_views,
            views=views,
            init_done=init_done,
            host_ip=self.host.host_ip,
            pod_ip=pod_ip,
            start_time=start_time,
            now=self.host.clock.now(),
        )
        comparable = without_times(status)
        if self.last is not None and comparable == self.last:
            return
        self.last = comparable
        self.host.report_status(pod, status)

    def _view(self, container: Obj, states: dict[str, ContainerState]) -> ContainerView:
        name = container["name"]
        state = states.get(name) or ContainerState()
        message = ""
        current = state.current
        if current is not None and current.state == "exited":
            message = self._termination_message(name, current)
        return ContainerView(
            name=name,
            spec_image=container.get("image", ""),
            current=current,
            previous=state.previous,
            ready=self.prober.ready(state),
            started=self.prober.started(state),
            waiting_reason=state.waiting_reason,
            waiting_message=state.waiting_message,
            termination_message=message,
        )

    def _termination_message(self, container: str, record: ContainerRecord) -> str:
        path = termination_log(self.host.pods_dir, self.uid, container, record.restart_count)
        try:
            text: str = path.read_text(errors="replace")
        except OSError:
            # No readable file is no message, as in Kubernetes (the pod's
            # directory may already be cleaned up); the status is still whole.
            return ""
        return text[:_MESSAGE_LIMIT].strip()


def without_times(status: Obj) -> Obj:
    """The status minus transition times, to tell a real change from a re-computation."""
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}
        for c in status.get("conditions") or []
    ]
    return out
