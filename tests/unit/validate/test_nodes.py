"""Nodes: taints, pod CIDRs, reported capacity, and what an update may change."""

from __future__ import annotations

import pytest

from .builders import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    Mutation,
    append,
    causes_of,
    drop,
    mutated,
    node,
    put,
    update_causes,
    validate,
)

CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "same key and effect twice",
        append("spec/taints", {"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}),
        [("spec.taints[2]", DUPLICATE)],
    ),
    (
        "bad taint key",
        put("spec/taints/0/key", "dedicated node"),
        [("spec.taints[0].key", INVALID)],
    ),
    ("bad taint value", put("spec/taints/0/value", "g p u"), [("spec.taints[0].value", INVALID)]),
    ("pod CIDR without mask", put("spec/podCIDR", "10.244.1.0"), [("spec.podCIDR", INVALID)]),
    (
        "pod CIDR mask too long",
        put("spec/podCIDRs/1", "fd00:1::/129"),
        [("spec.podCIDRs[1]", INVALID)],
    ),
    (
        "two IPv4 pod CIDRs",
        put("spec/podCIDRs/1", "10.244.2.0/24"),
        [("spec.podCIDRs", INVALID)],
    ),
    (
        "negative capacity",
        put("status/capacity/cpu", "-1"),
        [("status.capacity.cpu", INVALID)],
    ),
    ("fractional pods", put("status/capacity/pods", "1.5"), [("status.capacity.pods", INVALID)]),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_node(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Node", mutation) == expected


UPDATES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("taints changed", put("spec/taints", []), []),
    ("cordoned", put("spec/unschedulable", True), []),
    ("pod CIDR changed", put("spec/podCIDR", "10.244.9.0/24"), [("spec.podCIDR", FORBIDDEN)]),
    ("pod CIDRs dropped", drop("spec/podCIDRs"), [("spec.podCIDRs", FORBIDDEN)]),
    (
        "provider ID changed",
        put("spec/providerID", "corral://node-2"),
        [("spec.providerID", FORBIDDEN)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in UPDATES], ids=[c[0] for c in UPDATES]
)
def test_node_update(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert update_causes("Node", mutation) == expected


def test_cidr_may_be_assigned_once() -> None:
    old = mutated("Node", drop("spec/podCIDR"), drop("spec/podCIDRs"))
    assert validate("Node", node(), old) == []


def test_duplicate_taint_message() -> None:
    causes = validate(
        "Node",
        mutated("Node", append("spec/taints", {"key": "dedicated", "effect": "NoSchedule"})),
    )
    assert causes[0].message == (
        'Duplicate value: {"key":"dedicated","effect":"NoSchedule"}: '
        "taints must be unique by key and effect pair"
    )
