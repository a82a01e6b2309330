"""The replicated-set controller against a real API server.

The test plays the node agents: it binds the StatefulSet's pods to nodes,
renews those nodes' Leases, and reports each pod's role as the agent's
replication loop would (the ``replication.corral.io/Role`` condition).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from controlplane.controllers.replicatedset import ReplicatedSetController
from controlplane.controllers.statefulset import StatefulSetController
from corral import replication
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.clock import rfc3339_micro
from corral.objects import Obj
from tests.integration.test_controllers_harness import (
    LEASES,
    PODS,
    bind,
    fake_agent,
    pod_template,
    rt,
    running,
)
from tests.support import eventually

STS = rt("StatefulSet", "apps/v1")
LEASE_SECONDS = 4
HOOKS = {
    "container": "app",
    "status": ["db", "status"],
    "promote": ["db", "promote"],
    "demote": ["db", "demote"],
    "follow": ["db", "follow"],
    "rebuild": ["db", "rebuild"],
    "leaseSeconds": LEASE_SECONDS,
    "periodSeconds": 0.5,
}


def replicated_set(name: str, replicas: int) -> Obj:
    template = pod_template({"app": name}, grace=5)
    template["metadata"]["annotations"] = {replication.HOOKS_ANNOTATION: json.dumps(HOOKS)}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
            "podManagementPolicy": "Parallel",
        },
    }


async def report(
    client: Client,
    namespace: str,
    pod: str,
    role: str,
    position: int,
    *,
    writable: bool = False,
    epoch: int = 0,
) -> None:
    """The agent's part: the status hook's answer, as the pod condition."""
    now = rfc3339_micro(datetime.now(UTC))
    condition = replication.Report(role, (position,), writable, epoch).to_condition(now)  # type: ignore[arg-type]
    await client.patch(
        PODS,
        pod,
        {"status": {"conditions": [condition]}},
        namespace,
        patch_type="strategic",
        subresource="status",
    )


@contextlib.asynccontextmanager
async def node_leases(client: Client, nodes: list[str]) -> AsyncIterator[set[str]]:
    """Renew the nodes' Leases every half second; remove a node from the set to silence it."""
    alive = set(nodes)
    for node in nodes:
        with contextlib.suppress(ApiError):
            await client.delete(LEASES, node, "kube-node-lease")

    async def renew() -> None:
        while True:
            for node in sorted(alive):
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": node, "namespace": "kube-node-lease"},
                    "spec": {
                        "holderIdentity": node,
                        "leaseDurationSeconds": 40,
                        "renewTime": rfc3339_micro(datetime.now(UTC)),
                    },
                }
                try:
                    await client.patch(LEASES, node, {"spec": body["spec"]}, "kube-node-lease")
                except ApiError as error:
                    if error.code != 404:
                        raise
                    await client.create(LEASES, body, "kube-node-lease")
            await asyncio.sleep(0.5)

    task = asyncio.create_task(renew())
    try:
        yield alive
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def pod(client: Client, namespace: str, name: str) -> Obj:
    found: Obj = await client.get(PODS, name, namespace)
    return found


def annotations(obj: Obj) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


async def assigned(client: Client, namespace: str, name: str, primary: str, epoch: int) -> bool:
    found = annotations(await pod(client, namespace, name))
    return (
        found.get(replication.PRIMARY_ANNOTATION) == primary
        and found.get(replication.EPOCH_ANNOTATION) == str(epoch)
        and bool(found.get(replication.PRIMARY_ADDRESS_ANNOTATION))
    )


async def role_label(client: Client, namespace: str, name: str) -> str | None:
    return (await pod(client, namespace, name))["metadata"].get("labels", {}).get("role")


async def started(client: Client, namespace: str, nodes: dict[str, str]) -> None:
    """Both pods exist, Running (fake agent), and bound to their nodes."""

    async def exist() -> bool:
        listed = await client.list(PODS, namespace, label_selector="app=db")
        return {p["metadata"]["name"] for p in listed["items"]} >= set(nodes)

    await eventually(exist, message="the set's pods")
    for name, node in nodes.items():
        await bind(client, await pod(client, namespace, name), node)


@pytest.fixture
def nodes(namespace: str) -> list[str]:
    return [f"{namespace}-n0", f"{namespace}-n1"]


async def test_first_election_labels_and_a_failover_when_the_primarys_node_goes_silent(
    client: Client, namespace: str, nodes: list[str]
) -> None:
    await client.create(STS, replicated_set("db", 2), namespace)
    async with (
        node_leases(client, nodes) as alive,
        fake_agent(client, namespace),
        running(client, namespace, StatefulSetController, ReplicatedSetController),
    ):
        await started(client, namespace, {"db-0": nodes[0], "db-1": nodes[1]})
        # Nothing is elected until every running copy has said what it holds.
        await report(client, namespace, "db-0", "empty", 0)
        await asyncio.sleep(1.5)
        assert annotations(await pod(client, namespace, "db-0")).get(
            replication.EPOCH_ANNOTATION
        ) in (None, "")
        await report(client, namespace, "db-1", "empty", 0)
        await eventually(lambda: assigned(client, namespace, "db-1", "db-0", 1), message="first")
        lease = await client.get(LEASES, "db.replication", namespace)
        assert lease["spec"]["holderIdentity"] == "db-0"
        assert lease["spec"]["leaseTransitions"] == 1

        # The elected copy is labelled at once; a replica once it follows.
        await eventually(lambda: _labels(client, namespace, {"db-0": "primary"}), message="label")
        assert await role_label(client, namespace, "db-1") is None
        await report(client, namespace, "db-0", "primary", 7, writable=True, epoch=1)
        await report(client, namespace, "db-1", "replica", 7, epoch=1)
        await eventually(
            lambda: _labels(client, namespace, {"db-0": "primary", "db-1": "replica"}),
            message="role labels",
        )

        # The primary's node falls silent: after a whole lease, db-1 is elected.
        alive.discard(nodes[0])
        silenced = asyncio.get_running_loop().time()
        await eventually(
            lambda: assigned(client, namespace, "db-0", "db-1", 2),
            timeout=LEASE_SECONDS * 4,
            message="failover to db-1",
        )
        assert asyncio.get_running_loop().time() - silenced >= LEASE_SECONDS - 0.5
        # The label moves with the election: never on two pods.
        await eventually(lambda: _labels(client, namespace, {"db-0": None}), message="unlabelled")
        await eventually(
            lambda: _labels(client, namespace, {"db-1": "primary"}), message="new primary label"
        )


async def test_evicting_the_primary_hands_over_to_a_caught_up_replica_first(
    client: Client, namespace: str, nodes: list[str]
) -> None:
    await client.create(STS, replicated_set("db", 2), namespace)
    async with (
        node_leases(client, nodes),
        fake_agent(client, namespace),
        running(client, namespace, StatefulSetController, ReplicatedSetController),
    ):
        await started(client, namespace, {"db-0": nodes[0], "db-1": nodes[1]})
        await report(client, namespace, "db-0", "empty", 0)
        await report(client, namespace, "db-1", "empty", 0)
        await eventually(lambda: assigned(client, namespace, "db-1", "db-0", 1), message="first")
        await report(client, namespace, "db-0", "primary", 10, writable=True, epoch=1)
        await report(client, namespace, "db-1", "replica", 9, epoch=1)

        eviction = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "db-0", "namespace": namespace},
        }
        with pytest.raises(ApiError) as refused:
            await client.subresource(PODS, "db-0", "eviction", eviction, namespace)
        assert refused.value.code == 429
        assert "primary" in refused.value.message
        assert annotations(await pod(client, namespace, "db-0")).get(
            replication.SWITCHOVER_ANNOTATION
        )

        async def demoted() -> bool:
            found = annotations(await pod(client, namespace, "db-0"))
            return found.get(replication.DEMOTE_ANNOTATION) == "true"

        await eventually(demoted, message="db-0 asked to demote")
        # Read-only now, at position 11; the replica has only 9: no election yet.
        await report(client, namespace, "db-0", "primary", 11, writable=False, epoch=1)
        await asyncio.sleep(1.5)
        assert await assigned(client, namespace, "db-1", "db-0", 1)
        await report(client, namespace, "db-1", "replica", 11, epoch=1)
        await eventually(lambda: assigned(client, namespace, "db-0", "db-1", 2), message="handed")
        # Now the old primary is a replica-to-be, and the eviction goes through.
        await client.subresource(PODS, "db-0", "eviction", eviction, namespace)


async def _labels(client: Client, namespace: str, wanted: dict[str, str | None]) -> bool:
    for name, value in wanted.items():
        if await role_label(client, namespace, name) != value:
            return False
    return True
