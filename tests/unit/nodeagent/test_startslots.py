"""The start slots: a bound on starts in flight, served to the pods furthest along first."""

from __future__ import annotations

import asyncio

import pytest

from nodeagent.runtime.startslots import APP, SANDBOX, StartSlots


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_no_more_than_the_limit_are_in_flight() -> None:
    slots = StartSlots(2)
    in_flight = 0
    most = 0

    async def start() -> None:
        nonlocal in_flight, most
        async with slots.slot(SANDBOX):
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.001)
            in_flight -= 1

    await asyncio.gather(*(start() for _ in range(10)))
    assert most == 2
    assert slots.waiting == 0


async def test_an_app_start_goes_before_sandboxes_that_waited_longer() -> None:
    slots = StartSlots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.slot(SANDBOX):
            await release.wait()

    async def start(name: str, priority: int) -> None:
        async with slots.slot(priority):
            order.append(name)

    holder = asyncio.create_task(hold())
    await _settle()
    waiters = [asyncio.create_task(start("sandbox-1", SANDBOX))]
    await _settle()
    waiters.append(asyncio.create_task(start("sandbox-2", SANDBOX)))
    await _settle()
    waiters.append(asyncio.create_task(start("app-1", APP)))
    await _settle()
    assert slots.waiting == 3
    release.set()
    await asyncio.gather(holder, *waiters)
    assert order == ["app-1", "sandbox-1", "sandbox-2"]


async def test_a_cancelled_waiter_gives_up_its_turn_and_the_slot_is_not_lost() -> None:
    slots = StartSlots(1)
    release = asyncio.Event()
    done: list[str] = []

    async def hold() -> None:
        async with slots.slot(APP):
            await release.wait()

    async def start(name: str) -> None:
        async with slots.slot(APP):
            done.append(name)

    holder = asyncio.create_task(hold())
    await _settle()
    cancelled = asyncio.create_task(start("cancelled"))
    later = asyncio.create_task(start("later"))
    await _settle()
    cancelled.cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, later), 1)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert done == ["later"]
    # Every slot is free again: one more start goes straight through.
    await asyncio.wait_for(start("after"), 1)
    assert done == ["later", "after"]


async def test_a_waiter_cancelled_as_it_is_handed_the_slot_passes_it_on() -> None:
    slots = StartSlots(1)
    done: list[str] = []

    async def start(name: str) -> None:
        async with slots.slot(APP):
            done.append(name)

    held = slots.slot(APP)
    await held.__aenter__()
    first = asyncio.create_task(start("first"))
    second = asyncio.create_task(start("second"))
    await _settle()
    # The release hands the slot to `first` without yielding; `first` is
    # cancelled before it runs again, holding a slot it never used.
    await held.__aexit__(None, None, None)
    first.cancel()
    await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 1)
    assert first.cancelled()
    assert done == ["second"]
    assert slots.waiting == 0
    await asyncio.wait_for(start("after"), 1)
    assert done == ["second", "after"]


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        StartSlots(0)
