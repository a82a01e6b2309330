"""Indexed Jobs: which index each pod owns, which to start next, and how status writes them."""

from __future__ import annotations

import pytest

from controlplane.controllers import job_indexed as ji
from corral.objects import Obj


def job(completions: int = 5, completed: str = "") -> Obj:
    status = {"completedIndexes": completed} if completed else {}
    return {
        "metadata": {"name": "shards"},
        "spec": {"completions": completions, "completionMode": "Indexed"},
        "status": status,
    }


def pod(index: str | None, phase: str = "Running") -> Obj:
    annotations = {ji.INDEX_KEY: index} if index is not None else {}
    return {"metadata": {"annotations": annotations}, "status": {"phase": phase}}


@pytest.mark.parametrize(
    ("indexes", "text"),
    [([], ""), ([3], "3"), ([0, 1, 2, 4], "0-2,4"), ([6, 5, 1, 3], "1,3,5-6"), ([2, 2], "2")],
)
def test_intervals_round_trip(indexes: list[int], text: str) -> None:
    assert ji.intervals(indexes) == text
    assert ji.parse_intervals(text, 10) == set(indexes)


def test_parse_ignores_what_is_malformed_or_out_of_range() -> None:
    assert ji.parse_intervals("0-1,x,3-9", 5) == {0, 1, 3, 4}


def test_index_of_only_trusts_indexes_in_range() -> None:
    assert ji.index_of(pod("2"), 5) == 2
    assert ji.index_of(pod("5"), 5) is None
    assert ji.index_of(pod("two"), 5) is None
    assert ji.index_of(pod(None), 5) is None


def test_to_create_skips_running_and_completed_indexes() -> None:
    pods = [pod("0", "Succeeded"), pod("2"), pod("3", "Failed")]
    assert ji.to_create(job(), pods, 10) == [1, 3, 4]
    assert ji.to_create(job(), pods, 2) == [1, 3]
    # Indexes status recorded count as done even when their pods are gone.
    assert ji.to_create(job(completed="1,3"), pods, 10) == [4]


def test_with_index_marks_name_hostname_annotation_label_and_env() -> None:
    template_pod: Obj = {
        "metadata": {"generateName": "shards-", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]},
    }
    marked = ji.with_index(template_pod, job(), 4)
    assert marked["metadata"]["generateName"] == "shards-4-"
    assert marked["metadata"]["annotations"] == {ji.INDEX_KEY: "4"}
    assert marked["metadata"]["labels"] == {"app": "x", ji.INDEX_KEY: "4"}
    assert marked["spec"]["hostname"] == "shards-4"
    assert marked["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "JOB_COMPLETION_INDEX", "value": "4"},
    ]
    assert "annotations" not in template_pod["metadata"]  # the template is left alone
