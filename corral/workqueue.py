"""A work queue for reconcile loops, with client-go's guarantees.

- A key waits in the queue at most once, however often it is added.
- A key is never handed to two workers at once: added while being
  processed, it is queued again only when that processing is done.
- Failures back off per key (exponentially, with a cap) through
  ``add_rate_limited``; ``forget`` resets a key after a success.
- Delays run on an injected clock, so tests advance time instead of sleeping.
- A queue given a ``name`` reports client-go's workqueue metrics under it
  (depth, adds, retries, time queued, time processing).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from corral import metrics
from corral.clock import Clock, SystemClock

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue(Generic[K]):
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        base_delay: float = 0.005,
        max_delay: float = 300.0,
        name: str | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._waiting: dict[K, asyncio.Task[None]] = {}
        self._deadlines: dict[K, float] = {}
        self._wakeup = asyncio.Event()
        self._shut_down = False
        self._metrics = _QueueMetrics(name, self.clock) if name else None

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shut_down

    def add(self, key: K) -> None:
        if self._shut_down or key in self._dirty:
            return
        self._dirty.add(key)
        if self._metrics is not None:
            self._metrics.added(key)
        if key in self._processing:
            return
        self._enqueue(key)

    def add_after(self, key: K, delay: float) -> None:
        if self._shut_down:
            return
        if delay <= 0:
            self.add(key)
            return
        # The deadline is fixed now, not when the timer task first runs.
        deadline = self.clock.monotonic() + delay
        existing = self._waiting.get(key)
        if existing is not None and not existing.done():
            if self._deadlines.get(key, deadline) <= deadline:
                return  # an earlier timer is already set: it wins
            existing.cancel()  # this one is earlier; keep it, as client-go's delaying queue does

        async def later() -> None:
            await self.clock.sleep(deadline - self.clock.monotonic())
            self._waiting.pop(key, None)
            self._deadlines.pop(key, None)
            self.add(key)

        self._deadlines[key] = deadline
        self._waiting[key] = asyncio.ensure_future(later())

    def add_rate_limited(self, key: K) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if self._metrics is not None:
            self._metrics.retries.inc()
        self.add_after(key, min(self.base_delay * (2**failures), self.max_delay))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def retries(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K:
        """The next key to process; raises ShutDown when the queue is closed and empty."""
        while not self._queue:
            if self._shut_down:
                raise ShutDown
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        if self._metrics is not None:
            self._metrics.started(key, len(self._queue))
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if self._metrics is not None:
            self._metrics.finished(key)
        if key in self._dirty:
            self._enqueue(key)

    def shut_down(self) -> None:
        self._shut_down = True
        for task in self._waiting.values():
            task.cancel()
        self._waiting.clear()
        self._notify()

    def _enqueue(self, key: K) -> None:
        self._queue.append(key)
        if self._metrics is not None:
            self._metrics.queued(key, len(self._queue))
        self._notify()

    def _notify(self) -> None:
        self._wakeup.set()


class _QueueMetrics:
    """One named queue's series; times read from the queue's own clock."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.clock = clock
        self.depth = metrics.WORKQUEUE_DEPTH.labels(name)
        self.adds = metrics.WORKQUEUE_ADDS.labels(name)
        self.retries = metrics.WORKQUEUE_RETRIES.labels(name)
        self.queue_duration = metrics.WORKQUEUE_QUEUE_DURATION.labels(name)
        self.work_duration = metrics.WORKQUEUE_WORK_DURATION.labels(name)
        self._queued_at: dict[Hashable, float] = {}
        self._started_at: dict[Hashable, float] = {}

    def added(self, key: Hashable) -> None:
        self.adds.inc()

    def queued(self, key: Hashable, depth: int) -> None:
        self.depth.set(depth)
        self._queued_at.setdefault(key, self.clock.monotonic())

    def started(self, key: Hashable, depth: int) -> None:
        now = self.clock.monotonic()
        self.depth.set(depth)
        queued_at = self._queued_at.pop(key, None)
        if queued_at is not None:
            self.queue_duration.observe(now - queued_at)
        self._started_at[key] = now

    def finished(self, key: Hashable) -> None:
        started_at = self._started_at.pop(key, None)
        if started_at is not None:
            self.work_duration.observe(self.clock.monotonic() - started_at)
