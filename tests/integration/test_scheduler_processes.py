"""``python -m scheduler`` processes on private clusters: scale, and failover between two.

Each test starts a cluster of its own: the schedulers here are real
processes that watch everything, and one of them gets killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from corral.api.quantity import parse_quantity, to_int, to_milli
from corral.client.rest import Client
from corral.objects import Obj
from corralctl.processes import ManagedProcess, free_port, http_ok, wait_until
from tests.conftest import LocalCluster
from tests.support import eventually, resource
from tests.unit.scheduler.builders import node

PODS = resource("pods")
NODES = resource("nodes")
NAMESPACES = resource("namespaces")
LEASES = resource("leases")


@contextmanager
def scheduler_process(
    cluster: LocalCluster, log: Path, *extra: str, identity: str = "scheduler"
) -> Iterator[tuple[ManagedProcess, int]]:
    port = free_port()
    process = ManagedProcess(
        identity,
        [
            sys.executable,
            "-m",
            "scheduler",
            "--kubeconfig",
            str(cluster.component_kubeconfig("scheduler")),
            "--identity",
            identity,
            "--metrics-address",
            f"127.0.0.1:{port}",
            *extra,
        ],
        log,
    )
    process.start()
    try:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/readyz"),
            60,
            f"{identity} ready",
            alive=process.running,
        )
        yield process, port
    finally:
        process.stop()


async def _namespace(client: Client, name: str) -> None:
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


async def _create_all(client: Client, bodies: list[Obj], namespace: str, width: int = 32) -> None:
    queue = iter(bodies)

    async def worker() -> None:
        for body in queue:
            await client.create(PODS, body, namespace)

    await asyncio.gather(*(worker() for _ in range(width)))


def _pod(name: str, cpu: str, memory: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": f"app-{name[-1]}"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox:1",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ]
        },
    }


@pytest.mark.slow
async def test_5000_pods_on_100_nodes_never_overcommit(
    cluster_factory: Any, tmp_path: Path
) -> None:
    local: LocalCluster = cluster_factory()
    rng = random.Random(5000)
    async with Client(local.client_config(), max_connections=64) as client:
        # Mixed node sizes; the pods ask for about 90 % of the CPU and of the
        # pod slots in all, so nodes end up nearly full.
        for i in range(100):
            cpu, memory = rng.choice([("20", "32Gi"), ("24", "48Gi"), ("28", "64Gi")])
            await client.create(NODES, node(f"node-{i:03d}", cpu=cpu, memory=memory, pods="55"))
        await _namespace(client, "load")
        cpus = ["100m", "200m", "300m", "500m", "1"]
        memories = ["128Mi", "256Mi", "512Mi", "1Gi"]
        bodies = [_pod(f"p{i:04d}", rng.choice(cpus), rng.choice(memories)) for i in range(5000)]
        with scheduler_process(local, tmp_path / "scheduler.log", "--leader-elect", "false"):
            started = time.monotonic()
            await _create_all(client, bodies, "load")

            async def all_bound() -> list[Obj] | None:
                items: list[Obj] = (await client.list(PODS, "load"))["items"]
                return items if all(p["spec"].get("nodeName") for p in items) else None

            pods = await eventually(all_bound, timeout=300, interval=1.0, message="5,000 bound")
            elapsed = time.monotonic() - started
        nodes = {n["metadata"]["name"]: n for n in (await client.list(NODES))["items"]}
    print(f"\n5,000 pods created and bound in {elapsed:.1f} s ({5000 / elapsed:.0f} pods/s)")
    assert len(pods) == 5000
    used: dict[str, list[int]] = {name: [0, 0, 0] for name in nodes}
    for pod in pods:
        requests = pod["spec"]["containers"][0]["resources"]["requests"]
        totals = used[pod["spec"]["nodeName"]]
        totals[0] += to_milli(parse_quantity(requests["cpu"]))
        totals[1] += to_int(parse_quantity(requests["memory"]))
        totals[2] += 1
    for name, (cpu, memory, count) in used.items():
        allocatable = nodes[name]["status"]["allocatable"]
        assert cpu <= to_milli(parse_quantity(allocatable["cpu"])), name
        assert memory <= to_int(parse_quantity(allocatable["memory"])), name
        assert count <= int(allocatable["pods"]), name
    # Spread out, not piled up: every node got a share.
    assert min(count for _, _, count in used.values()) > 0


async def test_killing_the_leader_hands_over_within_the_lease(
    cluster_factory: Any, tmp_path: Path
) -> None:
    local: LocalCluster = cluster_factory()
    lease_duration = 3.0
    election = [
        "--leader-elect-lease-duration",
        str(lease_duration),
        "--leader-elect-renew-deadline",
        "2",
        "--leader-elect-retry-period",
        "0.5",
    ]
    async with Client(local.client_config(), max_connections=64) as client:
        for i in range(10):
            await client.create(NODES, node(f"node-{i}"))
        await _namespace(client, "ha")

        async def holder() -> str:
            lease = await client.get(LEASES, "corral-scheduler", "kube-system")
            return str(lease["spec"].get("holderIdentity") or "")

        async def lease_exists() -> bool:
            try:
                return bool(await holder())
            except Exception:
                return False

        with scheduler_process(local, tmp_path / "a.log", *election, identity="sched-a") as (
            first,
            _,
        ):
            await eventually(lease_exists, timeout=30, message="a leader")
            assert await holder() == "sched-a"
            with scheduler_process(local, tmp_path / "b.log", *election, identity="sched-b") as (
                _,
                port_b,
            ):
                # Record every node each pod is ever seen on.
                seen: dict[str, set[str]] = {}
                listed = await client.list(PODS, "ha")
                stream = client.watch(
                    PODS, "ha", resource_version=listed["metadata"]["resourceVersion"]
                )

                async def follow() -> None:
                    async for event in stream:
                        obj = event["object"]
                        node_name = obj["spec"].get("nodeName")
                        if node_name:
                            seen.setdefault(obj["metadata"]["name"], set()).add(node_name)

                follower = asyncio.ensure_future(follow())
                bodies = [_pod(f"p{i:03d}", "10m", "16Mi") for i in range(200)]
                await _create_all(client, bodies[:100], "ha", width=8)
                await eventually(lambda: len(seen) >= 50, timeout=30, message="the leader binding")
                first.kill()
                killed = time.monotonic()
                creating = asyncio.ensure_future(_create_all(client, bodies[100:], "ha", width=8))

                async def taken_over() -> bool:
                    return await holder() == "sched-b"

                await eventually(
                    taken_over, timeout=lease_duration + 30, message="the standby leading"
                )
                takeover = time.monotonic() - killed
                await asyncio.wait_for(creating, 60)
                await eventually(lambda: len(seen) == 200, timeout=60, message="every pod bound")
                assert _read(f"http://127.0.0.1:{port_b}/leader") == "true"
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
                await stream.aclose()
    print(f"\nthe standby took over {takeover:.2f} s after the leader was killed")
    # The Lease can only be taken once it has gone unrenewed for its whole
    # duration, counted from when the standby last saw it change: up to a
    # retry period either side. The bound is generous for loaded machines.
    assert takeover < lease_duration + 10
    twice = {name: nodes for name, nodes in seen.items() if len(nodes) > 1}
    assert twice == {}
    pods = (await _list_pods(local, "ha"))["items"]
    assert len(pods) == 200 and all(p["spec"].get("nodeName") for p in pods)


async def test_an_rcs_replicas_from_the_real_controller_land_on_three_nodes(
    cluster_factory: Any, tmp_path: Path
) -> None:
    local: LocalCluster = cluster_factory()
    controllers = ManagedProcess(
        "controller-manager",
        [
            sys.executable,
            "-m",
            "controlplane",
            "controller-manager",
            "--kubeconfig",
            str(local.component_kubeconfig("controller-manager")),
            "--controllers",
            "replicationcontroller",
            "--leader-elect",
            "false",
        ],
        tmp_path / "controller-manager.log",
    )
    async with Client(local.client_config(), max_connections=16) as client:
        # Least-allocated alone would stack the replicas on the big node;
        # the tiny ones fit none.
        for name, cpu in (("big", "64"), ("m1", "4"), ("m2", "4"), ("t1", "500m"), ("t2", "500m")):
            await client.create(NODES, node(name, cpu=cpu))
        rc: Obj = {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"app": "web"},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "busybox:1",
                                "resources": {"requests": {"cpu": "1"}},
                            }
                        ]
                    },
                },
            },
        }
        controllers.start()
        try:
            with scheduler_process(local, tmp_path / "scheduler.log", "--leader-elect", "false"):
                await client.create(resource("rc"), rc, "default")

                async def placed() -> list[str] | None:
                    pods = (await client.list(PODS, "default"))["items"]
                    where = [p["spec"].get("nodeName") for p in pods]
                    return where if len(where) == 3 and all(where) else None

                where = await eventually(placed, timeout=60, message="three replicas bound")
        finally:
            controllers.stop()
    assert sorted(where) == ["big", "m1", "m2"]


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


async def _list_pods(cluster: LocalCluster, namespace: str) -> Obj:
    async with Client(cluster.client_config()) as client:
        return await client.list(PODS, namespace)
