"""The agent's Events: queued without waiting, recorded in order, dropped past the bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from corral.clock import ManualClock
from corral.events import EventRecorder
from corral.objects import Obj
from nodeagent.eventqueue import EventQueue

POD: Obj = {"kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": "u1"}}


class SlowSink:
    """A control plane that records an Event only when let through."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.gate = asyncio.Event()

    async def create(self, namespace: str, event: Obj) -> str:
        await self.gate.wait()
        self.created.append(str(event["reason"]))
        return str(event["metadata"]["name"])

    async def update(self, namespace: str, name: str, patch: Obj) -> bool:
        return False


def _queue(sink: SlowSink, limit: int = 1000) -> EventQueue:
    recorder = EventRecorder(None, "kubelet", host="node-1", clock=ManualClock(), sink=sink)
    return EventQueue(recorder, limit)


async def test_putting_an_event_never_waits_for_the_control_plane_and_order_is_kept() -> None:
    sink = SlowSink()
    queue = _queue(sink)
    # The sink is closed: were put() to record, this would never return.
    for reason in ("Created", "Started", "Killing"):
        queue.put(POD, "Normal", reason, reason)
    runner = asyncio.create_task(queue.run())
    try:
        sink.gate.set()
        for _ in range(100):
            if len(sink.created) == 3:
                break
            await asyncio.sleep(0.01)
        assert sink.created == ["Created", "Started", "Killing"]
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_past_the_bound_the_newest_events_are_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = SlowSink()
    queue = _queue(sink, limit=2)
    with caplog.at_level(logging.WARNING, logger="nodeagent.eventqueue"):
        for reason in ("A", "B", "C", "D"):
            queue.put(POD, "Normal", reason, reason)
    assert queue.dropped == 2
    assert "events dropped" in caplog.text
    sink.gate.set()
    await queue.drain(1.0)
    assert sink.created == ["A", "B"]


async def test_draining_gives_up_after_its_timeout() -> None:
    sink = SlowSink()  # never opened: every record waits
    queue = _queue(sink)
    queue.put(POD, "Normal", "Created", "Created")
    await asyncio.wait_for(queue.drain(0.05), 1)
    assert sink.created == []
