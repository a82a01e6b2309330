"""The shape every controller shares: informers feed a queue of keys; workers reconcile.

Event handlers only enqueue keys. ``sync(key)`` re-reads everything it needs
from the informers' stores and converges; a spurious sync is cheap, a missed
one is a stall. The queue never runs one key twice at once, failed syncs
back off per key, and workers start only once every informer has listed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from corral.api.resources import ResourceType
from corral.client.rest import Client
from corral.clock import Clock, SystemClock
from corral.events import EventRecorder
from corral.informer import Informer, wait_synced
from corral.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)


class RequeueAfter(Exception):
    """Not a failure: look at this key again after ``seconds`` (a deadline, a grace period)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"requeue after {seconds}s")
        self.seconds = seconds


@dataclass
class Context:
    """What the controller manager hands every controller."""

    client: Client
    clock: Clock = field(default_factory=SystemClock)
    events: EventRecorder | None = None
    informers: dict[str, Informer] = field(default_factory=dict)

    def informer(self, rt: ResourceType) -> Informer:
        """One shared informer per resource, as client-go's shared informer factory."""
        found = self.informers.get(rt.plural)
        if found is None:
            found = self.informers[rt.plural] = Informer(self.client, rt, clock=self.clock)
        return found


class Controller:
    """Subclasses set ``name``, register handlers in ``__init__`` and implement ``sync``."""

    name = "controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.queue: WorkQueue[str] = WorkQueue(
            ctx.clock, base_delay=0.05, max_delay=60.0, name=self.name
        )

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    def informers(self) -> Iterable[Informer]:
        return self.ctx.informers.values()

    async def run(self, stop: asyncio.Event) -> None:
        await wait_synced(self.informers())
        log.info("%s: caches synced, starting %d workers", self.name, self.workers)
        workers = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        try:
            await stop.wait()
        finally:
            self.queue.shut_down()
            for task in workers:
                task.cancel()
            # A worker logs each failed sync itself and goes on; all that can
            # end one here is the cancel just made.
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.sync(key)
            except RequeueAfter as later:
                self.queue.forget(key)
                self.queue.add_after(key, later.seconds)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "%s: sync %s failed (retry %d): %s",
                    self.name,
                    key,
                    self.queue.retries(key),
                    error,
                )
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)


class Expectations:
    """How many creates and deletes of pods a controller is still waiting to see.

    A controller that acted on a stale cache would create pods twice; with
    expectations it skips a sync until the watch has shown its own actions,
    or until they time out (a lost watch event must not stall it forever).
    """

    def __init__(self, clock: Clock, timeout: float = 300.0) -> None:
        self.clock = clock
        self.timeout = timeout
        self._pending: dict[str, tuple[int, int, float]] = {}

    def expect(self, key: str, adds: int = 0, deletes: int = 0) -> None:
        self._pending[key] = (adds, deletes, self.clock.monotonic())

    def raise_expectations(self, key: str, adds: int = 0, deletes: int = 0) -> None:
        current_adds, current_deletes, since = self._pending.get(
            key, (0, 0, self.clock.monotonic())
        )
        self._pending[key] = (current_adds + adds, current_deletes + deletes, since)

    def observed_add(self, key: str) -> None:
        if key in self._pending:
            adds, deletes, since = self._pending[key]
            self._pending[key] = (adds - 1, deletes, since)

    def observed_delete(self, key: str) -> None:
        if key in self._pending:
            adds, deletes, since = self._pending[key]
            self._pending[key] = (adds, deletes - 1, since)

    def satisfied(self, key: str) -> bool:
        found = self._pending.get(key)
        if found is None:
            return True
        adds, deletes, since = found
        return (adds <= 0 and deletes <= 0) or self.clock.monotonic() - since > self.timeout

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
