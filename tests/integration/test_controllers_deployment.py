"""The Deployment controller against a real API server, with the real ReplicaSet controller.

The ReplicaSet and disruption controllers are the real ones; the node
agent's part (pods Running and Ready, or never Ready for a "bad" image) is
played by the stand-in in ``test_controllers_deployment_standins``. Progress deadlines run on a
``ManualClock``: the tests move time, they do not wait for it.
"""

from __future__ import annotations

from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.deployment_history import AUTO_ROLLBACK, ROLLED_BACK_FROM
from controlplane.controllers.disruption import DisruptionController
from controlplane.controllers.replication import replica_set
from corral.client.rest import Client
from corral.clock import ManualClock
from corral.objects import Obj
from tests.conftest import LocalCluster
from tests.integration.test_controllers_deployment_standins import (
    AvailabilitySampler,
    cli,
    condition,
    deployment,
    images,
    is_active,
    is_ready,
    node_agent,
    rolled_out,
    set_image,
)
from tests.integration.test_controllers_harness import (
    DEPLOYMENTS,
    PDBS,
    PODS,
    RSS,
    events_for,
    running,
)
from tests.support import eventually

REVISION = "deployment.kubernetes.io/revision"


async def _replica_sets(client: Client, namespace: str) -> list[Obj]:
    items: list[Obj] = (await client.list(RSS, namespace))["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"].get(REVISION, "0")))


async def _pods(client: Client, namespace: str) -> list[Obj]:
    return [p for p in (await client.list(PODS, namespace))["items"] if is_active(p)]


async def _sizes(client: Client, namespace: str) -> list[int]:
    return [rs["spec"]["replicas"] for rs in await _replica_sets(client, namespace)]


async def test_a_rollout_of_ten_never_drops_below_the_minimum(
    client: Client, namespace: str
) -> None:
    manifest = deployment("web", 10, "nginx:1", surge=3, unavailable=2)
    await client.create(DEPLOYMENTS, manifest, namespace)
    async with (
        running(client, namespace, DeploymentController, replica_set),
        node_agent(client, namespace),
    ):
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="first rollout")
        first = await _replica_sets(client, namespace)
        assert len(first) == 1
        hash_label = first[0]["metadata"]["labels"]["pod-template-hash"]
        assert first[0]["metadata"]["name"] == f"web-{hash_label}"
        assert first[0]["spec"]["selector"]["matchLabels"]["pod-template-hash"] == hash_label

        sampler = AvailabilitySampler(client, namespace, {"app": "web"})
        async with sampler.watching():
            await set_image(client, namespace, "web", "nginx:2")
            await eventually(
                lambda: rolled_out(client, namespace), timeout=60, message="second rollout"
            )
        assert sampler.samples > 20
        assert sampler.fewest is not None and sampler.fewest >= 10 - 2

        sets = await _replica_sets(client, namespace)
        assert [rs["metadata"]["annotations"][REVISION] for rs in sets] == ["1", "2"]
        assert [rs["spec"]["replicas"] for rs in sets] == [0, 10]
        d = await client.get(DEPLOYMENTS, "web", namespace)
        assert d["metadata"]["annotations"][REVISION] == "2"
        assert d["status"]["updatedReplicas"] == d["status"]["availableReplicas"] == 10
        assert condition(d)["reason"] == "NewReplicaSetAvailable"
        assert condition(d, "Available")["status"] == "True"
        pods = await _pods(client, namespace)
        assert len(pods) == 10 and all(images(p) == ["nginx:2"] for p in pods)
        scaled = await events_for(client, namespace, "web", "ScalingReplicaSet")
        assert scaled


async def test_a_bad_rollout_stops_within_max_unavailable_times_out_and_is_undone(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    clock = ManualClock()
    await client.create(
        DEPLOYMENTS, deployment("web", 4, "nginx:1", surge=1, unavailable=1, deadline=30), namespace
    )
    async with (
        running(client, namespace, DeploymentController, replica_set, clock=clock),
        node_agent(client, namespace, clock=clock),
        cli(cluster, namespace) as corral,
    ):
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="rollout")
        await set_image(client, namespace, "web", "bad:1")

        async def stuck() -> bool:
            d = await client.get(DEPLOYMENTS, "web", namespace)
            status = d.get("status") or {}
            return (
                await _sizes(client, namespace) == [3, 2]
                and status.get("updatedReplicas") == 2
                and status.get("availableReplicas") == 3
            )

        await eventually(stuck, timeout=30, message="the rollout to stall at 3 old + 2 new")
        ready = [p for p in await _pods(client, namespace) if is_ready(p)]
        assert len(ready) == 3  # replicas - maxUnavailable, and never fewer
        d = await client.get(DEPLOYMENTS, "web", namespace)
        assert condition(d)["status"] == "True"

        clock.advance(32)

        async def timed_out() -> bool:
            d = await client.get(DEPLOYMENTS, "web", namespace)
            return condition(d).get("reason") == "ProgressDeadlineExceeded"

        await eventually(timed_out, message="ProgressDeadlineExceeded")
        d = await client.get(DEPLOYMENTS, "web", namespace)
        assert condition(d)["status"] == "False"
        assert condition(d)["message"].endswith("has timed out progressing.")
        assert await _sizes(client, namespace) == [3, 2]  # it stays where it stopped

        assert await corral("rollout", "status", "deployment/web") == 1
        assert corral.take()[1] == 'error: deployment "web" exceeded its progress deadline\n'

        assert await corral("rollout", "undo", "web") == 0
        assert corral.take()[0] == "deployment.apps/web rolled back\n"
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="undone")
        sets = await _replica_sets(client, namespace)
        # The first ReplicaSet is the new one again, under the next revision.
        assert [rs["metadata"]["annotations"][REVISION] for rs in sets] == ["2", "3"]
        assert (
            sets[1]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
        )
        assert [rs["spec"]["replicas"] for rs in sets] == [0, 4]
        assert all(images(p) == ["nginx:1"] for p in await _pods(client, namespace))


async def test_auto_rollback_undoes_a_rollout_that_misses_its_deadline(
    client: Client, namespace: str
) -> None:
    clock = ManualClock()
    manifest = deployment(
        "web",
        3,
        "nginx:1",
        surge=1,
        unavailable=0,
        deadline=20,
        annotations={AUTO_ROLLBACK: "true"},
    )
    await client.create(DEPLOYMENTS, manifest, namespace)
    async with (
        running(client, namespace, DeploymentController, replica_set, clock=clock),
        node_agent(client, namespace, clock=clock),
    ):
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="rollout")
        await set_image(client, namespace, "web", "bad:2")

        async def stalled() -> bool:
            d = await client.get(DEPLOYMENTS, "web", namespace)
            return (
                await _sizes(client, namespace) == [3, 1]
                and (d.get("status") or {}).get("updatedReplicas") == 1
            )

        await eventually(stalled, timeout=30, message="the bad rollout to stall")
        clock.advance(22)

        async def back() -> bool:
            d = await client.get(DEPLOYMENTS, "web", namespace)
            return images(d["spec"]["template"]) == ["nginx:1"]

        await eventually(back, message="the automatic rollback")
        d = await client.get(DEPLOYMENTS, "web", namespace)
        assert d["metadata"]["annotations"][ROLLED_BACK_FROM] == "2"
        assert d["metadata"]["annotations"][AUTO_ROLLBACK] == "true"
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="recovery")
        events = await events_for(client, namespace, "web", "AutoRollback")
        assert [e["message"] for e in events] == [
            'Rolled back from revision 2 to revision 1: ReplicaSet "'
            + (await _replica_sets(client, namespace))[0]["metadata"]["name"]
            + '" has timed out progressing.'
        ]
        assert all(images(p) == ["nginx:1"] for p in await _pods(client, namespace))


async def test_pause_holds_the_rollout_but_not_scaling(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 3, "nginx:1"), namespace)
    async with (
        running(client, namespace, DeploymentController, replica_set),
        node_agent(client, namespace),
        cli(cluster, namespace) as corral,
    ):
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="rollout")
        assert await corral("rollout", "pause", "deploy", "web") == 0
        assert corral.take() == ("deployment.apps/web paused\n", "")
        await set_image(client, namespace, "web", "nginx:2")
        await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, namespace)

        async def scaled_in_place() -> bool:
            d = await client.get(DEPLOYMENTS, "web", namespace)
            status = d.get("status") or {}
            return (
                status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("availableReplicas") == 5
            )

        await eventually(scaled_in_place, timeout=30, message="scaling while paused")
        d = await client.get(DEPLOYMENTS, "web", namespace)
        assert condition(d)["reason"] == "DeploymentPaused"
        assert condition(d)["status"] == "Unknown"
        assert await _sizes(client, namespace) == [5]  # no new ReplicaSet while paused
        assert all(images(p) == ["nginx:1"] for p in await _pods(client, namespace))

        assert await corral("rollout", "resume", "web") == 0
        assert corral.take() == ("deployment.apps/web resumed\n", "")
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="resumed")
        assert await _sizes(client, namespace) == [0, 5]
        assert all(images(p) == ["nginx:2"] for p in await _pods(client, namespace))


async def test_revision_history_limit_prunes_the_oldest(client: Client, namespace: str) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 2, "nginx:1", history=1), namespace)
    async with (
        running(client, namespace, DeploymentController, replica_set),
        node_agent(client, namespace),
    ):
        for image in ("nginx:1", "nginx:2", "nginx:3"):
            await set_image(client, namespace, "web", image)
            await eventually(lambda: rolled_out(client, namespace), timeout=30, message=image)

        async def pruned() -> bool:
            sets = await _replica_sets(client, namespace)
            return [rs["metadata"]["annotations"][REVISION] for rs in sets] == ["2", "3"]

        await eventually(pruned, message="only revisions 2 and 3 kept")


async def test_replicas_change_mid_rollout_scales_proportionally(
    client: Client, namespace: str
) -> None:
    await client.create(
        DEPLOYMENTS, deployment("web", 4, "nginx:1", surge=1, unavailable=1), namespace
    )
    async with (
        running(client, namespace, DeploymentController, replica_set),
        node_agent(client, namespace),
    ):
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="rollout")
        await set_image(client, namespace, "web", "bad:1")
        await eventually(
            lambda: _sizes_are(client, namespace, [3, 2]), timeout=30, message="stalled at 3+2"
        )
        await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 8}}, namespace)
        # 8 + 1 surge = 9, shared in proportion to the 5 (4 + 1) they were sized for:
        # the old 3 become 5 (5.4 rounded) and the new 2 become 4.
        await eventually(
            lambda: _sizes_are(client, namespace, [5, 4]), timeout=30, message="proportional"
        )
        for rs in await _replica_sets(client, namespace):
            notes = rs["metadata"]["annotations"]
            assert notes["deployment.kubernetes.io/desired-replicas"] == "8"
            assert notes["deployment.kubernetes.io/max-replicas"] == "9"


async def _sizes_are(client: Client, namespace: str, want: list[int]) -> bool:
    return await _sizes(client, namespace) == want


async def test_a_rolling_update_respects_a_disruption_budget(
    client: Client, namespace: str
) -> None:
    # Without the budget, maxUnavailable 2 would take 2 of the 4 pods at once.
    manifest = deployment("db", 4, "mariadb:10", surge=0, unavailable=2)
    await client.create(DEPLOYMENTS, manifest, namespace)
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "db"}}},
    }
    await client.create(PDBS, budget, namespace)
    async with (
        running(client, namespace, DeploymentController, replica_set, DisruptionController),
        node_agent(client, namespace),
    ):
        await eventually(lambda: rolled_out(client, namespace, "db"), timeout=30, message="up")
        sampler = AvailabilitySampler(client, namespace, {"app": "db"})
        async with sampler.watching():
            await set_image(client, namespace, "db", "mariadb:11")
            await eventually(
                lambda: rolled_out(client, namespace, "db"), timeout=60, message="rollout"
            )
        assert sampler.fewest == 3
        held = await events_for(client, namespace, "db", "ScaleDownHeld")
        assert held and 'PodDisruptionBudget "db" allows no more disruptions' in held[0]["message"]


async def test_recreate_stops_every_old_pod_before_starting_new_ones(
    client: Client, namespace: str
) -> None:
    await client.create(
        DEPLOYMENTS, deployment("web", 3, "nginx:1", strategy="Recreate"), namespace
    )
    async with (
        running(client, namespace, DeploymentController, replica_set),
        node_agent(client, namespace),
    ):
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="rollout")
        mixed: list[list[str]] = []
        sampler = AvailabilitySampler(client, namespace, {"app": "web"})
        async with sampler.watching() as watching:
            assert watching._informer is not None
            informer = watching._informer

            def check(_a: object = None, _b: object = None) -> None:
                running_images = {images(p)[0] for p in informer.items() if is_active(p)}
                if len(running_images) > 1:
                    mixed.append(sorted(running_images))

            informer.add_handlers(on_add=check, on_update=check)
            await set_image(client, namespace, "web", "nginx:2")
            await eventually(lambda: rolled_out(client, namespace), timeout=30, message="recreated")
        assert mixed == []
        assert sampler.fewest == 0  # Recreate means downtime, by definition
        assert await _sizes(client, namespace) == [0, 3]
