"""The custom-kind overlay's catch-up with etcd: one read at a time, shared by waiters."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from controlplane.apiserver.customresources import CustomResources
from corral.api.resources import REGISTRY


@dataclass
class FakeResource:
    objects: dict[str, Any] = field(default_factory=dict)
    history: deque[Any] = field(default_factory=deque)
    window_start: int = 0


class FakeCache:
    """Counts catch-ups; each waits until the test releases it."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.crds = FakeResource()

    def resource(self, name: str) -> FakeResource:
        return self.crds

    def snapshot(self, name: str, namespace: str | None) -> tuple[list[Any], int]:
        return [], 0

    async def fresh(self) -> bool:
        self.calls += 1
        await self.release.wait()
        return True


async def test_concurrent_requests_share_one_catch_up_and_later_ones_the_next() -> None:
    cache = FakeCache()
    custom = CustomResources(REGISTRY.fork(), cache)  # type: ignore[arg-type]
    first = [asyncio.create_task(custom.ensure_fresh()) for _ in range(10)]
    await asyncio.sleep(0.01)
    assert cache.calls == 1  # ten requests, one read of etcd
    later = [asyncio.create_task(custom.ensure_fresh()) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert cache.calls == 1  # the next catch-up waits for the running one
    cache.release.set()
    await asyncio.wait_for(asyncio.gather(*first, *later), 5)
    assert cache.calls == 2


async def test_a_request_that_goes_away_does_not_cancel_the_others() -> None:
    cache = FakeCache()
    custom = CustomResources(REGISTRY.fork(), cache)  # type: ignore[arg-type]
    leaving = asyncio.create_task(custom.ensure_fresh())
    staying = asyncio.create_task(custom.ensure_fresh())
    await asyncio.sleep(0.01)
    leaving.cancel()
    cache.release.set()
    await asyncio.wait_for(staying, 5)
    assert cache.calls == 1
