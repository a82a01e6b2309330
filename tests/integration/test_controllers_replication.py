"""The ReplicationController and ReplicaSet controllers against a real API server.

Where pods must be Running and Ready, or bound to nodes, the test plays the
node agent and the scheduler itself (see ``test_controllers_harness``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from controlplane.controllers.replication import replica_set, replication_controller
from corral.client.rest import Client
from corral.informer import Informer
from corral.objects import Obj
from tests.integration.test_controllers_harness import (
    PODS,
    RCS,
    RSS,
    active_pods,
    bare_pod,
    bind,
    confirm_deletion,
    events_for,
    fake_agent,
    name_of,
    rc,
    running,
    set_ready,
)
from tests.integration.test_controllers_harness import replica_set as rs_manifest
from tests.support import eventually


async def _count(client: Client, namespace: str, selector: str, want: int) -> bool:
    return len(await active_pods(client, namespace, selector)) == want


async def _scale(client: Client, namespace: str, name: str, replicas: int) -> None:
    await client.patch(RCS, name, {"spec": {"replicas": replicas}}, namespace, subresource="scale")


async def test_rc_converges_up_and_down_and_replaces_deleted_pods(
    client: Client, namespace: str
) -> None:
    await client.create(RCS, rc("web", 3), namespace)
    async with running(client, namespace, replication_controller):
        await eventually(lambda: _count(client, namespace, "app=web", 3), message="3 pods")
        pods = await active_pods(client, namespace, "app=web")
        owner = await client.get(RCS, "web", namespace)
        for pod in pods:
            assert name_of(pod).startswith("web-") and len(name_of(pod)) == len("web-") + 5
            assert pod["metadata"]["labels"] == {"app": "web"}
            assert pod["metadata"]["ownerReferences"] == [
                {
                    "apiVersion": "v1",
                    "kind": "ReplicationController",
                    "name": "web",
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]

        async def status_says(replicas: int) -> bool:
            current = await client.get(RCS, "web", namespace)
            status = current.get("status") or {}
            return bool(
                status.get("replicas") == replicas
                and status.get("observedGeneration") == current["metadata"]["generation"]
            )

        await eventually(lambda: status_says(3), message="status.replicas 3")

        await _scale(client, namespace, "web", 5)
        await eventually(lambda: _count(client, namespace, "app=web", 5), message="5 pods")
        await _scale(client, namespace, "web", 1)
        await eventually(lambda: _count(client, namespace, "app=web", 1), message="1 pod")
        await eventually(lambda: status_says(1), message="status.replicas 1")

        (survivor,) = await active_pods(client, namespace, "app=web")
        await client.delete(PODS, name_of(survivor), namespace)

        async def replaced() -> bool:
            pods = await active_pods(client, namespace, "app=web")
            return len(pods) == 1 and name_of(pods[0]) != name_of(survivor)

        await eventually(replaced, message="a replacement pod")
        created = await events_for(client, namespace, "web", "SuccessfulCreate")
        assert created and all(e["message"].startswith("Created pod: web-") for e in created)


async def test_ready_and_available_counts(client: Client, namespace: str) -> None:
    """The test plays the agent: pods are reported Running and Ready as they appear."""
    await client.create(RCS, rc("counted", 2), namespace)
    async with fake_agent(client, namespace), running(client, namespace, replication_controller):

        async def counted() -> Obj | None:
            status = (await client.get(RCS, "counted", namespace)).get("status") or {}
            wanted = {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2}
            ok = all(status.get(k) == v for k, v in wanted.items())
            return status if ok and status.get("availableReplicas") == 2 else None

        await eventually(counted, message="2 ready and available replicas")


async def test_adopts_orphans_and_releases_pods_that_stop_matching(
    client: Client, namespace: str
) -> None:
    orphan = await client.create(PODS, bare_pod("orphan", {"app": "adopt"}), namespace)
    await client.create(RCS, rc("adopt", 2), namespace)
    owner = await client.get(RCS, "adopt", namespace)
    async with running(client, namespace, replication_controller):

        async def adopted() -> bool:
            pod = await client.get(PODS, "orphan", namespace)
            refs = pod["metadata"].get("ownerReferences") or []
            return [r["uid"] for r in refs if r.get("controller")] == [owner["metadata"]["uid"]]

        await eventually(adopted, message="the orphan adopted")
        # The adopted pod counts: one more pod is created, not two.
        await eventually(lambda: _count(client, namespace, "app=adopt", 2), message="2 pods")
        assert orphan["metadata"]["uid"] in {
            p["metadata"]["uid"] for p in await active_pods(client, namespace, "app=adopt")
        }

        await client.patch(PODS, "orphan", {"metadata": {"labels": {"app": "other"}}}, namespace)

        async def released() -> bool:
            pod = await client.get(PODS, "orphan", namespace)
            return not pod["metadata"].get("ownerReferences")

        await eventually(released, message="the relabelled pod released")
        await eventually(lambda: _count(client, namespace, "app=adopt", 2), message="a replacement")
        assert await client.get(PODS, "orphan", namespace)  # released, not deleted


async def test_scale_down_removes_not_ready_then_crowded_then_newest(
    client: Client, namespace: str
) -> None:
    """The test plays the scheduler (binding pods to nodes) and the agent (readiness)."""
    await client.create(RCS, rc("order", 5), namespace)
    async with running(client, namespace, replication_controller):
        await eventually(lambda: _count(client, namespace, "app=order", 5), message="5 pods")
        pods = sorted(await active_pods(client, namespace, "app=order"), key=name_of)
        # node-a gets three replicas, node-b two; one of node-b's is not ready.
        placement = ["node-a", "node-a", "node-a", "node-b", "node-b"]
        base = datetime.now(UTC) - timedelta(hours=1)
        for i, (pod, node) in enumerate(zip(pods, placement, strict=True)):
            await bind(client, pod, node)
            await set_ready(
                client, pod, f"10.1.0.{i + 1}", ready=i != 4, since=base + timedelta(minutes=i)
            )
        not_ready = name_of(pods[4])
        newest_on_a = name_of(pods[2])

        async def placed() -> dict[str, str]:
            live = await active_pods(client, namespace, "app=order")
            return {name_of(p): p["spec"].get("nodeName", "") for p in live}

        async def gone(*names: str) -> dict[str, str] | None:
            current = await placed()
            return current if not set(names) & set(current) else None

        # Deleted pods are bound, so they terminate gracefully; the agent is
        # not confirming, so they stay visible (but inactive) meanwhile.
        await _scale(client, namespace, "order", 3)
        await eventually(lambda: _count(client, namespace, "app=order", 3), message="3 pods")
        remaining = await gone(not_ready, newest_on_a)
        assert remaining is not None, await placed()
        assert sorted(remaining.values()) == ["node-a", "node-a", "node-b"]

        # Now two on node-a, one on node-b: the crowded node gives one up again,
        # the more recently ready of its two.
        await _scale(client, namespace, "order", 2)
        await eventually(lambda: _count(client, namespace, "app=order", 2), message="2 pods")
        assert await gone(name_of(pods[1])) is not None, await placed()
        assert sorted((await placed()).values()) == ["node-a", "node-b"]

        # One each: the most recently ready goes.
        await _scale(client, namespace, "order", 1)
        await eventually(lambda: _count(client, namespace, "app=order", 1), message="1 pod")
        assert list(await placed()) == [name_of(pods[0])]
        for pod in (await client.list(PODS, namespace))["items"]:
            await confirm_deletion(client, pod)


async def test_rapid_scale_changes_end_with_exactly_n_pods(client: Client, namespace: str) -> None:
    await client.create(RCS, rc("rapid", 0), namespace)
    # Every pod event is seen, so a double create would show as a count above the largest scale.
    counter = Informer(client, PODS, namespace=namespace)
    counts: list[int] = []

    def count(*_: Obj) -> None:
        counts.append(sum(1 for p in counter.items() if not p["metadata"].get("deletionTimestamp")))

    counter.add_handlers(on_add=count, on_update=count, on_delete=count)
    stop = asyncio.Event()
    watching = asyncio.create_task(counter.run(stop))
    async with running(client, namespace, replication_controller):
        for replicas in (12, 3, 9, 1, 7, 4, 10, 6):
            await _scale(client, namespace, "rapid", replicas)
        await eventually(lambda: _count(client, namespace, "app=rapid", 6), message="6 pods")

        async def settled() -> bool:
            current = await client.get(RCS, "rapid", namespace)
            status = current.get("status") or {}
            return bool(
                status.get("replicas") == 6
                and status.get("observedGeneration") == current["metadata"]["generation"]
            )

        await eventually(settled, message="status settled at 6")
        assert len(await active_pods(client, namespace, "app=rapid")) == 6
    stop.set()
    await watching
    assert counts and max(counts) <= 12


async def test_replica_set_converges_with_match_expressions(client: Client, namespace: str) -> None:
    manifest = rs_manifest("frontend", 3, {"tier": "frontend"})
    manifest["spec"]["selector"] = {
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]
    }
    await client.create(RSS, manifest, namespace)
    async with running(client, namespace, replica_set):
        await eventually(lambda: _count(client, namespace, "tier=frontend", 3), message="3 pods")
        pods = await active_pods(client, namespace, "tier=frontend")
        assert {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"ReplicaSet"}
        await client.patch(RSS, "frontend", {"spec": {"replicas": 1}}, namespace)
        await eventually(lambda: _count(client, namespace, "tier=frontend", 1), message="1 pod")


async def test_terminal_pods_do_not_count(client: Client, namespace: str) -> None:
    """The test plays the agent, reporting one pod Failed."""
    await client.create(RCS, rc("finite", 2), namespace)
    async with running(client, namespace, replication_controller):
        await eventually(lambda: _count(client, namespace, "app=finite", 2), message="2 pods")
        victim = (await active_pods(client, namespace, "app=finite"))[0]
        await client.patch(
            PODS, name_of(victim), {"status": {"phase": "Failed"}}, namespace, subresource="status"
        )

        async def replaced() -> bool:
            pods = await active_pods(client, namespace, "app=finite")
            running_pods = [p for p in pods if p["status"].get("phase") != "Failed"]
            return len(running_pods) == 2

        await eventually(replaced, message="a replacement for the failed pod")
