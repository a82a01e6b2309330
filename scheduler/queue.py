"""The scheduling queue: priority first, then first in, first out; backoff for misfits.

A pod lives in exactly one of four places:

- *active*: waiting its turn, ordered by ``spec.priority`` (highest first),
  then by when it joined;
- *in flight*: popped, being scheduled or bound;
- *backoff*: failed for a reason no event can announce (an error, a lost
  bind race); back to active once its backoff expires (1 s, doubling per
  attempt, capped);
- *unschedulable*: no node fits. It waits for a cluster change that could
  help, which the scheduler reports through ``move_on_event`` with a check
  of the pod against the changed node; a pod that may fit now goes straight
  back to active. A pod no event has moved is retried after a long bound,
  in case something it depends on changed unannounced.

Time comes from an injected clock, so tests advance it rather than sleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corral.clock import Clock
from scheduler.podinfo import PodInfo


class QueueClosed(Exception):
    """``pop`` on a queue that was closed: the scheduler is stopping."""


@dataclass(slots=True, eq=False)
class QueuedPod:
    pod: PodInfo
    # When the pod first joined the queue (monotonic): the start of its
    # end-to-end scheduling latency.
    added: float
    attempts: int = 0
    # The plugins that rejected it last time (for deciding which events matter).
    rejected_by: frozenset[str] = frozenset()
    # Monotonic time before which a retry is not due.
    not_before: float = 0.0
    seq: int = 0

    @property
    def key(self) -> str:
        return self.pod.key


class SchedulingQueue:
    def __init__(
        self,
        clock: Clock,
        *,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        max_unschedulable: float = 300.0,
    ) -> None:
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self._seq = itertools.count()
        self._active: dict[str, QueuedPod] = {}
        self._active_heap: list[tuple[int, int, str]] = []
        self._backoff: dict[str, QueuedPod] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        # Insertion-ordered, so the first entry is the one waiting longest.
        self._unschedulable: dict[str, QueuedPod] = {}
        self._in_flight: dict[str, QueuedPod] = {}
        self._wakeup = asyncio.Event()
        self._closed = False

    # --- what the watches report -----------------------------------------------------------

    def add(self, pod: PodInfo) -> None:
        """A pending pod appeared (or was seen again): queue it unless it is known."""
        if self._refresh(pod):
            return
        self._push_active(QueuedPod(pod, added=self.clock.monotonic()))

    def update(self, pod: PodInfo) -> None:
        """A pending pod's spec or labels changed: the change may be what makes it fit."""
        queued = self._unschedulable.pop(pod.key, None) or self._pop_backoff(pod.key)
        if queued is not None:
            queued.pod = pod
            self._push_active(queued)
        elif not self._refresh(pod):
            self.add(pod)

    def delete(self, key: str) -> None:
        """The pod is gone, bound or no longer ours: forget it wherever it is."""
        self._active.pop(key, None)
        self._backoff.pop(key, None)
        self._unschedulable.pop(key, None)
        self._in_flight.pop(key, None)

    def _refresh(self, pod: PodInfo) -> bool:
        for place in (self._active, self._backoff, self._unschedulable, self._in_flight):
            queued = place.get(pod.key)
            if queued is not None:
                queued.pod = pod
                return True
        return False

    # --- the scheduling loop's side --------------------------------------------------------

    async def pop(self) -> QueuedPod:
        """The next pod to schedule; waits (without a poll) until one is due."""
        while True:
            if self._closed:
                raise QueueClosed
            now = self.clock.monotonic()
            self._flush(now)
            while self._active_heap:
                _, seq, key = heapq.heappop(self._active_heap)
                queued = self._active.get(key)
                if queued is None or queued.seq != seq:
                    continue  # deleted or re-queued since this entry was pushed
                del self._active[key]
                queued.attempts += 1
                self._in_flight[key] = queued
                return queued
            await self._wait(self._next_due())

    def done(self, key: str) -> None:
        """The pod was bound: it leaves the queue for good."""
        self._in_flight.pop(key, None)

    def requeue_unschedulable(self, queued: QueuedPod, rejected_by: frozenset[str]) -> None:
        """No node fits: park the pod until a change that may help (or the long bound)."""
        if self._in_flight.pop(queued.key, None) is None:
            return  # deleted or bound while it was being scheduled
        queued.rejected_by = rejected_by
        queued.not_before = self.clock.monotonic() + self.max_unschedulable
        self._unschedulable[queued.key] = queued

    def requeue_backoff(self, queued: QueuedPod) -> None:
        """An error or a lost bind: retry after the pod's backoff."""
        if self._in_flight.pop(queued.key, None) is None:
            return
        self._push_backoff(queued)

    def move_on_event(self, may_fit: Callable[[QueuedPod], bool]) -> int:
        """Move the unschedulable pods that ``may_fit`` says could fit now; how many moved."""
        moved = [q for q in self._unschedulable.values() if may_fit(q)]
        for queued in moved:
            del self._unschedulable[queued.key]
            self._push_active(queued)
        return len(moved)

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    # --- counts, for metrics and tests -----------------------------------------------------

    def counts(self) -> dict[str, int]:
        return {
            "active": len(self._active),
            "backoff": len(self._backoff),
            "unschedulable": len(self._unschedulable),
            "in_flight": len(self._in_flight),
        }

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    def __contains__(self, key: object) -> bool:
        return any(
            key in place
            for place in (self._active, self._backoff, self._unschedulable, self._in_flight)
        )

    def unschedulable_keys(self) -> list[str]:
        return list(self._unschedulable)

    # --- internals ------------------------------------------------------------------------

    def backoff_for(self, attempts: int) -> float:
        delay = self.initial_backoff
        for _ in range(max(attempts - 1, 0)):
            delay *= 2
            if delay >= self.max_backoff:
                return self.max_backoff
        return delay

    def _push_active(self, queued: QueuedPod) -> None:
        queued.seq = next(self._seq)
        self._active[queued.key] = queued
        heapq.heappush(self._active_heap, (-queued.pod.priority, queued.seq, queued.key))
        self._wakeup.set()

    def _push_backoff(self, queued: QueuedPod) -> None:
        queued.seq = next(self._seq)
        queued.not_before = self.clock.monotonic() + self.backoff_for(queued.attempts)
        self._backoff[queued.key] = queued
        heapq.heappush(self._backoff_heap, (queued.not_before, queued.seq, queued.key))
        self._wakeup.set()

    def _pop_backoff(self, key: str) -> QueuedPod | None:
        # The heap entry stays behind and is skipped when it surfaces.
        return self._backoff.pop(key, None)

    def _flush(self, now: float) -> None:
        heap = self._backoff_heap
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            queued = self._backoff.get(key)
            if queued is not None and queued.seq == seq:
                del self._backoff[key]
                self._push_active(queued)
        while self._unschedulable:
            key, queued = next(iter(self._unschedulable.items()))
            if queued.not_before > now:
                break
            del self._unschedulable[key]
            self._push_active(queued)

    def _next_due(self) -> float | None:
        """The monotonic time the next parked pod is due, if any is."""
        due: list[float] = []
        while self._backoff_heap:
            when, seq, key = self._backoff_heap[0]
            queued = self._backoff.get(key)
            if queued is not None and queued.seq == seq:
                due.append(when)
                break
            heapq.heappop(self._backoff_heap)
        if self._unschedulable:
            due.append(next(iter(self._unschedulable.values())).not_before)
        return min(due) if due else None

    async def _wait(self, due: float | None) -> None:
        self._wakeup.clear()
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wakeup.wait())}
        if due is not None:
            waits.add(asyncio.ensure_future(self._sleep_until(due)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waits:
                future.cancel()

    async def _sleep_until(self, due: float) -> None:
        # Measured when the sleep starts, not when it was asked for.
        await self.clock.sleep(max(due - self.clock.monotonic(), 0.0))
