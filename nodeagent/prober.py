"""The prober manager: one task per probe of each running container, and what they conclude.

Probes run beside the reconcile loop, not in it: each keeps its own period
and thresholds, and wakes the pod worker only when a result flips (a liveness
failure to restart, a readiness change to report).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from corral.objects import Obj, meta, status
from nodeagent.podstate import ContainerState, PodHost, field_path
from nodeagent.probes import ProbeState, run_probe
from nodeagent.runtime.base import ContainerRecord, RuntimeFailure

log = logging.getLogger(__name__)


_KINDS = (
    ("startup", "startupProbe"),
    ("liveness", "livenessProbe"),
    ("readiness", "readinessProbe"),
)
# How often a probe waiting on its container's startup probe looks again.
_STARTUP_POLL_SECONDS = 1.0


class ProberManager:
    """Runs a pod's probes and answers whether each container is live, started and ready."""

    def __init__(
        self,
        host: PodHost,
        sandbox: Callable[[], ContainerRecord | None],
        pod_ip: Callable[[], str],
        on_flip: Callable[[], None],
    ) -> None:
        self.host = host
        self._sandbox = sandbox
        self._pod_ip = pod_ip
        self._on_flip = on_flip

    def start(self, pod: Obj, container: Obj, state: ContainerState) -> None:
        """Probe the container's current instance, from now on."""
        current = state.current
        if current is None:
            return
        started = self.host.clock.monotonic()
        state.probes = {}
        state.probing = True
        for kind, key in _KINDS:
            spec = container.get(key)
            if spec:
                probe = ProbeState(kind, spec, started)
                if kind == "readiness" and state.seeded_ready is not None:
                    probe.result = state.seeded_ready
                state.probes[kind] = probe
        for probe in state.probes.values():
            state.probe_tasks.append(
                asyncio.create_task(self._loop(pod, container, state, probe, current.id))
            )

    def stop(self, state: ContainerState) -> None:
        for task in state.probe_tasks:
            task.cancel()
        state.probe_tasks.clear()
        state.probes = {}
        state.probing = False

    def stop_all(self, states: Iterable[ContainerState]) -> None:
        for state in states:
            self.stop(state)

    async def _loop(
        self, pod: Obj, container: Obj, state: ContainerState, probe: ProbeState, container_id: str
    ) -> None:
        clock = self.host.clock
        while state.current is not None and state.current.id == container_id:
            startup = state.probes.get("startup")
            if probe.kind != "startup" and startup is not None and startup.result is not True:
                await clock.sleep(_STARTUP_POLL_SECONDS)
                continue
            if probe.kind == "startup" and probe.result is True:
                return  # a startup probe stops once it has passed
            now = clock.monotonic()
            if not probe.due(now):
                await clock.sleep(probe.next_due(now))
                continue
            outcome = await run_probe(
                probe.spec,
                container,
                container_id,
                self.host.runtime,
                await self._netns(pod),
                self._pod_ip(),
            )
            flipped = probe.record(outcome, clock.monotonic())
            if not outcome.ok:
                await self.host.event(
                    pod,
                    "Warning",
                    "Unhealthy",
                    f"{probe.kind.capitalize()} probe failed: {outcome.message}",
                    field_path("app", container["name"]),
                )
            if flipped:
                self._on_flip()

    async def _netns(self, pod: Obj) -> str:
        """The pod's network namespace for network probes ('' probes from the host's)."""
        sandbox = self._sandbox()
        if sandbox is None:
            return ""
        try:
            return await self.host.runtime.netns_path(sandbox)
        except RuntimeFailure as error:
            # This probe then connects from the host's namespace; if that
            # cannot reach the pod, it fails and its Unhealthy event says so.
            metadata = meta(pod)
            log.debug(
                "pod %s/%s: no network namespace to probe from: %s",
                metadata.get("namespace"),
                metadata.get("name"),
                error,
            )
            return ""

    def liveness_failed(self, state: ContainerState) -> bool:
        liveness = state.probes.get("liveness")
        startup = state.probes.get("startup")
        if startup is not None and startup.result is False:
            return True
        return liveness is not None and liveness.result is False

    def ready(self, state: ContainerState) -> bool:
        current = state.current
        if current is None or current.state != "running":
            return False
        readiness = state.probes.get("readiness")
        if readiness is None:
            return self.started(state)
        return readiness.result is True and self.started(state)

    def started(self, state: ContainerState) -> bool:
        if state.current is None or state.current.state != "running":
            return False
        startup = state.probes.get("startup")
        return startup is None or startup.result is True

    @staticmethod
    def seed_readiness(pod: Obj, apps: dict[str, ContainerState]) -> None:
        """Carry readiness over from the last reported status, for adopted containers."""
        for reported in status(pod).get("containerStatuses") or []:
            state = apps.get(reported.get("name", ""))
            if state is None or state.current is None:
                continue
            if reported.get("containerID", "").endswith(state.current.id):
                state.seeded_ready = bool(reported.get("ready"))
