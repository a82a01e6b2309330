"""Disruption budgets, the eviction subresource and ``corral drain`` against a real API server.

There are no node agents or scheduler here: the test plays them, reporting
pods Running and Ready through the status subresource, binding pods to the
node being drained, and confirming graceful terminations (see
``test_controllers_harness``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
from typing import Any

from controlplane.controllers.disruption import DisruptionController
from controlplane.controllers.replication import replication_controller
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.informer import Informer
from corral.objects import Obj
from corralctl import nodes as nodes_cli
from corralctl.context import CliContext
from corralctl.main import common_options
from tests.conftest import LocalCluster, unique_name
from tests.integration.test_controllers_harness import (
    NODES,
    PDBS,
    PODS,
    RCS,
    active_pods,
    bind,
    fake_agent,
    name_of,
    rc,
    running,
    set_ready,
)
from tests.support import eventually


def _pdb(name: str, selector: dict[str, str], **spec: Any) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": selector}, **spec},
    }


async def _evict(client: Client, namespace: str, name: str, **delete_options: Any) -> Any:
    body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return await client.subresource(PODS, name, "eviction", body, namespace)


async def _status_is(client: Client, namespace: str, name: str, **wanted: Any) -> Obj | None:
    pdb = await client.get(PDBS, name, namespace)
    status = pdb.get("status") or {}
    if status.get("observedGeneration") != pdb["metadata"]["generation"]:
        return None
    return status if all(status.get(k) == v for k, v in wanted.items()) else None


async def _ready_pods(client: Client, namespace: str, selector: str, count: int) -> list[Obj]:
    async def ready() -> list[Obj] | None:
        pods = await active_pods(client, namespace, selector)
        ok = [p for p in pods if p["status"].get("phase") == "Running"]
        return pods if len(ok) == count == len(pods) else None

    found: list[Obj] = await eventually(ready, message=f"{count} running pods")
    return found


async def test_budget_status_counts_owners_replicas(client: Client, namespace: str) -> None:
    """The test plays the agent, reporting each pod Running and Ready."""
    await client.create(RCS, rc("web", 4), namespace)
    await client.create(PDBS, _pdb("web", {"app": "web"}, maxUnavailable="25%"), namespace)
    async with (
        fake_agent(client, namespace),
        running(client, namespace, replication_controller, DisruptionController),
    ):
        status: Obj = await eventually(
            lambda: _status_is(
                client,
                namespace,
                "web",
                expectedPods=4,
                desiredHealthy=3,
                currentHealthy=4,
                disruptionsAllowed=1,
            ),
            message="budget status for 4 ready pods",
        )
        (condition,) = status["conditions"]
        assert condition["type"] == "DisruptionAllowed"
        assert (condition["status"], condition["reason"]) == ("True", "SufficientPods")

        # Percentages are of the owner's replicas: scaling moves them at once.
        await client.patch(RCS, "web", {"spec": {"replicas": 8}}, namespace, subresource="scale")
        await eventually(
            lambda: _status_is(client, namespace, "web", expectedPods=8, desiredHealthy=6),
            message="budget following the owner's scale",
        )


async def test_eviction_refused_when_it_would_break_the_budget(
    client: Client, namespace: str
) -> None:
    """The test plays the agent, reporting the pods Running and Ready."""
    await client.create(RCS, rc("db", 3), namespace)
    await client.create(PDBS, _pdb("db", {"app": "db"}, minAvailable=2), namespace)
    async with running(client, namespace, replication_controller, DisruptionController):
        pods: list[Obj] = await eventually(
            lambda: _pending(client, namespace, "app=db", 3), message="3 pods"
        )
        for i, pod in enumerate(pods):
            await set_ready(client, pod, f"10.4.0.{i + 1}")
        await eventually(
            lambda: _status_is(client, namespace, "db", currentHealthy=3, disruptionsAllowed=1),
            message="one disruption allowed",
        )
    # The controllers are stopped: from here the budget changes only through evictions.
    first, second, _ = pods
    granted = await _evict(client, namespace, name_of(first))
    assert granted["status"] == "Success"
    status = (await client.get(PDBS, "db", namespace))["status"]
    assert status["disruptionsAllowed"] == 0
    assert list(status["disruptedPods"]) == [name_of(first)]
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "InsufficientPods")
    try:
        await _evict(client, namespace, name_of(second))
    except ApiError as error:
        assert error.code == 429
        assert error.reason == "TooManyRequests"
        assert error.message == "Cannot evict pod as it would violate the pod's disruption budget."
        (cause,) = error.causes
        assert cause.reason == "DisruptionBudget"
        assert cause.message == "The disruption budget db needs 2 healthy pods and has 3 currently"
    else:
        raise AssertionError("the second eviction broke the budget")
    still = await client.get(PODS, name_of(second), namespace)
    assert not still["metadata"].get("deletionTimestamp")


async def test_not_ready_and_pending_pods_go_without_spending_budget(
    client: Client, namespace: str
) -> None:
    """The test plays the agent: three pods Running and Ready, one Running but not ready."""
    await client.create(RCS, rc("api", 4), namespace)
    await client.create(PDBS, _pdb("api", {"app": "api"}, minAvailable=3), namespace)
    async with running(client, namespace, replication_controller, DisruptionController):
        pods: list[Obj] = await eventually(
            lambda: _pending(client, namespace, "app=api", 4), message="4 pods"
        )
        for i, pod in enumerate(pods):
            await set_ready(client, pod, f"10.3.0.{i + 1}", ready=i != 3)
        await eventually(
            lambda: _status_is(
                client, namespace, "api", currentHealthy=3, desiredHealthy=3, disruptionsAllowed=0
            ),
            message="no disruption allowed",
        )
        await _evict(client, namespace, name_of(pods[3]))  # not ready: the budget is not spent
        pdb = await client.get(PDBS, "api", namespace)
        assert not (pdb["status"].get("disruptedPods") or {})

        # The replacement is Pending (nothing runs it yet): evicted without a budget check.
        async def pending() -> Obj | None:
            for pod in await active_pods(client, namespace, "app=api"):
                if pod["status"].get("phase") == "Pending":
                    return pod
            return None

        replacement: Obj = await eventually(pending, message="a pending replacement")
        await _evict(client, namespace, name_of(replacement))
        try:
            await _evict(client, namespace, name_of(pods[0]))
        except ApiError as error:
            assert error.code == 429
        else:
            raise AssertionError("a ready pod was evicted past its budget")


def _drain_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    nodes_cli.add_parsers(parser.add_subparsers(), common_options())
    return parser.parse_args(["drain", *argv])


async def test_drain_evicts_every_pod_without_breaking_the_budget(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    """The test plays the scheduler (binding the RC's first pods to the node) and the
    agent (pods become Ready as they appear, terminations are confirmed)."""
    node = unique_name("drained")
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    await client.create(RCS, rc("svc", 3), namespace)
    await client.create(PDBS, _pdb("svc", {"app": "svc"}, minAvailable=2), namespace)
    healthy: list[int] = []
    watcher = Informer(client, PODS, namespace=namespace, label_selector="app=svc")

    def count(*_: Obj) -> None:
        healthy.append(
            sum(
                1
                for p in watcher.items()
                if not p["metadata"].get("deletionTimestamp")
                and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (p.get("status") or {}).get("conditions") or []
                )
            )
        )

    watcher.add_handlers(on_add=count, on_update=count, on_delete=count)
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop))
    try:
        async with running(client, namespace, replication_controller):
            originals: list[Obj] = await eventually(
                lambda: _pending(client, namespace, "app=svc", 3), message="3 pods to place"
            )
            for pod in originals:
                await bind(client, pod, node)
        async with (
            fake_agent(client, namespace),
            running(client, namespace, replication_controller, DisruptionController),
        ):
            await eventually(
                lambda: _status_is(client, namespace, "svc", currentHealthy=3),
                message="3 healthy pods",
            )
            out, err = io.StringIO(), io.StringIO()
            ctx = CliContext(config=cluster.client_config(namespace), namespace=namespace)
            ctx.out, ctx.err = out, err
            try:
                code = await nodes_cli.run_drain(ctx, _drain_args(node, "--timeout", "60s"))
            finally:
                await ctx.close()
            assert code == 0, err.getvalue()
            lines = out.getvalue().splitlines()
            assert lines[0] == f"node/{node} cordoned"
            assert lines[-1] == f"node/{node} drained"
            for pod in originals:
                assert f"evicting pod {namespace}/{name_of(pod)}" in lines
                assert f"pod {namespace}/{name_of(pod)} evicted" in lines
            assert any(line.startswith("waiting to evict pod") for line in lines), lines
            node_obj = await client.get(NODES, node)
            assert node_obj["spec"]["unschedulable"] is True
            left = await client.list(
                PODS, None, all_namespaces=True, field_selector=f"spec.nodeName={node}"
            )
            assert left["items"] == []
            await _ready_pods(client, namespace, "app=svc", 3)
    finally:
        stop.set()
        await watching
        await client.delete(NODES, node)
    # Replacements became ready before each next eviction: never below the budget.
    first_full = healthy.index(3)
    assert min(healthy[first_full:]) >= 2, healthy


async def _pending(client: Client, namespace: str, selector: str, count: int) -> list[Obj] | None:
    pods = await active_pods(client, namespace, selector)
    return sorted(pods, key=name_of) if len(pods) == count else None
