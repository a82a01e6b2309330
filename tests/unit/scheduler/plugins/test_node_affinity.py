"""NodeAffinity: nodeSelector and required affinity filter; preferred affinity scores."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.framework import Code
from scheduler.plugins.node_affinity import NodeAffinity
from tests.unit.scheduler.builders import handle, node_info, pod_info, run_filter, run_score

PLUGIN = NodeAffinity.new({}, handle())
REASON = "node(s) didn't match Pod's node affinity/selector"


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    found: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        found["values"] = list(values)
    return found


def test_a_pod_with_no_constraints_fits_anywhere() -> None:
    assert run_filter(PLUGIN, pod_info(), node_info()).is_success


def test_node_selector_needs_every_label() -> None:
    pod = pod_info(node_selector={"disk": "ssd", "gpu": "yes"})
    assert run_filter(PLUGIN, pod, node_info(labels={"disk": "ssd", "gpu": "yes"})).is_success
    status = run_filter(PLUGIN, pod, node_info(labels={"disk": "ssd"}))
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == (REASON,)


@pytest.mark.parametrize(
    ("expression", "labels", "fits"),
    [
        (expr("zone", "In", "a", "b"), {"zone": "b"}, True),
        (expr("zone", "In", "a", "b"), {"zone": "c"}, False),
        (expr("zone", "NotIn", "a"), {"zone": "c"}, True),
        (expr("zone", "NotIn", "a"), {}, True),
        (expr("zone", "Exists"), {"zone": "x"}, True),
        (expr("zone", "Exists"), {}, False),
        (expr("zone", "DoesNotExist"), {}, True),
        (expr("cores", "Gt", "8"), {"cores": "16"}, True),
        (expr("cores", "Gt", "8"), {"cores": "8"}, False),
        (expr("cores", "Lt", "8"), {"cores": "4"}, True),
        (expr("cores", "Lt", "8"), {"cores": "many"}, False),
    ],
)
def test_match_expressions(expression: dict[str, Any], labels: dict[str, str], fits: bool) -> None:
    pod = pod_info(affinity=required({"matchExpressions": [expression]}))
    assert run_filter(PLUGIN, pod, node_info(labels=labels)).is_success is fits


def test_terms_are_ored_and_expressions_anded() -> None:
    pod = pod_info(
        affinity=required(
            {"matchExpressions": [expr("a", "Exists"), expr("b", "Exists")]},
            {"matchExpressions": [expr("c", "Exists")]},
        )
    )
    assert run_filter(PLUGIN, pod, node_info(labels={"a": "1", "b": "1"})).is_success
    assert run_filter(PLUGIN, pod, node_info(labels={"c": "1"})).is_success
    assert not run_filter(PLUGIN, pod, node_info(labels={"a": "1"})).is_success


def test_match_fields_select_by_node_name() -> None:
    pod = pod_info(affinity=required({"matchFields": [expr("metadata.name", "In", "n2")]}))
    assert run_filter(PLUGIN, pod, node_info(name="n2")).is_success
    assert not run_filter(PLUGIN, pod, node_info(name="n1")).is_success


def test_an_empty_term_matches_nothing() -> None:
    pod = pod_info(affinity=required({}))
    assert not run_filter(PLUGIN, pod, node_info()).is_success


def test_selector_and_affinity_must_both_hold() -> None:
    pod = pod_info(
        node_selector={"disk": "ssd"},
        affinity=required({"matchExpressions": [expr("zone", "In", "a")]}),
    )
    assert run_filter(PLUGIN, pod, node_info(labels={"disk": "ssd", "zone": "a"})).is_success
    assert not run_filter(PLUGIN, pod, node_info(labels={"zone": "a"})).is_success
    assert not run_filter(PLUGIN, pod, node_info(labels={"disk": "ssd"})).is_success


def test_preferred_terms_score_by_their_weights() -> None:
    affinity = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 80, "preference": {"matchExpressions": [expr("disk", "In", "ssd")]}},
                {"weight": 20, "preference": {"matchExpressions": [expr("zone", "In", "a")]}},
            ]
        }
    }
    nodes = [
        node_info(name="both", labels={"disk": "ssd", "zone": "a"}),
        node_info(name="ssd", labels={"disk": "ssd"}),
        node_info(name="zone", labels={"zone": "a"}),
        node_info(name="none"),
    ]
    assert run_score(PLUGIN, pod_info(affinity=affinity), nodes) == [100, 80, 20, 0]


def test_no_preferences_no_score() -> None:
    assert run_score(PLUGIN, pod_info(), [node_info()]) is None


def test_preferences_no_node_matches_score_zero() -> None:
    affinity = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "preference": {"matchExpressions": [expr("gpu", "Exists")]}}
            ]
        }
    }
    assert run_score(PLUGIN, pod_info(affinity=affinity), [node_info(), node_info()]) == [0, 0]
