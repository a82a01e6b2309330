"""Persistent volumes on real nodes: a claim's data outlives its container, its pod and its agent.

A control plane (controller manager, scheduler) and two node agents on the
test dockerd. The pod writes into its claim; the test reads the data where
it lives, under the agent's ``volumes`` directory, and checks that it
survives a killed container, a re-created pod (which volume binding sends
back to the same node), and an agent restart; deleting the claim (reclaim
policy Delete) removes the directory and the volume.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral import volumebinding as vb
from corral.api.errors import ApiError
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

PODS, PVCS, PVS = (
    resource("pods"),
    resource("persistentvolumeclaims"),
    resource("persistentvolumes"),
)


@dataclass
class Fleet:
    cluster: LocalCluster
    client: Client
    agents: Agents
    nodes: list[AgentProcess]
    dockerd: Dockerd

    def node(self, name: str) -> AgentProcess:
        return next(n for n in self.nodes if n.node == name)


@pytest.fixture
async def fleet(
    cluster_factory: Callable[..., LocalCluster], dockerd: Dockerd, test_image: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    cluster = cluster_factory()
    processes = control_plane(cluster, tmp_path, grace=40.0, toleration=40.0)
    for process in processes:
        process.start()
    pool = Agents(cluster, dockerd, tmp_path)
    try:
        nodes = [pool.start(backoff_base=1.0) for _ in range(2)]
        for node in nodes:
            wait_for_node(cluster, node.node)
        async with Client(cluster.client_config()) as client:
            yield Fleet(cluster, client, pool, nodes, dockerd)
    finally:
        pool.stop_all()
        for process in processes:
            process.stop()


CLAIM: Obj = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "data"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
}

# Each start of the container appends a line: the first start and every later one.
SCRIPT = "echo start-$(hostname) >> /data/starts; sleep 3600"


def pod(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "db"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": TEST_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", SCRIPT],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }


async def running(client: Client, name: str) -> Obj | None:
    found = await client.get(PODS, name, "default")
    statuses = (found.get("status") or {}).get("containerStatuses") or []
    if statuses and (statuses[0].get("state") or {}).get("running"):
        return found
    return None


def starts(directory: Path) -> list[str]:
    path = directory / "starts"
    return path.read_text().split() if path.exists() else []


async def test_claim_data_outlives_containers_pods_and_agents(fleet: Fleet) -> None:
    client = fleet.client
    await client.create(PVCS, CLAIM, "default")
    await client.create(PODS, pod("db-a"), "default")
    first = await eventually(lambda: running(client, "db-a"), timeout=60, message="db-a running")
    node = first["spec"]["nodeName"]
    claim = await client.get(PVCS, "data", "default")
    assert claim["spec"]["storageClassName"] == "corral-local"
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    volume_name = claim["spec"]["volumeName"]
    volume = await client.get(PVS, volume_name)
    assert vb.pinned_node(volume) == node
    directory = fleet.node(node).data_dir / "volumes" / volume_name
    assert await eventually(lambda: starts(directory) == ["start-db-a"], message="first write")

    # 1. The container is killed: the agent restarts it, and the file is still there.
    docker = fleet.dockerd.client()
    [container] = docker.containers.list(
        filters={"label": ["io.corral.pod.name=db-a", "io.corral.container.name=main"]}
    )
    container.kill()
    await eventually(lambda: len(starts(directory)) == 2, timeout=60, message="restart wrote")

    # 2. The pod is deleted and made again with the same claim: same node, same data.
    await client.delete(PODS, "db-a", "default")
    await eventually(
        lambda: _gone(client, PODS, "db-a", "default"), timeout=60, message="db-a gone"
    )
    await client.create(PODS, pod("db-b"), "default")
    second = await eventually(lambda: running(client, "db-b"), timeout=60, message="db-b running")
    assert second["spec"]["nodeName"] == node
    await eventually(lambda: starts(directory)[-1:] == ["start-db-b"], message="db-b wrote")
    assert starts(directory)[:2] == ["start-db-a", "start-db-a"]

    # 3. The agent is restarted: the pod runs on, and the data is there.
    agent = fleet.node(node)
    agent.kill()
    agent.start()
    wait_for_node(fleet.cluster, node)
    await eventually(lambda: running(client, "db-b"), timeout=60, message="db-b after restart")
    assert starts(directory)[:3] == ["start-db-a", "start-db-a", "start-db-b"]

    # 4. Deleting the claim (Delete policy) removes the directory, then the volume.
    await client.delete(PODS, "db-b", "default")
    await client.delete(PVCS, "data", "default")
    await eventually(lambda: not directory.exists(), timeout=60, message="directory removed")
    await eventually(lambda: _gone(client, PVS, volume_name), timeout=60, message="volume gone")


async def _gone(client: Client, rt: Any, name: str, namespace: str | None = None) -> bool:
    try:
        await client.get(rt, name, namespace)
    except ApiError as error:
        return error.code == 404
    return False
