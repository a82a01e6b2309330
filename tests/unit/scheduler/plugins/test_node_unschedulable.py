"""NodeUnschedulable: cordoned nodes take no new pods, unless the pod tolerates it."""

from __future__ import annotations

from scheduler.framework import Code, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import handle_with, node_info, pod_info, run_filter


def check(pod: PodInfo, node: NodeInfo) -> Status:
    return run_filter(NodeUnschedulable.new({}, handle_with(node)), pod, node)


def test_a_schedulable_node_passes() -> None:
    assert check(pod_info(), node_info()).is_success


def test_a_cordoned_node_is_rejected_for_good() -> None:
    status = check(pod_info(), node_info(unschedulable=True))
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("node(s) were unschedulable",)


def test_a_pod_tolerating_the_unschedulable_taint_may_go_there() -> None:
    tolerant = pod_info(
        tolerations=[
            {
                "key": "node.kubernetes.io/unschedulable",
                "operator": "Exists",
                "effect": "NoSchedule",
            }
        ]
    )
    assert check(tolerant, node_info(unschedulable=True)).is_success
