"""Disruption budget arithmetic: integers, percentages, owners' scale, expiring disruptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.controllers.base import RequeueAfter
from controlplane.controllers.disruption import (
    DisruptionController,
    disrupted_pods,
    expected_and_desired,
    healthy_count,
    scaled,
    with_condition,
)
from corral.clock import ManualClock, rfc3339
from corral.objects import Obj
from tests.unit.controllers.fakes import context, fill, rt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_percentages_round_up() -> None:
    assert scaled(2, 10) == 2
    assert scaled("50%", 5) == 3
    assert scaled("25%", 4) == 1
    assert scaled("1%", 3) == 1
    assert scaled("0%", 3) == 0
    with pytest.raises(ValueError):
        scaled("5", 10)


@pytest.mark.parametrize(
    ("spec", "pods", "scale", "expected", "desired"),
    [
        ({"minAvailable": 2}, 3, None, 3, 2),  # an integer needs no owners: the pods count
        ({"minAvailable": "50%"}, 3, 5, 5, 3),  # of the owners' 5 replicas, rounded up
        ({"maxUnavailable": 1}, 3, 4, 4, 3),
        ({"maxUnavailable": "25%"}, 8, 10, 10, 7),  # 2.5 unavailable rounds up to 3
        ({"maxUnavailable": "100%"}, 2, 2, 2, 0),
        ({"maxUnavailable": 5}, 2, 2, 2, 0),  # never below zero
        ({}, 3, None, 0, 0),
    ],
)
def test_expected_and_desired(
    spec: Obj, pods: int, scale: int | None, expected: int, desired: int
) -> None:
    counts = expected_and_desired(spec, pods, scale)
    assert (counts.expected, counts.desired) == (expected, desired)


def _pod(name: str, *, ready: bool = True, deleting: bool = False, owner: str = "rs") -> Obj:
    metadata: Obj = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "labels": {"app": "web"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner,
                "uid": f"uid-{owner}",
                "controller": True,
            }
        ],
    }
    if deleting:
        metadata["deletionTimestamp"] = rfc3339(T0)
    return {
        "metadata": metadata,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_disrupted_pods_expire_after_two_minutes() -> None:
    pdb = {
        "status": {
            "disruptedPods": {
                "recent": rfc3339(T0),
                "stale": rfc3339(T0 - timedelta(minutes=3)),
                "going": rfc3339(T0),
                "gone": rfc3339(T0),
            }
        }
    }
    pods = [_pod("recent"), _pod("stale"), _pod("going", deleting=True), _pod("other")]
    kept, recheck = disrupted_pods(pdb, pods, T0 + timedelta(seconds=30))
    assert kept == {"recent": rfc3339(T0)}
    assert recheck == T0 + timedelta(minutes=2)
    # Terminating pods, pods in the map and unready pods are not healthy.
    assert healthy_count([*pods, _pod("sick", ready=False)], kept) == 2


def test_condition_transition_time_moves_only_with_the_status() -> None:
    old = [{"type": "DisruptionAllowed", "status": "True", "lastTransitionTime": "then"}]
    same = with_condition(
        old,
        {
            "type": "DisruptionAllowed",
            "status": "True",
            "lastTransitionTime": "now",
            "reason": "SufficientPods",
        },
    )
    assert same[0]["lastTransitionTime"] == "then"
    flipped = with_condition(
        old, {"type": "DisruptionAllowed", "status": "False", "lastTransitionTime": "now"}
    )
    assert flipped[0]["lastTransitionTime"] == "now"


def _pdb(**spec: Any) -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "ns", "generation": 2, "resourceVersion": "9"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }


def _owners(ctx: Any) -> None:
    deployment = {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web"},
        "spec": {"replicas": 4},
    }
    rs = {
        "metadata": {
            "name": "rs",
            "namespace": "ns",
            "uid": "uid-rs",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "uid-web",
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 2},
    }
    fill(ctx, rt("Deployment", "apps/v1"), deployment)
    fill(ctx, rt("ReplicaSet", "apps/v1"), rs)


async def test_sync_counts_a_deployments_replicas_through_its_replica_set() -> None:
    ctx, fake = context(ManualClock(T0))
    controller = DisruptionController(ctx)
    _owners(ctx)
    fill(ctx, rt("PodDisruptionBudget", "policy/v1"), _pdb(maxUnavailable="50%"))
    fill(ctx, rt("Pod"), _pod("a"), _pod("b"), _pod("c"), _pod("d", ready=False))
    await controller.sync("ns/web")
    ((_, path, call),) = fake.writes("replace")
    assert path == "poddisruptionbudgets/web" and call["subresource"] == "status"
    status = call["obj"]["status"]
    # The Deployment wants 4 (not the ReplicaSet's 2): 2 may be unavailable, 3 are healthy.
    assert {k: status[k] for k in ("expectedPods", "desiredHealthy", "currentHealthy")} == {
        "expectedPods": 4,
        "desiredHealthy": 2,
        "currentHealthy": 3,
    }
    assert status["disruptionsAllowed"] == 1
    assert status["observedGeneration"] == 2
    assert call["obj"]["metadata"]["resourceVersion"] == "9"  # a compare-and-swap


async def test_sync_fails_safe_when_an_owner_is_missing() -> None:
    ctx, fake = context(ManualClock(T0))
    controller = DisruptionController(ctx)
    fill(ctx, rt("PodDisruptionBudget", "policy/v1"), _pdb(minAvailable="50%"))
    fill(ctx, rt("Pod"), _pod("a", owner="vanished"))
    await controller.sync("ns/web")
    ((_, _, call),) = fake.writes("replace")
    status = call["obj"]["status"]
    assert status["disruptionsAllowed"] == 0
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "SyncFailed")
    assert condition["message"] == 'found no controllers for pod "a"'


async def test_sync_requeues_when_a_disruption_will_expire() -> None:
    ctx, fake = context(ManualClock(T0 + timedelta(seconds=20)))
    controller = DisruptionController(ctx)
    pdb = _pdb(minAvailable=1)
    pdb["status"] = {"disruptedPods": {"a": rfc3339(T0)}}
    fill(ctx, rt("PodDisruptionBudget", "policy/v1"), pdb)
    fill(ctx, rt("Pod"), _pod("a"), _pod("b"))
    with pytest.raises(RequeueAfter) as later:
        await controller.sync("ns/web")
    assert later.value.seconds == 100.0
    ((_, _, call),) = fake.writes("replace")
    assert call["obj"]["status"]["currentHealthy"] == 1  # "a" is on its way out
