"""Surge and unavailability arithmetic, rolling steps and proportional scaling."""

from __future__ import annotations

import pytest

from controlplane.controllers import deployment_rollout as r
from corral.objects import Obj
from tests.unit.controllers.test_deployment_builders import deployment, replica_set

OLD = "2026-01-01T00:00:00Z"
NEW = "2026-01-01T00:01:00Z"
NEWER = "2026-01-01T00:02:00Z"


@pytest.mark.parametrize(
    ("value", "total", "up", "want"),
    [
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("29%", 100, False, 29),
        ("1%", 10, True, 1),
        ("1%", 10, False, 0),
        ("100%", 7, False, 7),
        ("0%", 7, True, 0),
        (4, 10, True, 4),
        (None, 10, True, 0),
    ],
)
def test_scaled_value_rounds_like_kubernetes(
    value: int | str | None, total: int, up: bool, want: int
) -> None:
    assert r.scaled_value(value, total, round_up=up) == want


def test_scaled_value_refuses_a_string_without_percent() -> None:
    with pytest.raises(ValueError, match="not a percentage"):
        r.scaled_value("5", 10, round_up=True)


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "want"),
    [
        ("25%", "25%", 10, (3, 2)),
        ("25%", "25%", 1, (1, 0)),
        ("1%", "1%", 10, (1, 0)),
        # Both round to zero: one pod may go, so the rollout can move.
        ("0%", "1%", 10, (0, 1)),
        (0, 0, 5, (0, 1)),
        (2, 3, 10, (2, 3)),
        ("50%", 0, 3, (2, 0)),
    ],
)
def test_resolve_fenceposts(
    surge: int | str, unavailable: int | str, desired: int, want: tuple[int, int]
) -> None:
    assert r.resolve_fenceposts(surge, unavailable, desired) == want


def test_recreate_has_no_surge_and_no_unavailability() -> None:
    d = deployment(10, strategy="Recreate")
    assert (r.max_surge(d), r.max_unavailable(d)) == (0, 0)
    assert r.new_rs_replicas(d, [], replica_set("web-new", 0)) == 10


def test_new_replica_set_grows_within_the_surge() -> None:
    d = deployment(10, surge=3, unavailable=2)
    old = replica_set("web-old", 10, created=OLD)
    new = replica_set("web-new", 0, created=NEW)
    assert r.new_rs_replicas(d, [old, new], new) == 3
    # At replicas + surge already: no growth.
    grown = replica_set("web-new", 3, created=NEW)
    assert r.new_rs_replicas(d, [old, grown], grown) == 3
    # Never beyond spec.replicas.
    assert r.new_rs_replicas(d, [replica_set("web-old", 1), new], new) == 10


def _sizes(steps: list[r.Resize]) -> list[tuple[str, int]]:
    return [(step.rs["metadata"]["name"], step.to) for step in steps]


def test_old_pods_go_only_as_new_ones_become_available() -> None:
    # Kubernetes' example: 10 replicas, maxUnavailable 2, maxSurge 3.
    d = deployment(10, surge=3, unavailable=2)
    old = replica_set("web-old", 10, created=OLD)
    new = replica_set("web-new", 3, available=0, created=NEW)
    # 13 pods, 8 must stay available, 3 new ones are not yet: 2 old ones may go.
    assert _sizes(r.old_scale_downs(d, [old, new], [old], new)) == [("web-old", 8)]

    # New pods crash-loop: 13 - 8 - 5 unavailable new ones = 0, nothing goes.
    stuck = replica_set("web-new", 5, available=0, created=NEW)
    shrunk = replica_set("web-old", 8, created=OLD)
    assert r.old_scale_downs(d, [shrunk, stuck], [shrunk], stuck) == []


def test_unhealthy_old_pods_go_first() -> None:
    d = deployment(10, surge=3, unavailable=2)
    old = replica_set("web-old", 10, available=7, created=OLD)
    new = replica_set("web-new", 0, created=NEW)
    # Room for 2: both come out of the 3 unavailable old pods; availability
    # (7) is already below the minimum (8), so no available pod goes.
    assert _sizes(r.old_scale_downs(d, [old, new], [old], new)) == [("web-old", 8)]


def test_oldest_replica_set_shrinks_first() -> None:
    d = deployment(10, surge=0, unavailable=3)
    older = replica_set("web-a", 2, created=OLD)
    old = replica_set("web-b", 8, created=NEW)
    new = replica_set("web-c", 0, created=NEWER)
    steps = r.old_scale_downs(d, [older, old, new], [old, older], new)
    assert _sizes(steps) == [("web-a", 0), ("web-b", 7)]


class AtMost:
    """A limit that lets ``n`` replicas go in all, whatever is asked."""

    def __init__(self, n: int) -> None:
        self.left = n

    def allow(self, rs: Obj, current: int, target: int) -> int:
        allowed = max(target, current - self.left)
        self.left -= current - allowed
        return allowed


def test_a_limit_holds_back_scale_downs() -> None:
    d = deployment(10, surge=0, unavailable=4)
    old = replica_set("web-old", 10, created=OLD)
    new = replica_set("web-new", 0, created=NEW)
    assert _sizes(r.old_scale_downs(d, [old, new], [old], new, AtMost(1))) == [("web-old", 9)]
    assert r.old_scale_downs(d, [old, new], [old], new, AtMost(0)) == []


def test_a_limit_is_asked_for_unhealthy_pods_too() -> None:
    d = deployment(10, surge=3, unavailable=2)
    old = replica_set("web-old", 10, available=7, created=OLD)
    new = replica_set("web-new", 0, created=NEW)
    assert r.old_scale_downs(d, [old, new], [old], new, AtMost(0)) == []


# --- proportional scaling ---------------------------------------------------------------------


def _annotated(rs: Obj, max_replicas: int, desired: int) -> Obj:
    rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] = str(max_replicas)
    rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(desired)
    return rs


@pytest.mark.parametrize(
    ("before", "after", "new", "old", "want_new", "want_old"),
    [
        # Kubernetes' sync_test cases (surge 0, so max-replicas is the old size).
        (5, 10, 2, [3], 4, [6]),
        (5, 3, 2, [3], 1, [2]),
        (9, 4, 8, [1], 4, [0]),
        # What rounding leaves over goes to the biggest (newest among equals when growing).
        (3, 4, 1, [1, 1], 2, [1, 1]),
        # And is taken from the biggest (oldest among equals when shrinking).
        (4, 3, 2, [1, 1], 1, [1, 1]),
    ],
)
def test_proportional_scaling(
    before: int, after: int, new: int, old: list[int], want_new: int, want_old: list[int]
) -> None:
    d = deployment(after, surge=0, unavailable=1)
    new_rs = _annotated(replica_set("web-new", new, created=NEWER), before, before)
    stamps = [NEW, OLD]
    old_rs = [
        _annotated(replica_set(f"web-old{i}", n, created=stamps[i]), before, before)
        for i, n in enumerate(old)
    ]
    assert r.is_scaling_event(d, [new_rs, *old_rs])
    sizes = dict(_sizes(r.proportional_sizes(d, new_rs, old_rs)))
    assert sizes["web-new"] == want_new
    assert [sizes[f"web-old{i}"] for i in range(len(old))] == want_old


def test_rounding_is_half_away_from_zero() -> None:
    # 3 + 1 replicas resized to 2: the old one's share, 0.5, rounds to 1 as Go's
    # math.Round does (Python's round() would make it 0 and empty that ReplicaSet).
    d = deployment(2, surge=0, unavailable=1)
    new_rs = _annotated(replica_set("web-new", 3, created=NEW), 4, 4)
    old_rs = _annotated(replica_set("web-old", 1, created=OLD), 4, 4)
    sizes = dict(_sizes(r.proportional_sizes(d, new_rs, [old_rs])))
    assert sizes == {"web-new": 1, "web-old": 1}


def test_one_active_replica_set_takes_every_replica() -> None:
    d = deployment(7)
    only = replica_set("web-old", 3, created=OLD)
    idle = replica_set("web-older", 0, created="2025-12-01T00:00:00Z")
    assert _sizes(r.proportional_sizes(d, None, [only, idle])) == [("web-old", 7)]
    assert r.proportional_sizes(deployment(3), None, [only]) == []


def test_a_saturated_new_replica_set_empties_the_old_ones() -> None:
    d = deployment(4)
    new_rs = _annotated(replica_set("web-new", 4, created=NEW), 5, 4)
    old_rs = replica_set("web-old", 2, created=OLD)
    assert r.is_saturated(d, new_rs)
    assert _sizes(r.proportional_sizes(d, new_rs, [old_rs])) == [("web-old", 0)]


def test_a_scaling_event_is_a_changed_desired_count_on_an_active_replica_set() -> None:
    d = deployment(5)
    sized = _annotated(replica_set("web-a", 2), 6, 5)
    assert not r.is_scaling_event(d, [sized])
    assert r.is_scaling_event(deployment(6), [sized])
    # An idle ReplicaSet's annotations do not count.
    assert not r.is_scaling_event(deployment(6), [_annotated(replica_set("web-b", 0), 6, 5)])
