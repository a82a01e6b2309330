"""Node health, taints and toleration timing, on a manual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.controllers.base import RequeueAfter
from controlplane.controllers.nodelifecycle import (
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    NodeLifecycleController,
    TaintEvictionController,
    desired_taints,
    eviction_delay,
    tolerates,
    unknown_conditions,
)
from corral.clock import ManualClock, rfc3339
from corral.objects import Obj
from tests.unit.controllers.fakes import context, fill, rt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def node(
    name: str, ready: str | None = "True", taints: list[Obj] | None = None, **spec: Any
) -> Obj:
    conditions = []
    if ready is not None:
        conditions.append(
            {
                "type": "Ready",
                "status": ready,
                "reason": "KubeletReady",
                "lastHeartbeatTime": rfc3339(T0),
                "lastTransitionTime": rfc3339(T0),
            }
        )
    return {
        "metadata": {"name": name, "creationTimestamp": rfc3339(T0), "resourceVersion": "7"},
        "spec": {"taints": taints or [], **spec},
        "status": {"conditions": conditions},
    }


def taint(key: str, effect: str = "NoExecute", added: datetime = T0, value: str = "") -> Obj:
    out: Obj = {"key": key, "effect": effect, "timeAdded": rfc3339(added)}
    if value:
        out["value"] = value
    return out


def test_tolerations_match_like_kubernetes() -> None:
    t = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
    assert tolerates({"key": "dedicated", "operator": "Equal", "value": "db"}, t)
    assert tolerates({"key": "dedicated", "value": "db", "effect": "NoExecute"}, t)
    assert not tolerates({"key": "dedicated", "value": "web"}, t)
    assert not tolerates({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, t)
    assert tolerates({"key": "dedicated", "operator": "Exists"}, t)
    assert tolerates({"operator": "Exists"}, t)  # an empty key with Exists tolerates everything


def _delay(tolerations: list[Obj], taints: list[Obj], now: datetime) -> float | None:
    return eviction_delay(
        tolerations,
        taints,
        now,
        20.0,
        lambda t: datetime.fromisoformat(t["timeAdded"].replace("Z", "+00:00")),
    )


def test_toleration_seconds_run_from_when_the_taint_was_added() -> None:
    taints = [taint(UNREACHABLE, added=T0)]
    tolerating = [
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    ]
    assert _delay(tolerating, taints, T0 + timedelta(seconds=10)) == 20.0
    assert _delay(tolerating, taints, T0 + timedelta(seconds=45)) == 0.0


def test_health_taints_get_the_default_toleration_and_others_evict_at_once() -> None:
    assert _delay([], [taint(NOT_READY)], T0 + timedelta(seconds=5)) == 15.0
    assert _delay([], [taint("dedicated", value="db")], T0) == 0.0


def test_toleration_without_seconds_tolerates_for_ever_and_shortest_wins() -> None:
    forever = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    assert _delay(forever, [taint(UNREACHABLE)], T0 + timedelta(days=9)) is None
    both: list[Obj] = [*forever, {"operator": "Exists", "tolerationSeconds": 60}]
    assert _delay(both, [taint(UNREACHABLE)], T0) == 60.0
    # Two taints: the earlier deadline counts.
    two = [taint(UNREACHABLE, added=T0), taint(NOT_READY, added=T0 + timedelta(seconds=100))]
    assert _delay([{"operator": "Exists", "tolerationSeconds": 50}], two, T0) == 50.0


def test_desired_taints_follow_ready_and_cordon_and_keep_others() -> None:
    now = T0 + timedelta(minutes=1)
    custom = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    unknown = desired_taints(node("n", "Unknown", taints=[custom]), now)
    assert [(t["key"], t["effect"]) for t in unknown] == [
        ("dedicated", "NoSchedule"),
        (UNREACHABLE, "NoExecute"),
        (UNREACHABLE, "NoSchedule"),
    ]
    assert all(t["timeAdded"] == rfc3339(now) for t in unknown[1:])
    # Going from Unknown to False swaps the taint; an existing one keeps its time.
    kept = taint(NOT_READY, "NoExecute", added=T0)
    not_ready = desired_taints(node("n", "False", taints=[kept, *unknown]), now)
    assert {(t["key"], t["effect"]) for t in not_ready} == {
        ("dedicated", "NoSchedule"),
        (NOT_READY, "NoExecute"),
        (NOT_READY, "NoSchedule"),
    }
    assert kept in not_ready
    assert desired_taints(node("n", "True", taints=not_ready), now) == [custom]
    cordoned = desired_taints(node("n", "True", unschedulable=True), now)
    assert [(t["key"], t["effect"]) for t in cordoned] == [(UNSCHEDULABLE, "NoSchedule")]


def test_unknown_conditions_keep_heartbeats() -> None:
    now = T0 + timedelta(minutes=1)
    (ready,) = unknown_conditions(node("n"), now)
    assert ready["status"] == "Unknown"
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    assert ready["lastHeartbeatTime"] == rfc3339(T0)
    assert ready["lastTransitionTime"] == rfc3339(now)
    (never,) = unknown_conditions(node("n", None), now)
    assert (never["reason"], never["message"]) == (
        "NodeStatusNeverUpdated",
        "Kubelet never posted node status.",
    )


# --- the controllers, on a manual clock -----------------------------------------------------


def _lease(name: str, renewed: str) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "kube-node-lease", "resourceVersion": renewed},
        "spec": {"holderIdentity": name, "renewTime": renewed},
    }


async def test_a_node_is_unknown_only_after_the_grace_period_of_silence() -> None:
    clock = ManualClock(T0)
    ctx, fake = context(clock)
    controller = NodeLifecycleController(ctx, grace_period=15.0)
    fill(ctx, rt("Node"), node("n1"))
    controller.leases.replace([_lease("n1", "2026-01-01T00:00:00.000000Z")], "1")
    with pytest.raises(RequeueAfter) as later:
        await controller.sync("n1")
    assert later.value.seconds == 15.0
    clock.advance(10)
    controller.leases.replace([_lease("n1", "2026-01-01T00:00:10.000000Z")], "2")  # a heartbeat
    clock.advance(10)
    with pytest.raises(RequeueAfter) as later:
        await controller.sync("n1")
    assert later.value.seconds == 5.0
    assert fake.calls == []
    clock.advance(5)
    await controller.sync("n1")
    ((_, path, call),) = fake.calls
    assert path == "nodes/n1" and call["subresource"] == "status"
    assert call["patch"]["metadata"]["resourceVersion"] == "7"
    (ready,) = call["patch"]["status"]["conditions"]
    assert ready["status"] == "Unknown"


def _pod(name: str, node_name: str, tolerations: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"nodeName": node_name, "tolerations": tolerations or []},
        "status": {"phase": "Running"},
    }


async def test_taint_eviction_waits_for_the_toleration_then_evicts() -> None:
    clock = ManualClock(T0 + timedelta(seconds=2))
    ctx, fake = context(clock)
    controller = TaintEvictionController(ctx, default_toleration_seconds=20.0)
    fill(
        ctx,
        rt("Node"),
        node("bad", "Unknown", taints=[taint(UNREACHABLE, added=T0)]),
        node("good"),
    )
    fill(ctx, rt("Pod"), _pod("p", "bad"))
    with pytest.raises(RequeueAfter) as later:
        await controller.sync("ns/p")
    assert later.value.seconds == 18.0
    clock.advance(18)
    await controller.sync("ns/p")
    patch, delete = fake.calls
    assert patch[2]["patch"]["status"]["conditions"][0]["type"] == "DisruptionTarget"
    assert delete[0] == "DELETE" and delete[1] == "/api/v1/namespaces/ns/pods/p"
    assert delete[2]["preconditions"] == {"uid": "uid-p"}


async def test_evictions_wait_while_every_node_is_down() -> None:
    clock = ManualClock(T0 + timedelta(minutes=5))
    ctx, fake = context(clock)
    controller = TaintEvictionController(ctx, default_toleration_seconds=20.0)
    fill(ctx, rt("Node"), node("a", "Unknown", taints=[taint(UNREACHABLE)]), node("b", "Unknown"))
    fill(ctx, rt("Pod"), _pod("p", "a"))
    with pytest.raises(RequeueAfter):
        await controller.sync("ns/p")
    assert fake.calls == []


def _terminating(name: str, owner_kind: str, grace: int = 10) -> Obj:
    pod = _pod(name, "bad")
    pod["spec"]["terminationGracePeriodSeconds"] = grace
    pod["metadata"]["deletionTimestamp"] = rfc3339(T0)
    pod["metadata"]["deletionGracePeriodSeconds"] = grace
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": owner_kind, "name": "o", "uid": "o", "controller": True}
    ]
    return pod


async def test_a_stateful_pod_is_force_deleted_only_once_its_node_is_fenced() -> None:
    """A pod deleted just as its node went silent: a ReplicaSet's goes after its grace
    period; a StatefulSet's waits until the agent has surely stopped it (fence-after 20 s
    plus its grace period, with margins: (20 + 10) * 1.1 + 5 = 38 s of silence)."""
    clock = ManualClock(T0)
    ctx, fake = context(clock)
    controller = NodeLifecycleController(ctx, grace_period=15.0, agent_fence_after=20.0)
    fill(ctx, rt("Node"), node("bad", "Unknown", taints=[taint(UNREACHABLE, added=T0)]))
    fill(ctx, rt("Pod"), _terminating("web-1", "StatefulSet"), _terminating("rs-x", "ReplicaSet"))
    with pytest.raises(RequeueAfter):
        await controller.sync("bad")  # hears of the node: silence starts now
    deleted = [c[1] for c in fake.calls if c[0] == "DELETE"]
    assert deleted == ["/api/v1/namespaces/ns/pods/rs-x"]
    clock.advance(16)
    fake.calls.clear()
    with pytest.raises(RequeueAfter) as later:
        await controller.sync("bad")
    assert [c for c in fake.calls if c[0] == "DELETE" and c[1].endswith("web-1")] == []
    assert later.value.seconds == pytest.approx(22.0)
    clock.advance(21.9)
    fake.calls.clear()
    with pytest.raises(RequeueAfter):
        await controller.sync("bad")
    assert [c for c in fake.calls if c[0] == "DELETE" and c[1].endswith("web-1")] == []
    clock.advance(0.1)
    await controller.sync("bad")
    (forced,) = [c for c in fake.calls if c[0] == "DELETE" and c[1].endswith("/pods/web-1")]
    assert forced[2]["gracePeriodSeconds"] == 0
