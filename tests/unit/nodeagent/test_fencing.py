"""Self-fencing: which pods a silent node stops, when, and what brings them back."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from corral.clock import ManualClock
from corral.objects import Obj
from nodeagent.agent import Agent
from nodeagent.fencing import SelfFence, must_not_run_twice


def owned_by(kind: str, uid: str = "p") -> Obj:
    return {
        "metadata": {
            "uid": uid,
            "ownerReferences": [{"kind": kind, "name": "x", "uid": "o", "controller": True}],
        }
    }


class FakeWorker:
    def __init__(self, pod: Obj | None) -> None:
        self.pod = pod
        self.wanted = True
        self.started = True

    def start(self) -> None:
        self.started = True

    def update(self, pod: Obj | None) -> None:
        self.wanted = pod is not None


async def settle() -> None:
    """Let the fence loop run up to its next sleep."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_which_pods_must_not_run_twice() -> None:
    assert must_not_run_twice(owned_by("StatefulSet"))
    assert not must_not_run_twice(owned_by("ReplicaSet"))
    assert not must_not_run_twice({"metadata": {}})
    # An adopted pod whose object the agent has not seen yet: it cannot tell.
    assert must_not_run_twice(None)


def test_the_fence_counts_from_the_send_time_of_the_last_acknowledged_heartbeat() -> None:
    clock = ManualClock()
    fence = SelfFence(clock, 20.0)
    clock.advance(15)
    fence.acknowledged(clock.monotonic() - 3)  # sent 3 s ago, answered now
    clock.advance(16.9)
    assert not fence.due()
    clock.advance(0.1)
    assert fence.due()
    # An old answer arriving late does not push the deadline back.
    fence.acknowledged(1.0)
    assert fence.due()
    assert not SelfFence(clock, 0).due()


async def test_a_silent_agent_stops_only_its_stateful_pods_and_relists_before_restarting() -> None:
    clock = ManualClock()
    sts_worker = FakeWorker(owned_by("StatefulSet", "sts-pod"))
    rs_worker = FakeWorker(owned_by("ReplicaSet", "rs-pod"))
    adopted = FakeWorker(None)
    adopted.started = False
    agent: Any = SimpleNamespace(
        clock=clock,
        fence=SelfFence(clock, 20.0),
        workers={"sts-pod": sts_worker, "rs-pod": rs_worker, "adopted": adopted},
    )
    loop = asyncio.create_task(Agent._fence_loop(agent))
    try:
        await settle()
        clock.advance(19.0)
        await settle()
        assert sts_worker.wanted and not agent.fence.fenced
        clock.advance(1.0)
        await settle()
        assert agent.fence.fenced
        assert not sts_worker.wanted and not adopted.wanted and adopted.started
        assert rs_worker.wanted
        # While fenced, the watch may not start it again from what it remembers.
        assert agent.fence.holds("sts-pod")
        agent.fence.relisted()
        assert not agent.fence.holds("sts-pod") and not agent.fence.fenced
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
