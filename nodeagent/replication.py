"""The agent's half of a replicated set: run the hooks, fence, report.

For each pod of a replicated set on this node (see corral/replication.py),
a loop asks the pod's ``status`` hook every ``periodSeconds`` what it is,
brings it in line with what the controller assigned (promote, demote,
follow, rebuild) and reports the answer as a pod condition.

The fence is here because only this side can act when the control plane
cannot be reached: a primary whose agent has not been heard by the control
plane for ``fence_seconds`` (half the lease) is demoted by the agent itself,
well before the controller, which waits a whole lease of silence, promotes
another pod. A fenced primary promotes again only in a *later* election:
whatever it believes about the current one may be stale.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Protocol

from corral.clock import Clock, rfc3339
from corral.objects import Obj, meta
from corral.replication import (
    DIVERGED_EXIT_CODE,
    Hooks,
    Report,
    assignment_of,
    hooks_of,
    parse_status_output,
)
from nodeagent.runtime.base import Runtime, RuntimeFailure, RuntimeUnavailable

log = logging.getLogger(__name__)

_OUTPUT_LIMIT = 400


class ReplicationHost(Protocol):
    runtime: Runtime
    clock: Clock

    def container_id(self, uid: str, container: str) -> str | None:
        """The running container's id, or None while it does not run."""
        ...

    def last_contact(self) -> float:
        """When (monotonic) the control plane last acknowledged this agent."""
        ...

    def report_replication(self, pod: Obj, condition: Obj) -> None: ...

    async def event(
        self, pod: Obj, kind: str, reason: str, message: str, field_path: str = ""
    ) -> None: ...


def _short(output: bytes) -> str:
    text = output.decode(errors="replace").strip()
    return text if len(text) <= _OUTPUT_LIMIT else "…" + text[-_OUTPUT_LIMIT:]


def _wanted(pod: Obj) -> tuple[object, ...]:
    """What, in a pod, asks this loop to act: the assignment, the hooks, the end."""
    metadata = meta(pod)
    return (
        assignment_of(pod),
        hooks_of(pod),
        metadata.get("deletionTimestamp"),
    )


class PodReplication:
    """One pod's loop; ``update`` hands it the newest pod object, ``stop`` ends it."""

    def __init__(
        self, host: ReplicationHost, uid: str, jitter: Callable[[], float] = random.random
    ) -> None:
        self.host = host
        self.uid = uid
        self.pod: Obj | None = None
        self.jitter = jitter
        # The election this pod has been brought in line with (0: none yet).
        self.converged = 0
        # The election in which this agent fenced the pod; it may not promote
        # it again before a later one.
        self.fenced_epoch = -1
        self.following = ""
        # Fenced in the current silence already: the fence is not repeated.
        self._fenced = False
        self._published: tuple[str, tuple[int, ...], bool, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._notes: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    @property
    def name(self) -> str:
        return str(meta(self.pod or {}).get("name", ""))

    def update(self, pod: Obj) -> None:
        before = self.pod
        self.pod = pod
        # Only the controller's word starts a round early. Every report this
        # loop publishes changes the pod too; waking on those kept each agent
        # running its status hook back to back, a load that slowed the very
        # switchovers it was meant to speed up.
        if before is None or _wanted(before) != _wanted(pod):
            self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"replication-{self.uid[:8]}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # _run logs whatever a round raises, so only this cancellation ends it.
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # Events already under way are let finish: each is one bounded write,
        # and recording never raises (see _note).
        await asyncio.gather(*self._notes, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            hooks = hooks_of(self.pod or {})
            if hooks is None:
                return
            # Cleared before the round, not after: an assignment that arrives
            # while a hook runs must start the next round at once, not a
            # period later (each such wait lengthened a switchover).
            self._wake.clear()
            try:
                await self.step(hooks)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad round (a runtime hiccup, an odd pod) must not end the
                # set's fencing on this node; the next round starts afresh.
                log.exception("replication of pod %s: a round failed", self.name)
            # Wakes early when the controller changes the assignment.
            period = hooks.period_seconds * (0.9 + 0.2 * self.jitter())
            try:
                async with asyncio.timeout(period):
                    await self._wake.wait()
            except TimeoutError:
                pass  # the period ran out with no wake-up: time for the next round

    # --- one round --------------------------------------------------------------------

    async def _hook(
        self, hooks: Hooks, container_id: str, command: tuple[str, ...], timeout: float
    ) -> tuple[int, bytes] | None:
        try:
            return await self.host.runtime.exec(container_id, list(command), timeout=timeout)
        except (RuntimeFailure, RuntimeUnavailable, TimeoutError) as error:
            log.warning("replication of pod %s: %s failed: %s", self.name, command[-1:], error)
            return None

    async def _status(self, hooks: Hooks, container_id: str) -> Report:
        result = await self._hook(hooks, container_id, hooks.status, hooks.hook_timeout_seconds)
        if result is None or result[0] != 0:
            return Report("unknown", (), False, self.converged)
        try:
            return parse_status_output(result[1].decode(errors="replace"), self.converged)
        except ValueError as error:
            log.warning("replication of pod %s: status hook said %s", self.name, error)
            return Report("unknown", (), False, self.converged)

    async def _act(
        self,
        hooks: Hooks,
        container_id: str,
        what: str,
        command: tuple[str, ...],
        timeout: float,
    ) -> int | None:
        pod = self.pod or {}
        log.info("replication of pod %s: %s", self.name, " ".join(command))
        result = await self._hook(hooks, container_id, command, timeout)
        if result is None:
            self._note(pod, "Warning", "ReplicationHookFailed", f"{what}: no answer")
            return None
        code, output = result
        if code == 0:
            self._note(pod, "Normal", what, _short(output) or what)
        elif code != DIVERGED_EXIT_CODE:
            self._note(
                pod, "Warning", "ReplicationHookFailed", f"{what} exited {code}: {_short(output)}"
            )
        return code

    def _note(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        """Record an Event without waiting for it.

        A switchover waits on each hook and on the report that follows it;
        an Event's round trip to the API server in between only lengthened
        the write gap. Recording never raises, so nothing is lost by not
        awaiting it here.
        """
        task = asyncio.get_running_loop().create_task(self.host.event(pod, kind, reason, message))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def step(self, hooks: Hooks) -> None:
        pod = self.pod
        if pod is None:
            return
        container_id = self.host.container_id(self.uid, hooks.container)
        if container_id is None:
            self._publish(pod, Report("unknown", (), False, 0))
            return
        report = await self._status(hooks, container_id)
        assignment = assignment_of(pod)
        silent = self.host.clock.monotonic() - self.host.last_contact()
        timeout = hooks.hook_timeout_seconds
        if silent >= hooks.fence_seconds:
            # Cut off from the control plane: it may be electing another
            # primary right now. Stop writes before it can finish.
            leads = assignment.primary == self.name and report.role in ("primary", "unknown")
            if (report.writable or leads) and not self._fenced:
                self._fenced = True
                log.warning(
                    "replication of pod %s: no word from the control plane for %.1fs; fencing",
                    self.name,
                    silent,
                )
                code = await self._act(hooks, container_id, "Fenced", hooks.demote, timeout)
                self.fenced_epoch = assignment.epoch
                self.converged = 0
                report = await self._status(hooks, container_id)
                if code != 0 or report.writable or report.role == "unknown":
                    # The demote hook could not make sure: stopping the
                    # container can. Its restart comes back read-only.
                    await self._kill(pod, container_id)
            self._publish(pod, report)
            return
        self._fenced = False
        if assignment.epoch == 0:
            self._publish(pod, report)
            return
        if assignment.primary == self.name:
            await self._lead(hooks, container_id, report, assignment.epoch, assignment.demote)
        elif assignment.address:
            await self._follow(hooks, container_id, report, assignment.epoch, assignment.address)
        self._publish(pod, await self._status(hooks, container_id))

    async def _kill(self, pod: Obj, container_id: str) -> None:
        log.warning("replication of pod %s: the fence is not certain; stopping it", self.name)
        try:
            await self.host.runtime.stop(container_id, 0)
        except (RuntimeFailure, RuntimeUnavailable) as error:
            log.error("replication of pod %s: could not stop it: %s", self.name, error)
            return
        await self.host.event(
            pod, "Warning", "Fenced", "stopped: cut off from the control plane, writes unsure"
        )

    async def _lead(
        self, hooks: Hooks, container_id: str, report: Report, epoch: int, demote: bool
    ) -> None:
        timeout = hooks.hook_timeout_seconds
        if demote:
            # A planned switchover: stop writes; the controller elects the
            # successor once it has caught up with this pod's last position.
            if report.writable:
                await self._act(hooks, container_id, "Demoted", hooks.demote, timeout)
            self.converged = epoch
            return
        if report.role == "primary" and report.writable:
            self.converged = epoch
            return
        if epoch <= self.fenced_epoch:
            return
        code = await self._act(hooks, container_id, "Promoted", hooks.promote, timeout)
        if code == 0:
            self.converged = epoch
            self.following = ""

    async def _follow(
        self, hooks: Hooks, container_id: str, report: Report, epoch: int, address: str
    ) -> None:
        timeout = hooks.hook_timeout_seconds
        if report.writable:
            # Another pod leads: this one must stop writing before anything else.
            await self._act(hooks, container_id, "Demoted", hooks.demote, timeout)
        rebuild = (*hooks.rebuild, address)
        if report.role == "empty":
            code = await self._act(
                hooks, container_id, "Rebuilt", rebuild, hooks.rebuild_timeout_seconds
            )
        elif self.converged != epoch or self.following != address or report.role != "replica":
            code = await self._act(
                hooks, container_id, "Following", (*hooks.follow, address), timeout
            )
            if code == DIVERGED_EXIT_CODE:
                code = await self._act(
                    hooks, container_id, "Rebuilt", rebuild, hooks.rebuild_timeout_seconds
                )
        else:
            return
        if code == 0:
            self.converged = epoch
            self.following = address

    def _publish(self, pod: Obj, report: Report) -> None:
        report = Report(report.role, report.position, report.writable, self.converged)
        key = (report.role, report.position, report.writable, report.epoch)
        if key == self._published:
            return
        self._published = key
        self.host.report_replication(pod, report.to_condition(rfc3339(self.host.clock.now())))


class ReplicationSupervisor:
    """Every replicated pod on this node, each with its own loop."""

    def __init__(self, host: ReplicationHost) -> None:
        self.host = host
        self.pods: dict[str, PodReplication] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def update(self, uid: str, pod: Obj | None) -> None:
        """The newest pod object for ``uid``; None once it no longer runs here."""
        current = self.pods.get(uid)
        if pod is None or hooks_of(pod) is None:
            if current is not None:
                del self.pods[uid]
                task = asyncio.get_running_loop().create_task(current.stop())
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
            return
        if current is None:
            current = self.pods[uid] = PodReplication(self.host, uid)
        current.update(pod)

    async def stop(self) -> None:
        pods, self.pods = list(self.pods.values()), {}
        # PodReplication.stop raises nothing (it gathers its own tasks the same way).
        await asyncio.gather(*(p.stop() for p in pods), return_exceptions=True)
