"""The DaemonSet controller's decisions: which nodes, which pods, and the counts it reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.controllers.daemonset_nodes import (
    default_tolerations,
    pod_for,
    should_run,
    target_node,
)
from controlplane.controllers.daemonset_plan import (
    by_node,
    manage,
    rolling_update,
    scaled,
    status_counts,
)
from corral.clock import rfc3339
from corral.objects import Obj

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD, NEW = "oldhash", "newhash"


def ds(**strategy: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "ns", "uid": "uid-ds", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
        },
    }


def node(name: str, labels: dict[str, str] | None = None, taints: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or []},
    }


_counter = iter(range(10_000))


def pod(
    node_name: str,
    *,
    revision: str = NEW,
    ready: bool = True,
    bound: bool = True,
    terminating: bool = False,
    phase: str = "Running",
    age: int = 0,
) -> Obj:
    made = pod_for(ds(), ds()["spec"]["template"], node_name, revision)
    n = next(_counter)
    made["metadata"].update(
        name=f"agent-{n}",
        uid=f"uid-{n}",
        creationTimestamp=rfc3339(T0 + timedelta(seconds=n - age * 1000)),
    )
    if bound:
        made["spec"]["nodeName"] = node_name
    if terminating:
        made["metadata"]["deletionTimestamp"] = rfc3339(T0)
    made["status"] = {
        "phase": phase,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": rfc3339(T0),
            }
        ],
    }
    return made


def test_a_pod_is_pinned_to_its_node_by_affinity_and_tolerates_node_trouble() -> None:
    made = pod_for(ds(), ds()["spec"]["template"], "n1", NEW)
    assert "nodeName" not in made["spec"]
    required = made["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert required == {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
        ]
    }
    assert target_node(made) == "n1"
    assert made["metadata"]["labels"]["controller-revision-hash"] == NEW
    assert made["metadata"]["generateName"] == "agent-"
    keys = {(t["key"], t["effect"]) for t in made["spec"]["tolerations"]}
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in keys


def test_host_network_pods_also_tolerate_an_unavailable_network() -> None:
    keys = {t["key"] for t in default_tolerations({"hostNetwork": True})}
    assert "node.kubernetes.io/network-unavailable" in keys


def test_node_selector_affinity_and_taints_decide_eligibility() -> None:
    template = ds()["spec"]["template"]
    template["spec"]["nodeSelector"] = {"role": "edge"}
    assert should_run(template, node("a", {"role": "edge"})) == (True, True)
    assert should_run(template, node("b", {"role": "core"})) == (False, False)

    template = ds()["spec"]["template"]
    template["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}
                ]
            }
        }
    }
    assert should_run(template, node("a", {"zone": "z1"}))[0]
    assert not should_run(template, node("a", {"zone": "z2"}))[0]

    plain = ds()["spec"]["template"]
    no_schedule = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    no_execute = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
    # A NoSchedule taint keeps new pods off, but one already there stays.
    assert should_run(plain, node("a", taints=[no_schedule])) == (False, True)
    assert should_run(plain, node("a", taints=[no_execute])) == (False, False)
    # The defaults: a not-ready or cordoned node still runs its daemons.
    not_ready = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}
    cordoned = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    assert should_run(plain, node("a", taints=[not_ready, cordoned])) == (True, True)
    plain["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    assert should_run(plain, node("a", taints=[no_execute])) == (True, True)


def test_manage_creates_on_empty_nodes_and_deletes_extras_and_orphans() -> None:
    nodes = [node("a"), node("b"), node("c", {"x": "y"}, [{"key": "k", "effect": "NoExecute"}])]
    older = pod("a", age=1)
    newer = pod("a")
    misplaced = pod("c")
    on_gone = pod("gone")
    waiting_for_gone = pod("gone2", bound=False)
    plan = manage(ds(), nodes, by_node([older, newer, misplaced, on_gone, waiting_for_gone]), NEW)
    assert plan.create_on == ["b"]
    deleted = {d.pod["metadata"]["name"]: d for d in plan.delete}
    assert set(deleted) == {
        newer["metadata"]["name"],
        misplaced["metadata"]["name"],
        on_gone["metadata"]["name"],
        waiting_for_gone["metadata"]["name"],
    }
    # A pod bound to a deleted node has no agent to confirm a graceful stop.
    assert deleted[on_gone["metadata"]["name"]].force
    assert not deleted[waiting_for_gone["metadata"]["name"]].force


def test_manage_replaces_a_failed_pod_and_waits_for_a_terminating_one() -> None:
    failed = pod("a", phase="Failed")
    going = pod("b", terminating=True)
    plan = manage(ds(), [node("a"), node("b")], by_node([failed, going]), NEW)
    assert [d.pod["metadata"]["name"] for d in plan.delete] == [failed["metadata"]["name"]]
    assert plan.create_on == []  # b: the old pod must be gone first


def test_max_unavailable_bounds_how_many_old_pods_go_at_once() -> None:
    nodes = [node(n) for n in "abcd"]
    pods = by_node([pod(n, revision=OLD) for n in "abcd"])
    plan = rolling_update(ds(maxUnavailable=2), nodes, pods, NEW, T0)
    assert len(plan.delete) == 2 and plan.create_on == []
    # One new pod is not ready yet: it uses up one of the two.
    pods = by_node([pod("a", ready=False), *(pod(n, revision=OLD) for n in "bcd")])
    plan = rolling_update(ds(maxUnavailable=2), nodes, pods, NEW, T0)
    assert len(plan.delete) == 1
    # An old pod that is not available anyway is always replaced.
    pods = by_node([pod("a", ready=False), pod("b", revision=OLD, ready=False)])
    plan = rolling_update(ds(maxUnavailable=1), nodes[:2], pods, NEW, T0)
    assert [d.pod["spec"]["nodeName"] for d in plan.delete] == ["b"]


def test_max_surge_starts_new_pods_beside_old_ones_then_deletes_the_old() -> None:
    nodes = [node(n) for n in "abc"]
    pods = by_node([pod(n, revision=OLD) for n in "abc"])
    plan = rolling_update(ds(maxSurge=1, maxUnavailable=0), nodes, pods, NEW, T0)
    assert plan.create_on == ["a"] and plan.delete == []
    # The new pod on a is not ready: no more surge.
    pods = by_node([pod("a", revision=OLD), pod("a", ready=False), pod("b", revision=OLD)])
    plan = rolling_update(ds(maxSurge=1, maxUnavailable=0), nodes[:2], pods, NEW, T0)
    assert plan.create_on == [] and plan.delete == []
    # Ready: its old pod goes, and b gets its new pod.
    old_a = pod("a", revision=OLD)
    pods = by_node([old_a, pod("a"), pod("b", revision=OLD)])
    plan = rolling_update(ds(maxSurge=1, maxUnavailable=0), nodes[:2], pods, NEW, T0)
    assert [d.pod for d in plan.delete] == [old_a]
    assert plan.create_on == ["b"]
    # While surging, manage keeps one old and one new pod on a node.
    assert manage(ds(maxSurge=1, maxUnavailable=0), nodes[:2], pods, NEW).empty()


def test_on_delete_never_replaces_pods() -> None:
    on_delete = ds()
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    pods = by_node([pod("a", revision=OLD)])
    assert rolling_update(on_delete, [node("a")], pods, NEW, T0).empty()


def test_percentages_round_up() -> None:
    assert scaled("10%", 3, 1) == 1
    assert scaled("50%", 3, 1) == 2
    assert scaled(None, 3, 1) == 1
    assert scaled(0, 3, 1) == 0


def test_status_counts_judge_each_node_by_its_oldest_pod() -> None:
    nodes = [
        node("a"),
        node("b"),
        node("c"),
        node("d", {"x": "y"}, [{"key": "k", "effect": "NoExecute"}]),
    ]
    pods = by_node(
        [
            pod("a"),
            pod("b", revision=OLD),
            pod("c", ready=False),
            pod("d"),  # misscheduled
        ]
    )
    counts = status_counts(ds(), [*nodes, node("e")], pods, NEW, T0)
    assert counts == {
        "desiredNumberScheduled": 4,
        "currentNumberScheduled": 3,
        "numberMisscheduled": 1,
        "numberReady": 2,
        "numberAvailable": 2,
        "updatedNumberScheduled": 2,
        "numberUnavailable": 2,
    }
