"""The StatefulSet controller's decisions, and its actions against a fake client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.controllers import statefulset_history as history
from controlplane.controllers.statefulset import StatefulSetController
from controlplane.controllers.statefulset_identity import claim_for, identity_matches, pod_for
from controlplane.controllers.statefulset_plan import (
    Create,
    Delete,
    FixIdentity,
    plan,
    status_counts,
)
from corral import replication
from corral.clock import ManualClock, rfc3339
from corral.objects import Obj
from tests.unit.controllers.fakes import context, fill, rt

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD, NEW = "db-old", "db-new"


def sts(replicas: int = 3, *, policy: str = "OrderedReady", partition: int = 0, **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "ns", "uid": "uid-db", "generation": 1},
        "spec": {
            "replicas": replicas,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
            "podManagementPolicy": policy,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
            **spec,
        },
    }


def pod(
    ordinal: int,
    *,
    revision: str = NEW,
    ready: bool = True,
    phase: str = "Running",
    terminating: bool = False,
    ready_at: datetime = T0,
) -> Obj:
    made = pod_for(sts(), sts()["spec"]["template"], revision, ordinal)
    made["metadata"]["uid"] = f"uid-{ordinal}-{revision}"
    made["status"] = {
        "phase": phase,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": rfc3339(ready_at),
            }
        ],
    }
    if terminating:
        made["metadata"]["deletionTimestamp"] = rfc3339(T0)
    return made


def creates(decided: Any) -> list[int]:
    return [a.ordinal for a in decided.actions if isinstance(a, Create)]


def deletes(decided: Any) -> list[str]:
    return [a.pod["metadata"]["name"] for a in decided.actions if isinstance(a, Delete)]


def test_ordered_ready_creates_one_pod_and_waits_for_it() -> None:
    assert creates(plan(sts(), [], OLD, NEW, T0)) == [0]
    waiting = plan(sts(), [pod(0, ready=False)], OLD, NEW, T0)
    assert waiting.actions == [] and "pod 0" in waiting.waiting
    pending = plan(sts(), [pod(0, phase="Pending", ready=False)], OLD, NEW, T0)
    assert pending.actions == []
    assert creates(plan(sts(), [pod(0)], OLD, NEW, T0)) == [1]
    assert creates(plan(sts(), [pod(0), pod(1)], OLD, NEW, T0)) == [2]


def test_a_missing_low_ordinal_is_recreated_before_anything_else() -> None:
    decided = plan(sts(), [pod(1), pod(2)], OLD, NEW, T0)
    assert creates(decided) == [0] and deletes(decided) == []


def test_parallel_creates_everything_and_does_not_wait() -> None:
    assert creates(plan(sts(policy="Parallel"), [], OLD, NEW, T0)) == [0, 1, 2]
    decided = plan(sts(policy="Parallel"), [pod(0, ready=False)], OLD, NEW, T0)
    assert creates(decided) == [1, 2]


def test_scale_down_from_the_highest_one_at_a_time() -> None:
    pods = [pod(i) for i in range(5)]
    assert deletes(plan(sts(2), pods, NEW, NEW, T0)) == ["db-4"]
    # The highest is going: wait for it before the next.
    going = [*pods[:4], pod(4, terminating=True)]
    assert plan(sts(2), going, NEW, NEW, T0).actions == []
    assert deletes(plan(sts(2, policy="Parallel"), pods, NEW, NEW, T0)) == ["db-4", "db-3", "db-2"]


def test_scale_down_waits_while_a_kept_pod_is_unhealthy() -> None:
    pods = [pod(0, ready=False), pod(1), pod(2)]
    assert plan(sts(1), pods, NEW, NEW, T0).actions == []


def test_failed_pod_is_deleted_to_come_back_under_its_name() -> None:
    decided = plan(sts(), [pod(0), pod(1, phase="Failed", ready=False)], NEW, NEW, T0)
    assert deletes(decided) == ["db-1"] and creates(decided) == []


def test_rolling_update_from_the_highest_ordinal_and_one_at_a_time() -> None:
    pods = [pod(i, revision=OLD) for i in range(3)]
    assert deletes(plan(sts(), pods, OLD, NEW, T0)) == ["db-2"]
    # db-2 is back on the new revision but not ready: wait.
    pods[2] = pod(2, revision=NEW, ready=False)
    assert plan(sts(), pods, OLD, NEW, T0).actions == []
    pods[2] = pod(2, revision=NEW)
    assert deletes(plan(sts(), pods, OLD, NEW, T0)) == ["db-1"]


def test_partition_keeps_lower_ordinals_on_the_current_revision() -> None:
    pods = [pod(0, revision=OLD), pod(1, revision=OLD), pod(2, revision=NEW)]
    assert plan(sts(partition=2), pods, OLD, NEW, T0).actions == []
    # A pod below the partition that is recreated gets the current revision.
    decided = plan(sts(partition=2), [pod(1, revision=OLD), pod(2)], OLD, NEW, T0)
    assert decided.actions == [Create(0, OLD)]
    decided = plan(sts(partition=2), [pod(0, revision=OLD), pod(1, revision=OLD)], OLD, NEW, T0)
    assert decided.actions == [Create(2, NEW)]


def test_on_delete_never_deletes_for_an_update() -> None:
    on_delete = sts(updateStrategy={"type": "OnDelete"})
    pods = [pod(i, revision=OLD) for i in range(3)]
    assert plan(on_delete, pods, OLD, NEW, T0).actions == []
    assert plan(on_delete, pods[:2], OLD, NEW, T0).actions == [Create(2, NEW)]


def test_max_unavailable_replaces_several_at_once() -> None:
    rolling = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
    pods = [pod(i, revision=OLD) for i in range(3)]
    assert deletes(plan(rolling, pods, OLD, NEW, T0)) == ["db-2", "db-1"]
    pods[2] = pod(2, ready=False)
    assert deletes(plan(rolling, pods, OLD, NEW, T0)) == []  # ordered: waits for db-2 first


def test_min_ready_seconds_gates_the_next_pod() -> None:
    slow = sts(minReadySeconds=10)
    assert plan(slow, [pod(0, ready_at=T0)], NEW, NEW, T0 + timedelta(seconds=5)).actions == []
    later = plan(slow, [pod(0, ready_at=T0)], NEW, NEW, T0 + timedelta(seconds=10))
    assert creates(later) == [1]


def test_a_relabelled_pod_gets_its_identity_back() -> None:
    broken = pod(0)
    del broken["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"]
    assert not identity_matches(sts(), broken)
    decided = plan(sts(1), [broken], NEW, NEW, T0)
    assert decided.actions == [FixIdentity(broken)]


def test_identity_and_claims_of_a_new_pod() -> None:
    with_claims = sts(
        volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {"accessModes": ["RWO"]}}]
    )
    made = pod_for(with_claims, with_claims["spec"]["template"], NEW, 4)
    assert made["metadata"]["name"] == "db-4"
    assert made["spec"]["hostname"] == "db-4" and made["spec"]["subdomain"] == "db"
    assert made["metadata"]["labels"] == {
        "app": "db",
        "statefulset.kubernetes.io/pod-name": "db-4",
        "apps.kubernetes.io/pod-index": "4",
        "controller-revision-hash": NEW,
    }
    assert made["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-4"}}
    ]
    claim = claim_for(with_claims, with_claims["spec"]["volumeClaimTemplates"][0], 4)
    assert claim["metadata"]["name"] == "data-db-4" and "ownerReferences" not in claim["metadata"]
    deleting = {**with_claims, "spec": {**with_claims["spec"]}}
    deleting["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete"}
    owned = claim_for(deleting, deleting["spec"]["volumeClaimTemplates"][0], 4)
    assert owned["metadata"]["ownerReferences"][0]["uid"] == "uid-db"


def test_status_counts_revisions_and_readiness() -> None:
    pods = [pod(0, revision=OLD), pod(1, revision=NEW, ready=False), pod(2, terminating=True)]
    assert status_counts(sts(), pods, OLD, NEW, T0) == {
        "replicas": 3,
        "readyReplicas": 2,
        "availableReplicas": 1,
        "currentReplicas": 1,
        "updatedReplicas": 1,
    }


def test_revision_names_hash_the_template_and_equal_templates_match() -> None:
    first = history.new_revision(sts(), 1)
    again = history.new_revision(sts(replicas=7), 2)
    assert first["metadata"]["name"] == again["metadata"]["name"]
    assert history.same_data(first, again)
    changed = sts()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "j"
    other = history.new_revision(changed, 2)
    assert other["metadata"]["name"] != first["metadata"]["name"]
    assert history.template_of(other)["spec"]["containers"][0]["image"] == "j"
    assert history.find_equal([first, other], history.new_revision(sts(), 3)) is first
    assert history.hash_of(first["data"], 1) != history.hash_of(first["data"])


def test_history_is_pruned_beyond_the_limit_but_never_what_is_in_use() -> None:
    revisions = [{"metadata": {"name": f"r{i}"}, "revision": i} for i in range(1, 6)]
    limited = sts(revisionHistoryLimit=1)
    pruned = history.to_prune(limited, revisions, {"r1"}, current="r4", update="r5")
    assert [r["metadata"]["name"] for r in pruned] == ["r2"]


async def test_sync_creates_a_revision_then_pod_zero_and_reports_status() -> None:
    ctx, fake = context(ManualClock())
    controller = StatefulSetController(ctx)
    fill(ctx, rt("StatefulSet", "apps/v1"), sts())
    fill(ctx, rt("Pod"))
    fill(ctx, rt("ControllerRevision", "apps/v1"))
    fill(ctx, rt("PersistentVolumeClaim"))
    await controller.sync("ns/db")
    created = fake.writes("create")
    assert [c[1] for c in created] == ["controllerrevisions", "pods"]
    revision = created[0][2]
    pod0 = created[1][2]
    assert pod0["metadata"]["name"] == "db-0"
    assert pod0["metadata"]["labels"]["controller-revision-hash"] == revision["metadata"]["name"]
    status = [c for c in fake.writes("patch") if c[2].get("subresource") == "status"]
    assert status[0][2]["patch"]["status"]["updateRevision"] == revision["metadata"]["name"]
    # Its own create not yet seen: the next sync does nothing.
    fake.calls.clear()
    fill(ctx, rt("ControllerRevision", "apps/v1"), revision)
    await controller.sync("ns/db")
    assert fake.writes("create") == []


async def test_sync_deletes_with_the_pod_uid_as_precondition() -> None:
    ctx, fake = context(ManualClock())
    controller = StatefulSetController(ctx)
    current = sts(1)
    revision = history.new_revision(current, 1)
    name = revision["metadata"]["name"]
    fill(ctx, rt("StatefulSet", "apps/v1"), current)
    extra = pod(1, revision=name)
    extra["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": "db",
            "uid": "uid-db",
            "controller": True,
        }
    ]
    keep = pod(0, revision=name)
    keep["metadata"]["ownerReferences"] = extra["metadata"]["ownerReferences"]
    fill(ctx, rt("Pod"), keep, extra)
    fill(ctx, rt("ControllerRevision", "apps/v1"), revision)
    await controller.sync("ns/db")
    (call,) = [c for c in fake.calls if c[0] == "DELETE"]
    assert call[1].endswith("/pods/db-1")
    assert call[2]["preconditions"] == {"uid": extra["metadata"]["uid"]}


def test_a_replicated_sets_primary_is_updated_after_its_replicas() -> None:
    def led_by(primary: int, *pods: Obj) -> list[Obj]:
        for made in pods:
            made["metadata"]["annotations"] = {
                replication.HOOKS_ANNOTATION: "{}",
                replication.PRIMARY_ANNOTATION: f"db-{primary}",
                replication.EPOCH_ANNOTATION: "3",
            }
        return list(pods)

    # db-2 leads: db-1 goes first although db-2 has the highest ordinal.
    pods = led_by(2, pod(0, revision=NEW), pod(1, revision=OLD), pod(2, revision=OLD))
    assert deletes(plan(sts(), pods, OLD, NEW, T0)) == ["db-1"]
    # Only the primary is left: now its turn (the controller asks it to hand over first).
    pods = led_by(2, pod(0, revision=NEW), pod(1, revision=NEW), pod(2, revision=OLD))
    assert deletes(plan(sts(), pods, OLD, NEW, T0)) == ["db-2"]


async def test_the_controller_asks_a_primary_to_hand_over_instead_of_deleting_it() -> None:
    ctx, client = context()
    controller = StatefulSetController(ctx)
    leader = pod(1, revision=OLD)
    leader["metadata"]["annotations"] = {
        replication.HOOKS_ANNOTATION: "{}",
        replication.PRIMARY_ANNOTATION: "db-1",
        replication.EPOCH_ANNOTATION: "1",
    }
    await controller._delete_pod("ns/db", sts(), Delete(leader, "update"))
    assert [c[0] for c in client.calls] == ["patch"]  # no delete: the annotation only
    patch = client.calls[0][2]["patch"]
    assert replication.SWITCHOVER_ANNOTATION in patch["metadata"]["annotations"]
