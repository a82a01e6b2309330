"""NodeReady: only Ready nodes take new pods."""

from __future__ import annotations

from scheduler.framework import Code, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins.node_ready import NodeReady
from scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import handle_with, node, node_info, pod_info, run_filter


def check(pod: PodInfo, node: NodeInfo) -> Status:
    return run_filter(NodeReady.new({}, handle_with(node)), pod, node)


def test_a_ready_node_passes() -> None:
    assert check(pod_info(), node_info()).is_success


def test_a_not_ready_node_is_rejected() -> None:
    status = check(pod_info(), node_info(ready=False))
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("node(s) were not ready",)


def test_a_node_without_a_ready_condition_is_not_ready() -> None:
    obj = node()
    obj["status"]["conditions"] = [{"type": "MemoryPressure", "status": "False"}]
    assert not check(pod_info(), node_info(obj)).is_success


def test_a_pod_tolerating_not_ready_may_go_there() -> None:
    tolerant = pod_info(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert check(tolerant, node_info(ready=False)).is_success
