"""The replication controllers' decisions: what to delete, how fast to create, what to report."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.controllers.base import RequeueAfter
from controlplane.controllers.ownedpods import PodExpectations
from controlplane.controllers.replication import (
    ReplicationManager,
    compute_status,
    deletion_order,
    next_available_in,
    slow_start_batch,
    status_patch,
)
from corral.api.errors import ApiError
from corral.clock import ManualClock, rfc3339
from corral.objects import Obj
from tests.unit.controllers.fakes import context, fill, rt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pod(
    name: str,
    *,
    node: str | None = "n1",
    phase: str = "Running",
    ready: bool = True,
    ready_at: datetime | None = T0,
    created: datetime = T0,
    restarts: int = 0,
    labels: dict[str, str] | None = None,
    owner_uid: str | None = None,
) -> Obj:
    conditions = []
    if ready_at is not None or not ready:
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": rfc3339(ready_at or T0),
            }
        )
    metadata: Obj = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "labels": labels if labels is not None else {"app": "web"},
        "creationTimestamp": rfc3339(created),
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "name": "web",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": node} if node else {},
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [{"name": "app", "restartCount": restarts}],
        },
    }


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


# --- deletion order ------------------------------------------------------------------------


def test_not_ready_pods_go_before_ready_ones() -> None:
    pods = [pod("ready"), pod("unready", ready=False), pod("pending", phase="Pending", ready=False)]
    assert names(deletion_order(pods, pods)) == ["pending", "unready", "ready"]


def test_unscheduled_pods_go_first() -> None:
    pods = [pod("placed"), pod("nowhere", node=None, phase="Pending", ready=False)]
    assert names(deletion_order(pods, pods))[0] == "nowhere"


def test_pods_on_crowded_nodes_go_before_pods_alone() -> None:
    pods = [pod("a1", node="a"), pod("b1", node="b"), pod("a2", node="a"), pod("c1", node="c")]
    order = names(deletion_order(pods, pods))
    assert set(order[:2]) == {"a1", "a2"}


def test_crowding_counts_related_pods_of_sibling_owners() -> None:
    mine = [pod("mine-a", node="a"), pod("mine-b", node="b")]
    sibling = [pod("old-b1", node="b"), pod("old-b2", node="b")]
    assert names(deletion_order(mine, mine + sibling))[0] == "mine-b"


def test_most_recently_ready_then_most_restarted_then_newest() -> None:
    early, late = T0, T0 + timedelta(minutes=5)
    pods = [pod("old-ready", ready_at=early), pod("new-ready", ready_at=late)]
    assert names(deletion_order(pods, pods)) == ["new-ready", "old-ready"]
    pods = [pod("calm", restarts=0), pod("flappy", restarts=7)]
    assert names(deletion_order(pods, pods)) == ["flappy", "calm"]
    pods = [pod("older", created=early), pod("newer", created=late)]
    assert names(deletion_order(pods, pods)) == ["newer", "older"]


def test_deletion_cost_annotation_protects_pods() -> None:
    precious = pod("precious")
    precious["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": "100"}
    pods = [precious, pod("plain", created=T0 - timedelta(days=1))]
    assert names(deletion_order(pods, pods)) == ["plain", "precious"]


# --- slow start ----------------------------------------------------------------------------


async def test_slow_start_doubles_batches() -> None:
    batches: list[int] = []
    in_flight = 0

    async def create() -> None:
        nonlocal in_flight
        in_flight += 1
        await asyncio.sleep(0)
        batches.append(in_flight)
        in_flight -= 1

    done, failure = await slow_start_batch(10, 1, create)
    assert (done, failure) == (10, None)
    # Batches of 1, 2, 4 and the remaining 3 ran concurrently within each batch.
    assert max(batches) == 4


async def test_slow_start_stops_after_a_failing_batch() -> None:
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls >= 4:
            raise ApiError(422, "Invalid", "bad template")

    done, failure = await slow_start_batch(100, 1, create)
    assert calls == 7  # batches of 1, 2 and 4; the third batch failed, so no more
    assert done == 3
    assert isinstance(failure, ApiError)


# --- expectations --------------------------------------------------------------------------


def test_expectations_match_deletes_by_uid() -> None:
    clock = ManualClock()
    expectations = PodExpectations(clock, timeout=300)
    expectations.expect_deletions("ns/web", ["a", "b"])
    # A graceful delete is seen twice (deletionTimestamp, then gone); it counts once.
    expectations.deletion_observed("ns/web", "a")
    expectations.deletion_observed("ns/web", "a")
    assert not expectations.satisfied("ns/web")
    expectations.deletion_observed("ns/web", "someone-else")
    assert not expectations.satisfied("ns/web")
    expectations.deletion_observed("ns/web", "b")
    assert expectations.satisfied("ns/web")


def test_expectations_expire() -> None:
    clock = ManualClock()
    expectations = PodExpectations(clock, timeout=300)
    expectations.expect("ns/web", adds=3)
    expectations.observed_add("ns/web")
    assert not expectations.satisfied("ns/web")
    clock.advance(301)
    assert expectations.satisfied("ns/web")


# --- status ----------------------------------------------------------------------------------


def owner(min_ready: int = 0, generation: int = 3) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "ns", "uid": "rc-uid", "generation": generation},
        "spec": {
            "replicas": 3,
            "minReadySeconds": min_ready,
            "selector": {"app": "web"},
            "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {}},
        },
        "status": {"replicas": 0},
    }


def test_status_counts_labels_readiness_and_availability() -> None:
    now = T0 + timedelta(seconds=30)
    pods = [
        pod("full", labels={"app": "web", "tier": "front"}, ready_at=T0),
        pod("partial", ready_at=T0 + timedelta(seconds=25)),
        pod("unready", ready=False),
    ]
    status = compute_status(owner(min_ready=10), pods, now)
    assert status == {
        "replicas": 3,
        "fullyLabeledReplicas": 1,
        "readyReplicas": 2,
        "availableReplicas": 1,
        "observedGeneration": 3,
    }
    # The pod ready at T0+25 becomes available 10 s later.
    assert next_available_in(owner(min_ready=10), pods, now) == pytest.approx(5.0)
    assert next_available_in(owner(min_ready=0), pods, now) is None


def test_availability_is_reached_exactly_at_min_ready_seconds() -> None:
    pods = [pod("p", ready_at=T0)]
    status = compute_status(owner(min_ready=10), pods, T0 + timedelta(seconds=10))
    assert status["availableReplicas"] == 1
    assert next_available_in(owner(min_ready=10), pods, T0 + timedelta(seconds=10)) is None


def test_replica_failure_condition_set_and_cleared() -> None:
    failing = compute_status(owner(), [], T0, ("FailedCreate", "pods is forbidden"))
    (condition,) = failing["conditions"]
    assert condition["type"] == "ReplicaFailure"
    assert (condition["reason"], condition["message"]) == ("FailedCreate", "pods is forbidden")
    previous = {**owner(), "status": failing}
    assert "conditions" not in compute_status(previous, [], T0)
    patch = status_patch(failing, compute_status(previous, [], T0))
    assert patch == {"conditions": None}


def test_status_patch_is_none_when_nothing_changes() -> None:
    current = {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    assert status_patch(current, dict(current)) is None
    assert status_patch(current, {"replicas": 1, "observedGeneration": 1}) == {
        "replicas": 1,
        "readyReplicas": None,
    }


# --- a sync, with a recording client -----------------------------------------------------------


async def test_sync_creates_missing_pods_from_the_template_once() -> None:
    ctx, fake = context(ManualClock(T0))
    rcs = rt("ReplicationController")
    controller = ReplicationManager(ctx, rcs)
    fill(ctx, rcs, owner())
    fill(ctx, rt("Pod"), pod("existing", owner_uid="rc-uid"))
    await controller.sync("ns/web")
    created = [c[2] for c in fake.writes("create")]
    assert len(created) == 2
    assert created[0]["metadata"]["generateName"] == "web-"
    assert created[0]["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert created[0]["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "name": "web",
            "uid": "rc-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    # The watch has not shown the new pods yet: a second sync must not create again.
    await controller.sync("ns/web")
    assert len(fake.writes("create")) == 2


async def test_sync_requeues_while_pods_wait_out_min_ready_seconds() -> None:
    ctx, fake = context(ManualClock(T0 + timedelta(seconds=4)))
    rcs = rt("ReplicationController")
    controller = ReplicationManager(ctx, rcs)
    fill(ctx, rcs, {**owner(min_ready=10), "spec": {**owner(min_ready=10)["spec"], "replicas": 1}})
    fill(ctx, rt("Pod"), pod("p", owner_uid="rc-uid", ready_at=T0))
    with pytest.raises(RequeueAfter) as later:
        await controller.sync("ns/web")
    assert later.value.seconds == pytest.approx(6.0)
    ((_, _, status_write),) = fake.writes("patch")
    assert status_write["subresource"] == "status"
    assert status_write["patch"]["status"]["readyReplicas"] == 1
