"""Controller manager failover: the leader dies mid-scale; the standby finishes, exactly."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.client.rest import Client
from corralctl.processes import ManagedProcess
from tests.conftest import LocalCluster
from tests.support import eventually, resource

pytestmark = [pytest.mark.integration, pytest.mark.slow]


PODS, RCS, LEASES = resource("pods"), resource("replicationcontrollers"), resource("leases")
LEASE = "corral-controller-manager"


async def test_killing_the_leader_mid_scale_leaves_exactly_fifty_pods(
    cluster_factory: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = cluster_factory()
    kubeconfig = str(cluster.component_kubeconfig("controller-manager"))
    managers = {
        name: ManagedProcess(
            name,
            [
                sys.executable,
                "-m",
                "controlplane",
                "controller-manager",
                "--kubeconfig",
                kubeconfig,
                "--identity",
                name,
                "--controllers",
                "replicationcontroller",
            ],
            tmp_path / f"{name}.log",
        )
        for name in ("cm-a", "cm-b")
    }
    for process in managers.values():
        process.start()
    try:
        async with Client(cluster.client_config(), max_connections=8) as client:

            async def holder() -> str | None:
                try:
                    lease = await client.get(LEASES, LEASE, "kube-system")
                except Exception:
                    return None
                name = (lease.get("spec") or {}).get("holderIdentity")
                return name if name in managers else None

            async def pods() -> int:
                found = await client.list(PODS, "default", label_selector="app=many")
                return len(found["items"])

            leader = await eventually(holder, timeout=60, message="a leader")
            template = {
                "metadata": {"labels": {"app": "many"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
            }
            await client.create(
                RCS,
                {
                    "metadata": {"name": "many"},
                    "spec": {"replicas": 0, "selector": {"app": "many"}, "template": template},
                },
                "default",
            )
            await client.patch(RCS, "many", {"spec": {"replicas": 50}}, "default")

            async def some_created() -> int | None:
                count = len(
                    (await client.list(PODS, "default", label_selector="app=many"))["items"]
                )
                return count if count > 0 else None

            at_kill = await eventually(some_created, timeout=30, interval=0.005, message="a pod")
            managers[leader].kill()
            standby = next(name for name in managers if name != leader)
            highest = 0

            async def finished() -> bool:
                nonlocal highest
                count = len(
                    (await client.list(PODS, "default", label_selector="app=many"))["items"]
                )
                highest = max(highest, count)
                return count == 50 and await holder() == standby

            await eventually(finished, timeout=90, interval=0.2, message="50 pods by the standby")
            await asyncio.sleep(3)  # anything still in flight would show now
            final = await client.list(PODS, "default", label_selector="app=many")
            assert len(final["items"]) == 50
            assert highest == 50, f"{highest} pods at some point"
            print(f"\nleader {leader} killed with {at_kill} of 50 pods created; {standby} finished")
    finally:
        for process in managers.values():
            process.stop()
