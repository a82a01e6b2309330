"""The example stack's pods spread over three empty nodes, with or without requests.

The pods come from examples/gluster.json's templates, their Services and
controllers are known to the scheduler as a cluster's would be, and the
scheduler runs its real loop (fake API) over three equal, empty nodes.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.clock import ManualClock
from corral.objects import Obj
from scheduler.binder import ClientBinder
from scheduler.config import SchedulerConfig
from scheduler.scheduler import Scheduler
from tests.unit.scheduler.builders import node
from tests.unit.scheduler.test_scheduler import FakeApi, Harness

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gluster.json"
WORKLOADS = ("StatefulSet", "Deployment", "ReplicationController")


def stack() -> tuple[list[Obj], list[tuple[str, Obj]]]:
    """The example's pods (one per replica) and the selector objects the scheduler watches."""
    items = json.loads(EXAMPLE.read_text())["items"]
    pods: list[Obj] = []
    watched: list[tuple[str, Obj]] = []
    for item in items:
        kind, name = item["kind"], item["metadata"]["name"]
        item["metadata"].setdefault("namespace", "default")
        if kind == "Service":
            watched.append(("services", item))
        elif kind == "ReplicationController":
            watched.append(("replicationcontrollers", item))
        elif kind == "Deployment":
            # What the Deployment controller creates: a ReplicaSet with its selector.
            rs = {"kind": "ReplicaSet", "metadata": {"name": f"{name}-1", "namespace": "default"},
                  "spec": {"selector": item["spec"]["selector"]}}  # fmt: skip
            watched.append(("replicasets", rs))
        if kind not in WORKLOADS:
            continue
        template = item["spec"]["template"]
        for i in range(item["spec"].get("replicas", 1)):
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{name}-{i}",
                        "namespace": "default",
                        "uid": f"uid-{name}-{i}",
                        "labels": dict(template["metadata"]["labels"]),
                    },
                    "spec": copy.deepcopy(template["spec"]),
                    "status": {"phase": "Pending"},
                }
            )
    return pods, watched


def without_requests(obj: Obj) -> Obj:
    for container in obj["spec"]["containers"]:
        container.pop("resources", None)
    return obj


@pytest.fixture(params=range(1, 9))
async def seeded(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    api = FakeApi()
    clock = ManualClock()
    scheduler = Scheduler(
        api,  # type: ignore[arg-type]
        SchedulerConfig(bind_concurrency=8),
        clock=clock,
        rng=random.Random(request.param),
        binder=ClientBinder(api),
    )
    for informer in scheduler.informers.values():
        informer.replace([], "1")
    stop = asyncio.Event()
    loop = asyncio.create_task(scheduler.run(stop))
    yield Harness(scheduler, api, clock)
    stop.set()
    await asyncio.wait_for(loop, 5)


# Small nodes, where each pod's (default) requests move the resource scores;
# large ones, where they round away and the nodes' scores tie.
@pytest.mark.parametrize("size", [("2", "4Gi"), ("64", "256Gi")], ids=["small", "large"])
@pytest.mark.parametrize("requests", [True, False], ids=["requests", "no-requests"])
async def test_the_example_stacks_seven_pods_use_all_three_nodes(
    seeded: Harness, requests: bool, size: tuple[str, str]
) -> None:
    pods, watched = stack()
    assert len(pods) == 7
    cpu, memory = size
    for name in ("sim-0", "sim-1", "sim-2"):
        seeded.event("nodes", "ADDED", node(name, cpu=cpu, memory=memory))
    for resource, obj in watched:
        seeded.event(resource, "ADDED", obj)
    for obj in pods:
        if not requests:
            obj = without_requests(obj)
        # Claims are bound elsewhere; here only placement counts.
        obj["spec"].pop("volumes", None)
        seeded.event("pods", "ADDED", obj)
    await seeded.until(lambda: len(seeded.api.bound) == 7, "seven binds")
    per_node = Counter(seeded.api.bound.values())
    assert sorted(per_node.values()) == [2, 2, 3], seeded.api.bound
