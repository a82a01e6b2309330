"""The explanation of an unschedulable pod, in Kubernetes' words."""

from __future__ import annotations

from scheduler.diagnosis import Diagnosis
from scheduler.framework import Status

AFFINITY = "node(s) didn't match Pod's node affinity/selector"


def test_the_issue_example() -> None:
    diagnosis = Diagnosis(
        5,
        {
            "n1": ("NodeResourcesFit", Status.unschedulable("Insufficient memory")),
            "n2": ("NodeResourcesFit", Status.unschedulable("Insufficient memory")),
            "n3": ("NodeResourcesFit", Status.unschedulable("Insufficient memory")),
            "n4": ("NodeAffinity", Status.unresolvable(AFFINITY)),
            "n5": ("NodeAffinity", Status.unresolvable(AFFINITY)),
        },
    )
    assert diagnosis.message() == (
        "0/5 nodes are available: 3 Insufficient memory, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )
    assert diagnosis.rejected_by == {"NodeResourcesFit", "NodeAffinity"}


def test_every_reason_of_a_node_counts_and_ties_read_alphabetically() -> None:
    diagnosis = Diagnosis(
        2,
        {
            "n1": (
                "NodeResourcesFit",
                Status.unschedulable("Insufficient cpu", "Insufficient memory"),
            ),
            "n2": ("NodeResourcesFit", Status.unschedulable("Insufficient memory")),
        },
    )
    assert diagnosis.message() == (
        "0/2 nodes are available: 2 Insufficient memory, 1 Insufficient cpu."
    )


def test_large_counts_come_first() -> None:
    statuses = {f"n{i}": ("A", Status.unschedulable("b")) for i in range(10)}
    statuses.update({f"m{i}": ("B", Status.unschedulable("a")) for i in range(9)})
    assert Diagnosis(19, statuses).message() == "0/19 nodes are available: 10 b, 9 a."


def test_no_nodes_at_all() -> None:
    assert Diagnosis(0).message() == (
        "0/0 nodes are available: no nodes available to schedule pods."
    )


def test_a_pre_filter_rejection_covers_the_pod() -> None:
    diagnosis = Diagnosis(3, pre_filter=("Quota", Status.unschedulable("over quota")))
    assert diagnosis.message() == "0/3 nodes are available: over quota."
    assert diagnosis.rejected_by == {"Quota"}
