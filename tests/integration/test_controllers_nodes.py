"""Node lifecycle and taint-based eviction against a real API server, on a manual clock.

There are no node agents here: the test plays them, renewing the nodes'
Leases, reporting the Ready condition, and reporting pods Ready through the
status subresource. It also plays the scheduler, binding pods to nodes.
Time moves only when the test advances the controllers' clock.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from controlplane.controllers.nodelifecycle import (
    NODE_LEASE_NAMESPACE,
    UNREACHABLE,
    NodeLifecycleController,
    TaintEvictionController,
)
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.clock import ManualClock, rfc3339, rfc3339_micro
from corral.objects import Obj
from tests.conftest import unique_name
from tests.integration.test_controllers_harness import (
    LEASES,
    NODES,
    PODS,
    bare_pod,
    bind,
    events_for,
    running,
    set_ready,
)
from tests.support import eventually


def _ready_condition(status: str, at: datetime) -> Obj:
    return {
        "type": "Ready",
        "status": status,
        "reason": "KubeletReady",
        "message": "agent is posting ready status",
        "lastHeartbeatTime": rfc3339(at),
        "lastTransitionTime": rfc3339(at),
    }


@asynccontextmanager
async def _nodes(client: Client, clock: ManualClock, *names: str) -> AsyncIterator[None]:
    """Registered, Ready nodes with fresh leases, removed afterwards (nodes are cluster-wide)."""
    try:
        for name in names:
            await client.create(
                NODES,
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name},
                    "status": {"conditions": [_ready_condition("True", clock.now())]},
                },
            )
            lease = {
                "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE},
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": 15,
                    "renewTime": rfc3339_micro(clock.now()),
                },
            }
            await client.create(LEASES, lease, NODE_LEASE_NAMESPACE)
        yield
    finally:
        for name in names:
            for rt, namespace in ((NODES, None), (LEASES, NODE_LEASE_NAMESPACE)):
                try:
                    await client.delete(rt, name, namespace)
                except ApiError as error:
                    if error.code != 404:
                        raise


def _toleration(seconds: int) -> Obj:
    return {
        "key": UNREACHABLE,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": seconds,
    }


async def _pod(client: Client, namespace: str, name: str, node: str, **spec: Any) -> Obj:
    created = await client.create(
        PODS, bare_pod(name, terminationGracePeriodSeconds=5, **spec), namespace
    )
    await bind(client, created, node)
    return await set_ready(client, created, f"10.7.0.{len(name)}")


async def test_silent_node_is_tainted_and_its_pods_evicted_after_their_tolerations(
    client: Client, namespace: str
) -> None:
    clock = ManualClock(datetime.now(UTC))
    good, bad = unique_name("node-good"), unique_name("node-bad")
    lifecycle_factory = functools.partial(NodeLifecycleController, grace_period=15.0)
    eviction_factory = functools.partial(TaintEvictionController, default_toleration_seconds=20.0)
    async with _nodes(client, clock, good, bad):
        await _pod(client, namespace, "defaulted", bad)  # no toleration: the 20 s default
        await _pod(client, namespace, "short", bad, tolerations=[_toleration(8)])
        await _pod(client, namespace, "long", bad, tolerations=[_toleration(3600)])
        await _pod(client, namespace, "elsewhere", good)
        async with running(
            client, namespace, lifecycle_factory, eviction_factory, clock=clock
        ) as controllers:
            lifecycle = controllers[0]
            assert isinstance(lifecycle, NodeLifecycleController)

            async def renew(name: str) -> None:
                """The agent's heartbeat, waited for until the controller has seen it."""
                stamp = rfc3339_micro(clock.now())
                await client.patch(
                    LEASES, name, {"spec": {"renewTime": stamp}}, NODE_LEASE_NAMESPACE
                )

                def seen() -> bool:
                    lease = lifecycle.leases.get(f"{NODE_LEASE_NAMESPACE}/{name}") or {}
                    return bool((lease.get("spec") or {}).get("renewTime") == stamp)

                await eventually(seen, message=f"lease {name} renewed")

            async def advance_to(seconds: float) -> None:
                """Move time on, the good node's agent heartbeating every 5 s on the way."""
                while clock.monotonic() < seconds:
                    await renew(good)
                    clock.advance(min(5.0, seconds - clock.monotonic()))

            async def node_state(name: str) -> tuple[str, list[tuple[str, str]]]:
                node = await client.get(NODES, name)
                ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
                taints = sorted((t["key"], t["effect"]) for t in node["spec"].get("taints") or [])
                return ready["status"], taints

            async def deleted(name: str) -> bool:
                try:
                    pod = await client.get(PODS, name, namespace)
                except ApiError as error:
                    return error.code == 404
                return bool(pod["metadata"].get("deletionTimestamp"))

            # The bad node's agent falls silent at t=0; its grace period ends at t=15.
            await advance_to(15)
            unreachable = ("Unknown", [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")])

            async def tainted() -> bool:
                return await node_state(bad) == unreachable

            await eventually(tainted, message="the silent node Unknown and tainted")
            node = await client.get(NODES, bad)
            ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "NodeStatusUnknown"
            assert ready["message"] == "Kubelet stopped posting node status."
            assert all(t.get("timeAdded") for t in node["spec"]["taints"])
            assert await node_state(good) == ("True", [])

            async def marked_not_ready() -> bool:
                pod = await client.get(PODS, "long", namespace)
                ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
                return bool(ready["status"] == "False")

            await eventually(marked_not_ready, message="pods on the node marked not ready")

            # 8 s of toleration: out by t=23; the defaulted pod's 20 s run to t=35.
            await advance_to(25)
            await eventually(lambda: deleted("short"), message="the short-tolerating pod evicted")
            assert not await deleted("defaulted")
            await advance_to(36)
            await eventually(lambda: deleted("defaulted"), message="the defaulted pod evicted")
            assert not await deleted("long")
            assert not await deleted("elsewhere")
            for name in ("short", "defaulted"):
                (event,) = await events_for(client, namespace, name, "TaintManagerEviction")
                assert event["message"] == f"Marking for deletion Pod {namespace}/{name}"

            async def gone(name: str) -> bool:
                try:
                    await client.get(PODS, name, namespace)
                except ApiError as error:
                    return error.code == 404
                return False

            # Nobody on the dead node can confirm those deletions; past their
            # 5 s grace period the controller forces them.
            await eventually(lambda: gone("short"), message="the evicted pod force-deleted")
            await eventually(lambda: gone("defaulted"), message="the evicted pod force-deleted")

            # The agent comes back: heartbeat and Ready; the taints go, the survivor stays.
            await renew(bad)
            await client.patch(
                NODES,
                bad,
                {"status": {"conditions": [_ready_condition("True", clock.now())]}},
                subresource="status",
            )

            async def recovered() -> bool:
                return await node_state(bad) == ("True", [])

            await eventually(recovered, message="taints removed on recovery")
            assert not await deleted("long")
