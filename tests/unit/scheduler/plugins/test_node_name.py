"""NodeName: a pod that names its node fits only that one."""

from __future__ import annotations

from scheduler.framework import Code
from scheduler.plugins.node_name import NodeName
from tests.unit.scheduler.builders import handle, node_info, pod_info, run_filter

PLUGIN = NodeName.new({}, handle())


def test_a_pod_without_a_node_name_fits_any_node() -> None:
    assert run_filter(PLUGIN, pod_info(), node_info(name="a")).is_success


def test_only_the_named_node_fits() -> None:
    pinned = pod_info(node_name="b")
    assert run_filter(PLUGIN, pinned, node_info(name="b")).is_success
    status = run_filter(PLUGIN, pinned, node_info(name="a"))
    assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("node(s) didn't match the requested node name",)
