"""TaintToleration: hard taints keep untolerating pods off; soft ones lower the score."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.framework import Code, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins.taint_toleration import TaintToleration
from scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import handle_with, node_info, pod_info, run_filter, run_score


def check(pod: PodInfo, node: NodeInfo) -> Status:
    return run_filter(TaintToleration.new({}, handle_with(node)), pod, node)


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> dict[str, str]:
    return {"key": key, "value": value, "effect": effect}


def test_an_untainted_node_passes() -> None:
    assert check(pod_info(), node_info()).is_success


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_a_hard_taint_rejects_and_names_itself(effect: str) -> None:
    tainted = node_info(taints=[taint("dedicated", "db", effect)])
    status = check(pod_info(), tainted)
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("node(s) had untolerated taint {dedicated: db}",)


def test_a_soft_taint_does_not_reject() -> None:
    tainted = node_info(taints=[taint("dedicated", "db", "PreferNoSchedule")])
    assert check(pod_info(), tainted).is_success


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "db"}, True),
        ({"key": "dedicated", "value": "db"}, True),  # Equal is the default
        ({"key": "dedicated", "operator": "Equal", "value": "web"}, False),
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # no key with Exists tolerates everything
        ({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_tolerations_match_as_kubernetes_does(toleration: dict[str, Any], tolerated: bool) -> None:
    tainted = node_info(taints=[taint("dedicated", "db")])
    assert check(pod_info(tolerations=[toleration]), tainted).is_success is tolerated


def test_every_hard_taint_must_be_tolerated() -> None:
    tainted = node_info(taints=[taint("a"), taint("b")])
    only_a = pod_info(tolerations=[{"key": "a", "operator": "Exists"}])
    assert check(only_a, tainted).reasons == ("node(s) had untolerated taint {b: }",)


def test_fewer_untolerated_soft_taints_score_higher() -> None:
    soft = "PreferNoSchedule"
    nodes = [
        node_info(name="clean"),
        node_info(name="one", taints=[taint("a", effect=soft)]),
        node_info(name="two", taints=[taint("a", effect=soft), taint("b", effect=soft)]),
    ]
    plugin = TaintToleration.new({}, handle_with(*nodes))
    assert run_score(plugin, pod_info(), nodes) == [100, 50, 0]
    tolerant = pod_info(tolerations=[{"key": "a", "operator": "Exists"}])
    assert run_score(plugin, tolerant, nodes) == [100, 100, 0]


def test_no_soft_taints_anywhere_skips_the_score() -> None:
    nodes = [node_info(), node_info()]
    assert run_score(TaintToleration.new({}, handle_with(*nodes)), pod_info(), nodes) is None
