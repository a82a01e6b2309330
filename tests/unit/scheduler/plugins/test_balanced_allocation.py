"""NodeResourcesBalancedAllocation: prefer nodes whose CPU and memory fill evenly."""

from __future__ import annotations

from scheduler.plugins.balanced_allocation import NodeResourcesBalancedAllocation
from tests.unit.scheduler.builders import handle, node_info, pod_info, run_score

PLUGIN = NodeResourcesBalancedAllocation.new({}, handle())


def test_even_use_scores_full_and_uneven_use_less() -> None:
    even = node_info(name="even", cpu="4", memory="4Gi")
    skewed = node_info(name="skewed", cpu="4", memory="4Gi")
    skewed.add_pod(pod_info(name="x", cpu="2", memory="100Mi"))
    pod = pod_info(cpu="1", memory="1Gi")
    even_score, skewed_score = run_score(PLUGIN, pod, [even, skewed]) or []
    assert even_score == 100
    # skewed: cpu 3/4, memory ~0.27: half the difference off.
    assert 70 <= skewed_score <= 80


def test_fractions_are_capped_at_one() -> None:
    node = node_info(cpu="1", memory="1Gi")
    # cpu 4/1 counts as 1, memory 0.5: a quarter off.
    assert run_score(PLUGIN, pod_info(cpu="4", memory="512Mi"), [node]) == [75]


def test_more_resources_use_the_standard_deviation() -> None:
    plugin = NodeResourcesBalancedAllocation.new(
        {"resources": [{"name": "cpu"}, {"name": "memory"}, {"name": "example.com/gpu"}]},
        handle(),
    )
    node = node_info(cpu="4", memory="4Gi", extra={"example.com/gpu": "4"})
    pod = pod_info(cpu="2", memory="2Gi", extra={"example.com/gpu": "2"})
    assert run_score(plugin, pod, [node]) == [100]
    lopsided = pod_info(cpu="4", memory="2Gi", extra={"example.com/gpu": "0"})
    (score,) = run_score(plugin, lopsided, [node]) or []
    assert score < 100
