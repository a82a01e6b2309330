"""The pod's restartPolicy, and CrashLoopBackOff between a container's restarts."""

from __future__ import annotations

from corral.objects import Obj, meta, spec
from nodeagent.podstate import ContainerState, PodHost, field_path, pod_name
from nodeagent.runtime.base import ContainerRecord, Role


def should_restart(policy: str, role: Role, exit_code: int | None) -> bool:
    """Whether an exited container runs again under the pod's restartPolicy."""
    if role == "init":
        return exit_code != 0 and policy != "Never"
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


class RestartPolicy:
    """Decides whether and when a pod's exited containers start again."""

    def __init__(self, host: PodHost, uid: str) -> None:
        self.host = host
        self.uid = uid

    def restarts(self, pod: Obj, exited: ContainerRecord, role: Role) -> bool:
        policy = spec(pod).get("restartPolicy", "Always")
        return should_restart(policy, role, exited.exit_code)

    async def holds(
        self, pod: Obj, name: str, role: Role, state: ContainerState, exited: ContainerRecord
    ) -> bool:
        """True while ``exited`` must wait out its back-off (its waiting state then says so)."""
        now = self.host.clock.monotonic()
        key = f"{self.uid}/{role}/{name}"
        if state.restart_at is None:
            state.restart_at = now + self._wait_from_now(key, exited)
        if now >= state.restart_at:
            state.restart_at = None
            state.backoff_reported = False
            return False
        delay = self.host.restarts.current(key) or 0
        state.waiting_reason = "CrashLoopBackOff"
        state.waiting_message = (
            f"back-off {delay:g}s restarting failed container={name} pod={meta(pod).get('name')}"
        )
        if not state.backoff_reported:
            # One BackOff event per wait, not one per reconcile.
            state.backoff_reported = True
            await self.host.event(
                pod,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {name} in pod {pod_name(pod, self.uid)}",
                field_path(role, name),
            )
        return True

    def _wait_from_now(self, key: str, exited: ContainerRecord) -> float:
        ran = 0.0
        if exited.started_at and exited.finished_at:
            ran = (exited.finished_at - exited.started_at).total_seconds()
        delay = self.host.restarts.next_delay(key, ran)
        # The wait runs from the container's exit, not from when this
        # reconcile noticed it, as the kubelet's back-off does.
        since_exit = 0.0
        if exited.finished_at is not None:
            since_exit = (self.host.clock.now() - exited.finished_at).total_seconds()
        return max(delay - max(since_exit, 0.0), 0.0)

    def forget(self) -> None:
        """The pod is gone: its containers' back-offs start over if it comes back."""
        self.host.restarts.forget_prefix(self.uid)
