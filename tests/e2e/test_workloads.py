"""Controllers and the scheduler over three real nodes: dead nodes, drains, bad rollouts.

Each test gets a cluster of its own (etcd, API server, controller manager,
scheduler) and three node agents on the shared test dockerd, so no other
test's nodes can take its pods. Node lifecycle runs with short timings;
the figures measured here are printed for docs/benchmarks.md, never
asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corral.objects import Obj
from tests.conftest import LocalCluster
from tests.e2e.conftest import (
    TEST_IMAGE,
    AgentProcess,
    Agents,
    Dockerd,
    control_plane,
    wait_for_node,
)
from tests.support import eventually, resource

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GRACE_SECONDS = 8.0
TOLERATION_SECONDS = 8.0


PODS, RCS, NODES = resource("pods"), resource("replicationcontrollers"), resource("nodes")
DEPLOYMENTS, PDBS = resource("deployments"), resource("poddisruptionbudgets")


@dataclass
class Fleet:
    cluster: LocalCluster
    client: Client
    agents: Agents
    nodes: list[AgentProcess]

    async def pods(self, selector: str) -> list[Obj]:
        found = await self.client.list(PODS, "default", label_selector=selector)
        return list(found["items"])

    async def running(self, selector: str) -> list[Obj]:
        return [
            p
            for p in await self.pods(selector)
            if (p.get("status") or {}).get("phase") == "Running"
            and not (p.get("metadata") or {}).get("deletionTimestamp")
        ]

    async def ready(self, selector: str) -> list[Obj]:
        return [
            p
            for p in await self.running(selector)
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]


@pytest.fixture
async def fleet(
    cluster_factory: Callable[..., LocalCluster],
    dockerd: Dockerd,
    test_image: str,
    tmp_path: Path,
) -> AsyncIterator[Fleet]:
    cluster = cluster_factory()
    processes = control_plane(cluster, tmp_path, grace=GRACE_SECONDS, toleration=TOLERATION_SECONDS)
    for process in processes:
        process.start()
    pool = Agents(cluster, dockerd, tmp_path)
    try:
        nodes = [pool.start(backoff_base=1.0) for _ in range(3)]
        for node in nodes:
            wait_for_node(cluster, node.node)
        async with Client(cluster.client_config(), max_connections=16) as client:
            yield Fleet(cluster, client, pool, nodes)
    finally:
        pool.stop_all()
        for process in processes:
            process.stop()


def _rc(name: str, replicas: int, **container: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": TEST_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": [
                                "sh",
                                "-c",
                                "mkdir -p /w; echo ok > /w/i; httpd -f -p 8080 -h /w",
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/i", "port": 8080},
                                "periodSeconds": 1,
                            },
                            **container,
                        }
                    ],
                },
            },
        },
    }


def corral(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corralctl.main", *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=240,
    )


def _nodes_of(pods: list[Obj]) -> list[str]:
    return sorted((p.get("spec") or {}).get("nodeName", "") for p in pods)


async def test_a_dead_nodes_replicas_come_back_elsewhere_and_never_twice(
    fleet: Fleet, dockerd: Dockerd
) -> None:
    await fleet.client.create(RCS, _rc("svc", 3), "default")

    async def spread() -> list[Obj] | None:
        ready = await fleet.ready("app=svc")
        return ready if len(ready) == 3 else None

    pods = await eventually(spread, timeout=90, message="3 replicas ready")
    victim = next(a for a in fleet.nodes if a.node in _nodes_of(pods))
    doomed = {p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == victim.node}

    victim.kill()
    docker = dockerd.client()
    for container in docker.containers.list(
        all=True, filters={"label": "io.corral.node=" + victim.node}
    ):
        container.remove(force=True)
    died = time.monotonic()

    async def replaced() -> list[Obj] | None:
        running = await fleet.running("app=svc")
        elsewhere = [p for p in running if p["spec"]["nodeName"] != victim.node]
        return elsewhere if len(elsewhere) == 3 else None

    await eventually(
        replaced, timeout=GRACE_SECONDS + TOLERATION_SECONDS + 60, message="replacements"
    )
    recovery = time.monotonic() - died
    print(f"\nFIGURE node death to replacements Running: {recovery:.1f} s "
          f"(grace {GRACE_SECONDS:.0f} s + toleration {TOLERATION_SECONDS:.0f} s)")  # fmt: skip
    names = {p["metadata"]["name"] for p in await fleet.running("app=svc")}
    assert not names & doomed

    # The node returns: it must not run what the API moved away.
    victim.process.start()

    async def back() -> bool:
        # Ready again means the agent has re-registered and synced its pods.
        node = await fleet.client.get(NODES, victim.node)
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    await eventually(back, timeout=60, message="the node Ready again")

    def containers_running() -> int:
        count = 0
        for agent in fleet.nodes:
            label = f"io.corral.node={agent.node}"
            for c in docker.containers.list(filters={"label": label}):
                if c.labels.get("io.corral.pod.name", "").startswith("svc-") and (
                    c.labels.get("io.corral.container.name") == "main"
                ):
                    count += 1
        return count

    assert containers_running() == 3
    assert len(await fleet.running("app=svc")) == 3


async def test_drain_respects_the_disruption_budget(fleet: Fleet) -> None:
    first, *others = fleet.nodes
    for agent in others:
        assert corral(fleet.cluster, "cordon", agent.node).returncode == 0
    await fleet.client.create(RCS, _rc("db", 2), "default")
    await eventually(
        lambda: _count(fleet.ready("app=db"), 2), timeout=90, message="2 ready on one node"
    )
    assert _nodes_of(await fleet.ready("app=db")) == [first.node, first.node]
    assert corral(fleet.cluster, "uncordon", others[0].node).returncode == 0
    await fleet.client.patch(RCS, "db", {"spec": {"replicas": 3}}, "default")
    await eventually(lambda: _count(fleet.ready("app=db"), 3), timeout=90, message="3 ready")
    await fleet.client.create(
        PDBS,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "db"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}},
        },
        "default",
    )
    assert corral(fleet.cluster, "uncordon", others[1].node).returncode == 0

    lowest = 3
    drain = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "corralctl.main", "drain", first.node, "--timeout", "180s",
        "--kubeconfig", str(fleet.cluster.kubeconfig),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 200
    while drain.returncode is None and time.monotonic() < deadline:
        lowest = min(lowest, len(await fleet.ready("app=db")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain.wait(), 0.2)
    output = (await drain.communicate())[0].decode()
    assert drain.returncode == 0, output
    assert lowest >= 2, f"only {lowest} ready during the drain"
    await eventually(lambda: _count(fleet.ready("app=db"), 3), timeout=90, message="3 ready again")
    assert first.node not in _nodes_of(await fleet.ready("app=db"))


async def _count(pods: Any, wanted: int) -> bool:
    return len(await pods) == wanted


def _deployment(image: str) -> Obj:
    template = _rc("web", 3)["spec"]["template"]
    template["spec"]["containers"][0]["image"] = image
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "progressDeadlineSeconds": 15,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
            },
            "template": template,
        },
    }


async def test_a_rollout_to_a_missing_image_stalls_then_undo_restores_it(fleet: Fleet) -> None:
    await fleet.client.create(DEPLOYMENTS, _deployment(TEST_IMAGE), "default")
    await eventually(lambda: _count(fleet.ready("app=web"), 3), timeout=90, message="3 ready")
    started = time.monotonic()
    status = corral(fleet.cluster, "rollout", "status", "deployment/web", "--timeout", "60s")
    assert status.returncode == 0, status.stdout + status.stderr

    missing = {"name": "main", "image": "corral-test/missing:1"}
    await fleet.client.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [missing]}}}},
        "default",
        patch_type="strategic",
    )

    lowest = 3

    async def stalled() -> Obj | None:
        nonlocal lowest
        lowest = min(lowest, len(await fleet.ready("app=web")))
        deployment = await fleet.client.get(DEPLOYMENTS, "web", "default")
        for condition in (deployment.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("status") == "False":
                return dict(condition)
        return None

    condition = await eventually(stalled, timeout=90, interval=0.2, message="Progressing=False")
    assert condition["reason"] == "ProgressDeadlineExceeded"
    assert lowest >= 2, "the bad rollout went below replicas - maxUnavailable"
    failed = corral(fleet.cluster, "rollout", "status", "deployment/web", "--timeout", "5s")
    assert failed.returncode != 0

    undo = corral(fleet.cluster, "rollout", "undo", "deployment/web")
    assert undo.returncode == 0, undo.stderr
    done = corral(fleet.cluster, "rollout", "status", "deployment/web", "--timeout", "90s")
    assert done.returncode == 0, done.stdout + done.stderr
    ready = await fleet.ready("app=web")
    assert len(ready) == 3
    assert {p["spec"]["containers"][0]["image"] for p in ready} == {TEST_IMAGE}
    print(f"\nFIGURE bad rollout, stall and undo of 3 replicas: {time.monotonic() - started:.1f} s")


async def test_a_rolling_update_of_ten_replicas_keeps_availability(fleet: Fleet) -> None:
    body = _deployment(TEST_IMAGE)
    body["spec"]["replicas"] = 10
    body["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 2, "maxUnavailable": 2}
    await fleet.client.create(DEPLOYMENTS, body, "default")
    await eventually(lambda: _count(fleet.ready("app=web"), 10), timeout=180, message="10 ready")

    started = time.monotonic()
    revision = {"name": "main", "env": [{"name": "REVISION", "value": "2"}]}
    await fleet.client.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [revision]}}}},
        "default",
        patch_type="strategic",
    )
    lowest = 10

    async def rolled() -> bool:
        nonlocal lowest
        ready = await fleet.ready("app=web")
        lowest = min(lowest, len(ready))
        fresh = [
            p
            for p in ready
            if any(e.get("value") == "2" for e in p["spec"]["containers"][0].get("env") or [])
        ]
        return len(fresh) == 10 and len(await fleet.pods("app=web")) == 10

    await eventually(rolled, timeout=300, interval=0.2, message="10 replicas of revision 2")
    print(f"\nFIGURE rolling update of 10 replicas (maxSurge 2, maxUnavailable 2): "
          f"{time.monotonic() - started:.1f} s, fewest ready {lowest}")  # fmt: skip
    assert lowest >= 8, f"availability fell to {lowest}, below replicas - maxUnavailable"


async def test_an_rc_goes_from_zero_to_a_hundred_running_replicas(fleet: Fleet) -> None:
    body = _rc("hundred", 0)
    # No probe: the figure is the time to Running, as Kubernetes' startup SLO counts it.
    del body["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    await fleet.client.create(RCS, body, "default")
    started = time.monotonic()
    await fleet.client.patch(RCS, "hundred", {"spec": {"replicas": 100}}, "default")
    await eventually(
        lambda: _count(fleet.running("app=hundred"), 100), timeout=600, interval=0.5,
        message="100 replicas Running",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    spread = Counter(_nodes_of(await fleet.running("app=hundred")))
    print(
        f"\nFIGURE RC from 0 to 100 replicas Running on 3 nodes: {elapsed:.1f} s ({dict(spread)})"
    )
    assert len(spread) == 3, spread


async def test_with_auto_rollback_a_stalled_rollout_undoes_itself(fleet: Fleet) -> None:
    body = _deployment(TEST_IMAGE)
    body["metadata"]["annotations"] = {"deployment.corral.io/auto-rollback": "true"}
    await fleet.client.create(DEPLOYMENTS, body, "default")
    await eventually(lambda: _count(fleet.ready("app=web"), 3), timeout=90, message="3 ready")
    missing = {"name": "main", "image": "corral-test/missing:1"}
    await fleet.client.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [missing]}}}},
        "default",
        patch_type="strategic",
    )

    async def rolled_back() -> bool:
        deployment = await fleet.client.get(DEPLOYMENTS, "web", "default")
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        ready = await fleet.ready("app=web")
        return (
            image == TEST_IMAGE
            and len(ready) == 3
            and all(p["spec"]["containers"][0]["image"] == TEST_IMAGE for p in ready)
        )

    await eventually(rolled_back, timeout=120, interval=0.5, message="rolled back by itself")


async def test_deletes_cascade_or_orphan_and_a_namespace_takes_everything(fleet: Fleet) -> None:
    await fleet.client.create(RCS, _rc("kept", 2), "default")
    await fleet.client.create(RCS, _rc("gone", 2), "default")
    for app in ("kept", "gone"):
        await eventually(lambda app=app: _count(fleet.running(f"app={app}"), 2), timeout=90,
                         message=f"{app} running")  # fmt: skip
    orphaned = corral(fleet.cluster, "delete", "rc", "kept", "--cascade=orphan")
    assert orphaned.returncode == 0, orphaned.stderr
    cascaded = corral(fleet.cluster, "delete", "rc", "gone")
    assert cascaded.returncode == 0, cascaded.stderr
    await eventually(lambda: _count(fleet.pods("app=gone"), 0), timeout=90, message="cascade")

    async def released() -> bool:
        pods = await fleet.pods("app=kept")
        return all(not p["metadata"].get("ownerReferences") for p in pods)

    await eventually(released, timeout=30, message="orphans released")
    kept = await fleet.pods("app=kept")
    assert len(kept) == 2 and all(not p["metadata"].get("ownerReferences") for p in kept)

    namespaces = REGISTRY.resolve("namespaces")
    assert namespaces is not None
    await fleet.client.create(namespaces, {"metadata": {"name": "doomed"}})
    body = _rc("inside", 2)
    await fleet.client.create(RCS, body, "doomed")

    async def inside_running() -> bool:
        found = await fleet.client.list(PODS, "doomed")
        return (
            sum(1 for p in found["items"] if (p.get("status") or {}).get("phase") == "Running") == 2
        )

    await eventually(inside_running, timeout=90, message="pods in the namespace")
    await fleet.client.delete(namespaces, "doomed")

    async def namespace_gone() -> bool:
        listed = await fleet.client.list(namespaces)
        return all(n["metadata"]["name"] != "doomed" for n in listed["items"])

    await eventually(namespace_gone, timeout=120, interval=0.5, message="namespace removed")
