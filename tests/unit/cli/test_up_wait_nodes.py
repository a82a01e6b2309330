"""``corral up --apply`` applies only once every node it started is Ready.

A fake client plays back one node list per poll; a fake clock moves a
second per poll, so nothing sleeps for long.
"""

from __future__ import annotations

import io

from corral.api.resources import ResourceType
from corral.client.rest import ConnectionFailed
from corral.objects import Obj
from corralctl import readiness


def node(name: str, ready: str | None) -> Obj:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {"metadata": {"name": name}, "status": {"conditions": conditions}}


class Polls:
    """Each list answers the next state; an exception in the list is raised instead."""

    def __init__(self, states: list[list[Obj] | Exception]) -> None:
        self.states = states
        self.calls = 0
        self.now = 0.0

    async def list(self, rt: ResourceType, namespace: str | None = None) -> Obj:
        assert rt.kind == "Node"
        state = self.states[min(self.calls, len(self.states) - 1)]
        self.calls += 1
        self.now += 1.0
        if isinstance(state, Exception):
            raise state
        return {"items": state}

    def clock(self) -> float:
        return self.now


async def test_it_waits_for_every_node_not_just_the_first_to_register() -> None:
    polls = Polls(
        [
            [node("n-0", "True")],
            ConnectionFailed("the API server is restarting"),
            [node("n-0", "True"), node("n-1", "Unknown"), node("n-2", None)],
            [node("n-0", "True"), node("n-1", "True"), node("n-2", "True")],
        ]
    )
    out = io.StringIO()
    missing = await readiness.wait_nodes_ready(
        polls, ["n-0", "n-1", "n-2"], 60, out=out, interval=0, clock=polls.clock
    )
    assert missing == []
    assert polls.calls == 4
    assert "all 3 nodes Ready" in out.getvalue()


async def test_it_names_the_nodes_still_not_ready_when_time_runs_out() -> None:
    polls = Polls([[node("n-0", "True"), node("n-1", "False")]])
    missing = await readiness.wait_nodes_ready(
        polls, ["n-0", "n-1", "n-2"], 5, out=io.StringIO(), interval=0, clock=polls.clock
    )
    assert missing == ["n-1", "n-2"]
    assert 5 <= polls.calls <= 6
