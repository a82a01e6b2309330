"""The scheduler's loop against a fake API: assume, bind beside it, explain, retry."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from corral.api.errors import ApiError
from corral.clock import ManualClock
from corral.objects import Obj
from scheduler.binder import ClientBinder
from scheduler.config import SchedulerConfig
from scheduler.scheduler import Scheduler
from tests.unit.scheduler.builders import node, pod


class FakeApi:
    """Just what the scheduler calls: binding, status patches and event creates."""

    def __init__(self) -> None:
        self.bound: dict[str, str] = {}
        self.patches: list[tuple[str, Obj]] = []
        self.events: list[Obj] = []
        self.gate: asyncio.Event | None = None
        self.failures: dict[str, list[ApiError]] = {}
        self.in_flight = 0

    async def subresource(
        self, rt: Any, name: str, sub: str, body: Obj, namespace: str | None = None
    ) -> Obj:
        assert sub == "binding"
        self.in_flight += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            pending = self.failures.get(name)
            if pending:
                raise pending.pop(0)
            assert name not in self.bound, f"{name} bound twice"
            self.bound[name] = body["target"]["name"]
            return {"kind": "Status", "status": "Success"}
        finally:
            self.in_flight -= 1

    async def patch(
        self, rt: Any, name: str, patch: Obj, namespace: str | None = None, **_: Any
    ) -> Obj:
        self.patches.append((name, patch))
        return {}

    async def create(self, rt: Any, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        self.events.append(obj)
        return obj


class Harness:
    def __init__(self, scheduler: Scheduler, api: FakeApi, clock: ManualClock) -> None:
        self.scheduler = scheduler
        self.api = api
        self.clock = clock
        self.version = 1

    def event(self, resource: str, kind: str, obj: Obj) -> None:
        self.version += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.version)}}
        self.scheduler.informers[resource].apply({"type": kind, "object": obj})

    def bound_event(self, name: str) -> None:
        """What the watch shows once a bind went through."""
        obj = pod(name, cpu="1", node_name=self.api.bound[name])
        self.event("pods", "MODIFIED", obj)

    async def until(self, check: Any, message: str = "condition") -> None:
        for _ in range(200):
            if check():
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{message} never happened")


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    api = FakeApi()
    clock = ManualClock()
    scheduler = Scheduler(
        api,  # type: ignore[arg-type]
        SchedulerConfig(bind_concurrency=4),
        clock=clock,
        rng=random.Random(1),
        binder=ClientBinder(api),
    )
    for informer in scheduler.informers.values():
        informer.replace([], "1")
    stop = asyncio.Event()
    loop = asyncio.create_task(scheduler.run(stop))
    yield Harness(scheduler, api, clock)
    stop.set()
    if api.gate is not None:
        api.gate.set()
    await asyncio.wait_for(loop, 5)


async def test_pods_are_assumed_before_their_binds_finish(harness: Harness) -> None:
    harness.api.gate = asyncio.Event()
    harness.event("nodes", "ADDED", node("n1", cpu="2"))
    for name in ("a", "b", "c"):
        harness.event("pods", "ADDED", pod(name, cpu="1"))
    await harness.until(lambda: harness.api.in_flight == 2, "two binds in flight")
    # The third pod saw the first two as using the node while no bind had finished.
    await harness.until(lambda: harness.api.patches, "an explanation")
    name, patch = harness.api.patches[0]
    assert name == "c"
    condition = patch["status"]["conditions"][0]
    assert condition["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert harness.api.events[0]["reason"] == "FailedScheduling"
    assert harness.api.events[0]["message"] == condition["message"]
    harness.api.gate.set()
    await harness.until(lambda: len(harness.api.bound) == 2, "both binds")
    assert set(harness.api.bound) == {"a", "b"}


async def test_an_unschedulable_pod_is_explained_once(harness: Harness) -> None:
    harness.event("nodes", "ADDED", node("n1", cpu="1"))
    harness.event("pods", "ADDED", pod("big", cpu="2"))
    await harness.until(lambda: harness.api.events, "an event")
    harness.clock.advance(400)  # past the long bound: retried, same outcome
    await harness.until(lambda: harness.scheduler.metrics.unschedulable.value >= 2, "a retry")
    assert len(harness.api.events) == 1 and len(harness.api.patches) == 1


async def test_a_new_node_that_fits_gets_the_pod_at_once(harness: Harness) -> None:
    harness.event("nodes", "ADDED", node("small", cpu="1"))
    harness.event("pods", "ADDED", pod("big", cpu="2"))
    await harness.until(lambda: harness.api.events, "an event")
    harness.event("nodes", "ADDED", node("other-small", cpu="1"))
    await asyncio.sleep(0)
    assert harness.scheduler.queue.counts()["unschedulable"] == 1  # did not fit: not retried
    harness.event("nodes", "ADDED", node("large", cpu="4"))
    # No clock advance: the node's arrival alone moves the pod.
    await harness.until(lambda: harness.api.bound.get("big") == "large", "the bind")


async def test_a_deleted_pod_frees_room_for_a_waiting_one(harness: Harness) -> None:
    harness.event("nodes", "ADDED", node("n1", cpu="2"))
    harness.event("pods", "ADDED", pod("first", cpu="2"))
    await harness.until(lambda: "first" in harness.api.bound, "the first bind")
    harness.bound_event("first")
    harness.event("pods", "ADDED", pod("second", cpu="2"))
    await harness.until(lambda: harness.api.events, "an explanation")
    harness.event("pods", "DELETED", pod("first", cpu="2", node_name="n1"))
    await harness.until(lambda: "second" in harness.api.bound, "the second bind")


async def test_a_failed_bind_forgets_and_retries_after_backoff(harness: Harness) -> None:
    harness.api.failures["a"] = [ApiError(500, "InternalError", "etcd hiccup")]
    harness.event("nodes", "ADDED", node("n1", cpu="1"))
    harness.event("pods", "ADDED", pod("a", cpu="1"))
    await harness.until(lambda: harness.scheduler.metrics.bind_failures.value == 1, "a failure")
    n1 = harness.scheduler.cache.node("n1")
    assert n1 is not None and n1.requested_cpu == 0  # the assumption is undone
    assert harness.scheduler.queue.counts()["backoff"] == 1
    harness.clock.advance(1)
    await harness.until(lambda: harness.api.bound.get("a") == "n1", "the retried bind")


async def test_a_conflict_on_bind_drops_the_pod(harness: Harness) -> None:
    harness.api.failures["a"] = [ApiError(409, "Conflict", "already assigned")]
    harness.event("nodes", "ADDED", node("n1"))
    harness.event("pods", "ADDED", pod("a"))
    await harness.until(lambda: harness.scheduler.metrics.bind_failures.value == 1, "a failure")
    assert len(harness.scheduler.queue) == 0
    assert "default/a" not in harness.scheduler.queue


async def test_pods_of_other_schedulers_and_bound_pods_are_left_alone(harness: Harness) -> None:
    harness.event("nodes", "ADDED", node("n1", cpu="2"))
    harness.event("pods", "ADDED", pod("theirs", scheduler_name="other"))
    harness.event("pods", "ADDED", pod("placed", cpu="2", node_name="n1"))
    harness.event("pods", "ADDED", pod("mine", cpu="1"))
    await harness.until(lambda: harness.api.events, "an explanation")
    assert harness.api.bound == {}
    assert "Insufficient cpu" in harness.api.events[0]["message"]


async def test_a_status_update_does_not_requeue_but_a_spec_update_does(harness: Harness) -> None:
    harness.event("nodes", "ADDED", node("n1", labels={"disk": "hdd"}))
    wants_ssd = pod("a", node_selector={"disk": "ssd"})
    harness.event("pods", "ADDED", wants_ssd)
    await harness.until(lambda: harness.api.events, "an explanation")
    attempts = harness.scheduler.metrics.unschedulable.value
    explained = {
        **wants_ssd,
        "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]},
    }
    harness.event("pods", "MODIFIED", explained)
    await asyncio.sleep(0)
    assert harness.scheduler.metrics.unschedulable.value == attempts
    harness.event("pods", "MODIFIED", pod("a", node_selector={"disk": "hdd"}))
    await harness.until(lambda: harness.api.bound.get("a") == "n1", "the bind")


async def test_the_watch_confirms_and_a_second_pod_sees_the_first(harness: Harness) -> None:
    harness.event("nodes", "ADDED", node("n1", cpu="1"))
    harness.event("nodes", "ADDED", node("n2", cpu="1"))
    harness.event("pods", "ADDED", pod("a", cpu="1"))
    await harness.until(lambda: "a" in harness.api.bound, "the first bind")
    harness.bound_event("a")
    assert not harness.scheduler.cache.is_assumed("default/a")
    harness.event("pods", "ADDED", pod("b", cpu="1"))
    await harness.until(lambda: "b" in harness.api.bound, "the second bind")
    assert harness.api.bound["a"] != harness.api.bound["b"]


async def test_a_plugin_crash_costs_the_pod_a_backoff_not_the_loop(harness: Harness) -> None:
    pipeline = harness.scheduler.pipeline
    real = pipeline.schedule
    crashed: list[str] = []

    def flaky(pod: Any, nodes: Any) -> Any:
        if pod.name == "unlucky" and not crashed:
            crashed.append(pod.name)
            raise KeyError("a plugin bug")
        return real(pod, nodes)

    pipeline.schedule = flaky  # type: ignore[method-assign]
    harness.event("nodes", "ADDED", node("n1"))
    harness.event("pods", "ADDED", pod("unlucky"))
    harness.event("pods", "ADDED", pod("fine"))
    await harness.until(lambda: "fine" in harness.api.bound, "the next pod bound")
    assert harness.scheduler.metrics.errors.value == 1
    harness.clock.advance(1)
    await harness.until(lambda: "unlucky" in harness.api.bound, "the retry after backoff")


HOSTNAME = "kubernetes.io/hostname"


async def test_a_pod_an_uncordon_could_not_place_yet_waits_for_what_refuses_it_now(
    harness: Harness,
) -> None:
    # A drained node's StatefulSet pod comes back while its predecessor is
    # still terminating there: the uncordon helps, the old pod's anti-affinity
    # still refuses, and that pod's deletion must be what places the new one.
    keep_apart = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": HOSTNAME}
            ]
        }
    }
    old = pod("db-old", labels={"app": "db"}, node_name="n1", affinity=keep_apart)
    old["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    harness.event("nodes", "ADDED", node("n1", cpu="2", unschedulable=True))
    harness.event("pods", "ADDED", old)
    harness.event(
        "pods",
        "ADDED",
        pod("db-new", labels={"app": "db"}, affinity=keep_apart, node_selector={HOSTNAME: "n1"}),
    )
    await harness.until(lambda: harness.api.events, "an explanation")
    harness.event("nodes", "MODIFIED", node("n1", cpu="2"))
    await asyncio.sleep(0)
    assert "db-new" not in harness.api.bound
    assert harness.scheduler.queue.counts()["unschedulable"] == 1
    harness.event("pods", "DELETED", old)
    await harness.until(lambda: harness.api.bound.get("db-new") == "n1", "the bind")
