"""A bound on container starts in flight that lets the pods furthest along go first.

With a plain semaphore, 30 pods arriving together all queue for their infra
containers first, then all for their app containers: every pod waits for
every other, and the first one runs only when the last almost does. Served
by priority instead, a pod whose infra container runs starts its app
containers before the next pod's infra container is made: pods come up one
after another, and each one's status write and network setup overlaps the
others' container starts instead of piling up at the end.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# Lower goes first.
APP = 0
SANDBOX = 1


class StartSlots:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("at least one start must be allowed in flight")
        self._free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, future in self._waiters if not future.done())

    @asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        """Hold one of the slots; among those waiting, the lowest priority, then the earliest."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Handed a slot just as it was cancelled: the next one gets it.
                self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1
