"""The scheduling queue on a manual clock: order, backoff, parking and early retries."""

from __future__ import annotations

import asyncio

import pytest

from corral.clock import ManualClock
from scheduler.queue import QueueClosed, QueuedPod, SchedulingQueue
from tests.unit.scheduler.builders import pod_info


def queue(clock: ManualClock | None = None) -> SchedulingQueue:
    return SchedulingQueue(
        clock or ManualClock(), initial_backoff=1.0, max_backoff=8.0, max_unschedulable=60.0
    )


async def settle() -> None:
    """Let every ready task run until it blocks (on the clock, say)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def names(q: SchedulingQueue, count: int) -> list[str]:
    return [(await q.pop()).pod.name for _ in range(count)]


async def test_priority_first_then_first_in_first_out() -> None:
    q = queue()
    for name, priority in (("low1", 0), ("high", 10), ("low2", 0), ("mid", 5)):
        q.add(pod_info(name=name, priority=priority))
    assert await names(q, 4) == ["high", "mid", "low1", "low2"]


async def test_adding_a_known_pod_again_keeps_one_entry() -> None:
    q = queue()
    q.add(pod_info(name="a"))
    q.add(pod_info(name="a"))
    assert len(q) == 1


async def test_a_deleted_pod_is_never_popped_nor_requeued() -> None:
    q = queue()
    q.add(pod_info(name="a"))
    q.add(pod_info(name="b"))
    q.delete("default/a")
    popped = await q.pop()
    assert popped.pod.name == "b"
    q.delete("default/b")  # deleted while being scheduled
    q.requeue_backoff(popped)
    assert len(q) == 0 and "default/b" not in q


async def test_backoff_doubles_and_is_capped() -> None:
    q = queue()
    assert [q.backoff_for(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


async def test_a_failed_pod_waits_out_its_backoff() -> None:
    clock = ManualClock()
    q = queue(clock)
    q.add(pod_info(name="a"))
    first = await q.pop()
    q.requeue_backoff(first)  # first attempt: 1 s
    waiter = asyncio.ensure_future(q.pop())
    await settle()
    assert not waiter.done()
    clock.advance(0.5)
    await settle()
    assert not waiter.done()
    clock.advance(0.5)
    second = await asyncio.wait_for(waiter, 1)
    assert second.pod.name == "a" and second.attempts == 2


async def test_an_unschedulable_pod_waits_for_an_event_that_may_help() -> None:
    clock = ManualClock()
    q = queue(clock)
    q.add(pod_info(name="a"))
    q.add(pod_info(name="b"))
    a, b = await q.pop(), await q.pop()
    q.requeue_unschedulable(a, frozenset({"NodeResourcesFit"}))
    q.requeue_unschedulable(b, frozenset({"NodeAffinity"}))
    assert q.counts()["unschedulable"] == 2
    moved = q.move_on_event(lambda queued: "NodeResourcesFit" in queued.rejected_by)
    assert moved == 1
    # Straight back, with no backoff: the check said it may fit now.
    assert (await asyncio.wait_for(q.pop(), 1)).pod.name == "a"
    assert q.unschedulable_keys() == ["default/b"]


async def test_an_unschedulable_pod_is_retried_after_the_long_bound() -> None:
    clock = ManualClock()
    q = queue(clock)
    q.add(pod_info(name="a"))
    q.requeue_unschedulable(await q.pop(), frozenset({"X"}))
    waiter = asyncio.ensure_future(q.pop())
    await settle()
    clock.advance(59)
    await settle()
    assert not waiter.done()
    clock.advance(1)
    assert (await asyncio.wait_for(waiter, 1)).pod.name == "a"


async def test_an_update_moves_a_parked_pod_back_at_once() -> None:
    q = queue()
    q.add(pod_info(name="a"))
    q.requeue_unschedulable(await q.pop(), frozenset({"NodeAffinity"}))
    q.update(pod_info(name="a", node_selector={"disk": "ssd"}))
    popped = await asyncio.wait_for(q.pop(), 1)
    assert popped.pod.obj["spec"]["nodeSelector"] == {"disk": "ssd"}


async def test_an_update_in_flight_is_kept_for_the_retry() -> None:
    q = queue()
    q.add(pod_info(name="a"))
    popped = await q.pop()
    q.update(pod_info(name="a", cpu="1"))
    assert popped.pod.cpu == 1000


async def test_pop_waits_for_an_add() -> None:
    q = queue()
    waiter = asyncio.ensure_future(q.pop())
    await settle()
    assert not waiter.done()
    q.add(pod_info(name="a"))
    assert (await asyncio.wait_for(waiter, 1)).pod.name == "a"


async def test_close_wakes_a_waiting_pop() -> None:
    q = queue()
    waiter = asyncio.ensure_future(q.pop())
    await settle()
    q.close()
    with pytest.raises(QueueClosed):
        await asyncio.wait_for(waiter, 1)


async def test_done_forgets_a_bound_pod() -> None:
    q = queue()
    q.add(pod_info(name="a"))
    popped: QueuedPod = await q.pop()
    assert "default/a" in q
    q.done(popped.key)
    assert "default/a" not in q
