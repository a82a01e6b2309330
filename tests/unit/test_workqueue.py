"""The work queue's guarantees, on a manual clock."""

from __future__ import annotations

import asyncio

import pytest

from corral.clock import ManualClock
from corral.workqueue import ShutDown, WorkQueue


async def test_a_key_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue(ManualClock())
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"


async def test_a_key_is_never_processed_twice_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue(ManualClock())
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # changed again while a worker holds it
    assert len(queue) == 0
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.done(key)
    assert await asyncio.wait_for(waiter, 1) == "a"


async def test_rate_limited_retries_back_off_exponentially() -> None:
    clock = ManualClock()
    queue: WorkQueue[str] = WorkQueue(clock, base_delay=1.0, max_delay=4.0)
    delays = []
    for _ in range(4):
        queue.add_rate_limited("a")
        waited = 0.0
        while len(queue) == 0:
            clock.advance(0.5)
            waited += 0.5
            await asyncio.sleep(0)
        delays.append(waited)
        queue.done(await queue.get())
    assert delays == [1.0, 2.0, 4.0, 4.0]
    queue.forget("a")
    assert queue.retries("a") == 0


async def test_add_after_waits_for_the_clock() -> None:
    clock = ManualClock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add_after("a", 10)
    clock.advance(9)
    await asyncio.sleep(0)
    assert len(queue) == 0
    clock.advance(1)
    await asyncio.sleep(0)
    assert len(queue) == 1


async def test_shut_down_releases_workers() -> None:
    queue: WorkQueue[str] = WorkQueue(ManualClock())
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.shut_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)
