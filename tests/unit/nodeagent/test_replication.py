"""The agent's half of a replicated set, against a pretend database that obeys its hooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from corral import replication
from corral.clock import ManualClock
from corral.objects import Obj
from nodeagent.replication import PodReplication

HOOKS_TEXT = json.dumps(
    {
        "container": "db",
        "status": ["db", "status"],
        "promote": ["db", "promote"],
        "demote": ["db", "demote"],
        "follow": ["db", "follow"],
        "rebuild": ["db", "rebuild"],
        "leaseSeconds": 12,
    }
)
HOOKS = replication.parse_hooks(HOOKS_TEXT)


class Database:
    """What the hooks change: a role, whether it takes writes, and what it follows."""

    def __init__(self, role: str = "replica", writable: bool = False) -> None:
        self.role = role
        self.writable = writable
        self.following = ""
        self.diverged = False
        self.demote_fails = False
        self.calls: list[str] = []

    def run(self, command: list[str]) -> tuple[int, bytes]:
        verb = command[1]
        if verb != "status":
            self.calls.append(" ".join(command[1:]))
        if verb == "status":
            answer = {"role": self.role, "position": [7], "writable": self.writable}
            return 0, json.dumps(answer).encode()
        if verb == "promote":
            self.role, self.writable, self.following = "primary", True, ""
        elif verb == "demote":
            if self.demote_fails:
                return 1, b"lost the server"
            self.writable = False
        elif verb == "follow":
            if self.diverged:
                return replication.DIVERGED_EXIT_CODE, b"errant transactions"
            self.role, self.following = "replica", command[2]
        elif verb == "rebuild":
            self.role, self.following, self.diverged = "replica", command[2], False
        return 0, b"done"


class Runtime:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.stopped: list[str] = []

    async def exec(self, container_id: str, command: list[str], *, timeout: float) -> Any:
        return self.db.run(command)

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        self.stopped.append(container_id)


class Host:
    def __init__(self, db: Database) -> None:
        self.runtime: Any = Runtime(db)
        self.clock = ManualClock()
        self.contact = self.clock.monotonic()
        self.conditions: list[Obj] = []
        self.events: list[str] = []

    def container_id(self, uid: str, container: str) -> str | None:
        return "c1" if container == "db" else None

    def last_contact(self) -> float:
        return self.contact

    def report_replication(self, pod: Obj, condition: Obj) -> None:
        self.conditions.append(condition)

    async def event(self, pod: Obj, kind: str, reason: str, message: str, fp: str = "") -> None:
        self.events.append(reason)


def pod(primary: str = "", epoch: int = 0, address: str = "", **extra: str) -> Obj:
    annotations = {replication.HOOKS_ANNOTATION: HOOKS_TEXT, **extra}
    if epoch:
        annotations |= {
            replication.PRIMARY_ANNOTATION: primary,
            replication.PRIMARY_ADDRESS_ANNOTATION: address,
            replication.EPOCH_ANNOTATION: str(epoch),
        }
    return {"metadata": {"name": "db-0", "uid": "u0", "annotations": annotations}}


def last_report(host: Host) -> replication.Report | None:
    return replication.report_of({"status": {"conditions": host.conditions[-1:]}})


async def step(worker: PodReplication, obj: Obj) -> None:
    worker.pod = obj
    await worker.step(HOOKS)


async def test_the_elected_pod_is_promoted_and_reports_it_converged() -> None:
    db = Database()
    host = Host(db)
    worker = PodReplication(host, "u0")  # type: ignore[arg-type]
    await step(worker, pod("db-0", 1, "10.0.0.1"))
    assert db.calls == ["promote"]
    assert last_report(host) == replication.Report("primary", (7,), True, 1)
    await step(worker, pod("db-0", 1, "10.0.0.1"))
    assert db.calls == ["promote"]


async def test_before_any_election_it_only_reports() -> None:
    db = Database(role="empty")
    host = Host(db)
    worker = PodReplication(host, "u0")  # type: ignore[arg-type]
    await step(worker, pod())
    assert db.calls == []
    assert last_report(host) == replication.Report("empty", (7,), False, 0)


async def test_a_primary_cut_off_for_half_a_lease_fences_itself_and_waits_for_a_new_election() -> (
    None
):
    db = Database(role="primary", writable=True)
    host = Host(db)
    worker = PodReplication(host, "u0")  # type: ignore[arg-type]
    await step(worker, pod("db-0", 1, "10.0.0.1"))
    host.clock.advance(HOOKS.fence_seconds - 0.1)
    await step(worker, pod("db-0", 1, "10.0.0.1"))
    assert db.writable
    host.clock.advance(0.2)
    await step(worker, pod("db-0", 1, "10.0.0.1"))
    assert not db.writable
    assert db.calls == ["demote"]
    assert last_report(host) == replication.Report("primary", (7,), False, 0)
    # Back in touch, but what it knows of election 1 may be stale: no promote.
    host.contact = host.clock.monotonic()
    await step(worker, pod("db-0", 1, "10.0.0.1"))
    assert db.calls == ["demote"]
    # Elected again (election 2): now it may.
    await step(worker, pod("db-0", 2, "10.0.0.1"))
    assert db.calls == ["demote", "promote"]
    assert db.writable


async def test_a_fence_the_demote_hook_cannot_make_sure_of_stops_the_container() -> None:
    db = Database(role="primary", writable=True)
    db.demote_fails = True
    host = Host(db)
    worker = PodReplication(host, "u0")  # type: ignore[arg-type]
    host.clock.advance(HOOKS.fence_seconds)
    await step(worker, pod("db-0", 1, "10.0.0.1"))
    assert host.runtime.stopped == ["c1"]
    await step(worker, pod("db-0", 1, "10.0.0.1"))
    assert host.runtime.stopped == ["c1"]


async def test_another_pods_election_demotes_this_one_before_it_follows() -> None:
    db = Database(role="primary", writable=True)
    host = Host(db)
    worker = PodReplication(host, "u0")  # type: ignore[arg-type]
    await step(worker, pod("db-1", 2, "10.0.0.2"))
    assert db.calls == ["demote", "follow 10.0.0.2"]
    assert last_report(host) == replication.Report("replica", (7,), False, 2)


async def test_a_diverged_copy_is_rebuilt_and_an_empty_one_rebuilt_at_once() -> None:
    db = Database(role="replica")
    db.diverged = True
    host = Host(db)
    worker = PodReplication(host, "u0")  # type: ignore[arg-type]
    await step(worker, pod("db-1", 2, "10.0.0.2"))
    assert db.calls == ["follow 10.0.0.2", "rebuild 10.0.0.2"]
    assert worker.converged == 2

    empty = Database(role="empty")
    host = Host(empty)
    worker = PodReplication(host, "u0")  # type: ignore[arg-type]
    await step(worker, pod("db-1", 2, "10.0.0.2"))
    assert empty.calls == ["rebuild 10.0.0.2"]


async def test_a_switchover_demotes_the_primary_and_keeps_it_converged() -> None:
    db = Database(role="primary", writable=True)
    host = Host(db)
    worker = PodReplication(host, "u0")  # type: ignore[arg-type]
    await step(worker, pod("db-0", 1, "10.0.0.1", **{replication.DEMOTE_ANNOTATION: "true"}))
    assert db.calls == ["demote"]
    assert last_report(host) == replication.Report("primary", (7,), False, 1)


async def test_only_the_controllers_word_starts_a_round_early() -> None:
    """The loop's own published report changes the pod; that must not make it spin."""
    db = Database(role="primary", writable=True)
    host = Host(db)
    statuses: list[float] = []
    run = db.run

    def counting(command: list[str]) -> tuple[int, bytes]:
        if command[1] == "status":
            statuses.append(asyncio.get_running_loop().time())
        return run(command)

    db.run = counting  # type: ignore[method-assign]
    worker = PodReplication(host, "u0", jitter=lambda: 0.5)  # type: ignore[arg-type]
    elected = pod("db-0", 1, "10.0.0.1")
    try:
        worker.update(elected)
        await _until(lambda: last_report(host) is not None)
        settled = len(statuses)
        # What the agent's own report does to the pod: a new status, the same assignment.
        worker.update({**elected, "status": {"conditions": host.conditions[-1:]}})
        await asyncio.sleep(0.3)
        assert len(statuses) == settled, "a round started on the loop's own report"
        worker.update(pod("db-0", 1, "10.0.0.1", **{replication.DEMOTE_ANNOTATION: "true"}))
        await _until(lambda: db.calls == ["demote"])
    finally:
        await worker.stop()


async def _until(done: Callable[[], bool], timeout: float = 0.5) -> None:
    """Well inside the loop's 1 s period: only a wake-up can be this quick."""
    async with asyncio.timeout(timeout):
        # The fake has no event to wait on; a short poll is the plain way.
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
