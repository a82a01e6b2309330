"""PodDisruptionBudgets hold back the old-pod scale-downs of a rolling update."""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.controllers import deployment_rollout as r
from controlplane.controllers.deployment_pdb import DisruptionBudgets, healthy_losses
from corral.objects import Obj
from tests.unit.controllers.test_deployment_builders import (
    deployment,
    pdb,
    pod,
    pods_for,
    replica_set,
)


def _budgets(pdbs: list[Obj], sets: list[Obj], pods: list[Obj]) -> DisruptionBudgets:
    def pods_of(rs: Obj) -> Sequence[Obj]:
        uid = rs["metadata"]["uid"]
        return [p for p in pods if p["metadata"]["ownerReferences"][0]["uid"] == uid]

    return DisruptionBudgets.build(pdbs, pods, sets, pods_of)


def test_no_disruptions_allowed_holds_the_scale_down() -> None:
    old = replica_set("web-old", 4)
    budgets = _budgets([pdb(allowed=0, healthy=4, desired=4)], [old], pods_for(old, 4))
    assert budgets.allow(old, 4, 2) == 4
    assert [(rs["metadata"]["name"], p["metadata"]["name"]) for rs, p in budgets.held] == [
        ("web-old", "web-pdb")
    ]


def test_the_scale_down_is_cut_to_what_the_budget_allows() -> None:
    old = replica_set("web-old", 4)
    budgets = _budgets([pdb(allowed=1, healthy=4, desired=3)], [old], pods_for(old, 4))
    assert budgets.allow(old, 4, 1) == 3
    # Spent: asking again in the same pass gets nothing more.
    assert budgets.allow(old, 3, 1) == 3


def test_a_lagging_status_is_checked_against_the_pods() -> None:
    # The status still says 1 may go, but a pod is already unready.
    old = replica_set("web-old", 4)
    pods = pods_for(old, 4, ready=3)
    budgets = _budgets([pdb(allowed=1, healthy=4, desired=3)], [old], pods)
    # Only the unready pod may go: it costs nothing.
    assert budgets.allow(old, 4, 0) == 3


def test_a_scale_down_already_asked_for_counts_against_the_budget() -> None:
    # The ReplicaSet was cut to 3 but its fourth (healthy) pod is still there.
    old = replica_set("web-old", 3, actual=4)
    budgets = _budgets([pdb(allowed=1, healthy=4, desired=3)], [old], pods_for(old, 4))
    assert budgets.allow(old, 3, 2) == 3


def test_unready_pods_go_without_spending_the_budget() -> None:
    old = replica_set("web-old", 4)
    pods = pods_for(old, 4, ready=2)
    budgets = _budgets([pdb(allowed=0, healthy=2, desired=2)], [old], pods)
    assert budgets.allow(old, 4, 2) == 2
    assert budgets.allow(old, 2, 1) == 2
    assert healthy_losses(old, 2, pods) == 0


def test_terminating_pods_do_not_count_as_healthy() -> None:
    old = replica_set("web-old", 3)
    pods = [*pods_for(old, 3), pod("web-old-gone", old, deleting=True)]
    budgets = _budgets([pdb(allowed=5, healthy=4, desired=2)], [old], pods)
    assert budgets.allow(old, 3, 0) == 2  # 3 healthy - 2 desired = 1 may go


def test_a_budget_whose_spec_is_not_yet_observed_allows_nothing() -> None:
    old = replica_set("web-old", 4)
    stale = pdb(allowed=3, healthy=4, desired=1, generation=2, observed=1)
    assert _budgets([stale], [old], pods_for(old, 4)).allow(old, 4, 0) == 4


def test_budgets_that_select_other_pods_do_not_apply() -> None:
    old = replica_set("web-old", 4)
    other = pdb(allowed=0, healthy=2, desired=2, labels={"app": "db"})
    assert _budgets([other], [old], pods_for(old, 4)).allow(old, 4, 0) == 0


def test_one_budget_is_shared_by_every_replica_set_it_covers() -> None:
    a = replica_set("web-a", 2, created="2026-01-01T00:00:00Z")
    b = replica_set("web-b", 2, created="2026-01-01T00:01:00Z")
    pods = [*pods_for(a, 2), *pods_for(b, 2)]
    budgets = _budgets([pdb(allowed=1, healthy=4, desired=3)], [a, b], pods)
    assert budgets.allow(a, 2, 0) == 1
    assert budgets.allow(b, 2, 0) == 2


def test_a_rolling_update_never_goes_below_the_budget() -> None:
    d = deployment(4, surge=0, unavailable=2)
    old = replica_set("web-old", 4, created="2026-01-01T00:00:00Z")
    new = replica_set("web-new", 0, created="2026-01-01T00:01:00Z")
    pods = pods_for(old, 4)
    held = _budgets([pdb(allowed=0, healthy=4, desired=4)], [old, new], pods)
    assert r.old_scale_downs(d, [old, new], [old], new, held) == []
    one = _budgets([pdb(allowed=1, healthy=4, desired=3)], [old, new], pods)
    steps = r.old_scale_downs(d, [old, new], [old], new, one)
    assert [(s.rs["metadata"]["name"], s.to) for s in steps] == [("web-old", 3)]
