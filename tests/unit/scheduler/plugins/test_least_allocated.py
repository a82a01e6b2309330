"""NodeResourcesLeastAllocated: the emptier the node after the pod, the higher the score."""

from __future__ import annotations

import pytest

from scheduler.framework import ConfigError
from scheduler.plugins.least_allocated import NodeResourcesLeastAllocated
from tests.unit.scheduler.builders import handle, node_info, pod_info, run_score

PLUGIN = NodeResourcesLeastAllocated.new({}, handle())


def test_scores_are_the_mean_free_share_after_the_pod() -> None:
    empty = node_info(name="empty", cpu="4", memory="4Gi")
    half = node_info(name="half", cpu="4", memory="4Gi")
    half.add_pod(pod_info(name="x", cpu="2", memory="2Gi"))
    pod = pod_info(cpu="1", memory="1Gi")
    # empty: cpu 3/4 free, memory 3/4 free -> 75; half: 1/4 and 1/4 -> 25.
    assert run_score(PLUGIN, pod, [empty, half]) == [75, 25]


def test_an_over_full_resource_scores_zero() -> None:
    node = node_info(cpu="1", memory="4Gi")
    assert run_score(PLUGIN, pod_info(cpu="2", memory="2Gi"), [node]) == [25]


def test_requests_count_with_non_zero_defaults() -> None:
    # 100m and 200Mi for a pod that requests nothing, as in Kubernetes.
    node = node_info(cpu="1", memory="2000Mi")
    assert run_score(PLUGIN, pod_info(), [node]) == [90]


def test_configured_resources_and_weights() -> None:
    plugin = NodeResourcesLeastAllocated.new(
        {"resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]}, handle()
    )
    node = node_info(cpu="4", memory="4Gi")
    # cpu 50 free at weight 3, memory 100 - 25 at weight 1: (150 + 75) / 4.
    assert run_score(plugin, pod_info(cpu="2", memory="1Gi"), [node]) == [56]


def test_a_resource_the_node_lacks_is_left_out() -> None:
    plugin = NodeResourcesLeastAllocated.new(
        {"resources": [{"name": "cpu"}, {"name": "example.com/gpu"}]}, handle()
    )
    assert run_score(plugin, pod_info(cpu="1"), [node_info(cpu="4")]) == [75]


@pytest.mark.parametrize(
    "args",
    [
        {"resources": []},
        {"resources": [{"weight": 1}]},
        {"resources": [{"name": "cpu", "weight": 0}]},
        {"resources": [{"name": "cpu", "extra": 1}]},
        {"other": 1},
    ],
)
def test_bad_arguments_are_refused(args: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="NodeResourcesLeastAllocated"):
        NodeResourcesLeastAllocated.new(args, handle())
