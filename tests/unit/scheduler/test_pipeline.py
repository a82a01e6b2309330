"""The pipeline: filters, sampling, scores and weights, and the explanation."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from scheduler.cache import Cache
from scheduler.config import SchedulerConfig, config_from_dict
from scheduler.diagnosis import FitError, SchedulingError
from scheduler.events import ClusterEvent
from scheduler.framework import ConfigError, CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.pipeline import Pipeline, num_feasible_nodes_to_find
from scheduler.podinfo import PodInfo
from scheduler.registry import REGISTRY
from tests.unit.scheduler.builders import handle, node, pod_info


def cluster(*nodes: dict[str, Any]) -> Cache:
    cache = Cache()
    for obj in nodes:
        cache.set_node(obj)
    return cache


def pipeline(cache: Cache, config: SchedulerConfig | None = None, **kwargs: Any) -> Pipeline:
    return Pipeline(config or SchedulerConfig(), handle(cache), rng=random.Random(1), **kwargs)


@pytest.mark.parametrize(
    ("nodes", "percentage", "expected"),
    [
        (50, 0, 50),  # fewer than 100: all
        (100, 0, 100),
        (1_000, 0, 420),  # 50 - 8 = 42 %
        (5_000, 0, 500),  # 50 - 40 = 10 %
        (10_000, 0, 500),  # never under 5 %
        (1_000, 5, 100),  # never under 100 nodes
        (1_000, 30, 300),
        (1_000, 100, 1_000),
    ],
)
def test_how_many_feasible_nodes_to_find(nodes: int, percentage: int, expected: int) -> None:
    assert num_feasible_nodes_to_find(nodes, percentage) == expected


def test_the_best_scoring_node_wins() -> None:
    cache = cluster(node("small", cpu="2"), node("big", cpu="16"))
    result = pipeline(cache).schedule(pod_info(cpu="1"), cache.node_list())
    assert result.node == "big"
    assert (result.evaluated, result.feasible) == (2, 2)


def test_nothing_fits_explains_every_node() -> None:
    cache = cluster(
        node("a", memory="1Gi", labels={"disk": "ssd"}),
        node("b", memory="1Gi", labels={"disk": "ssd"}),
        node("c", memory="1Gi", labels={"disk": "ssd"}),
        node("d", labels={"disk": "hdd"}),
        node("e", labels={"disk": "hdd"}),
    )
    pod = pod_info(memory="2Gi", node_selector={"disk": "ssd"})
    with pytest.raises(FitError) as caught:
        pipeline(cache).schedule(pod, cache.node_list())
    assert str(caught.value) == (
        "0/5 nodes are available: 3 Insufficient memory, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )
    assert caught.value.diagnosis.rejected_by == {"NodeResourcesFit", "NodeAffinity"}


def test_no_nodes() -> None:
    with pytest.raises(FitError, match="no nodes available"):
        pipeline(Cache()).schedule(pod_info(), [])


def test_sampling_stops_early_and_rotates() -> None:
    cache = cluster(*(node(f"n{i:04d}") for i in range(1_000)))
    p = pipeline(cache)
    first = p.schedule(pod_info(name="a"), cache.node_list())
    assert (first.evaluated, first.feasible) == (420, 420)
    second = p.schedule(pod_info(name="b"), cache.node_list())
    assert second.evaluated == 420
    # The second search starts where the first stopped.
    assert p._next_start == 840


def test_sampling_looks_further_when_nodes_fail() -> None:
    objs = [node(f"n{i:04d}", ready=i % 2 == 0) for i in range(1_000)]
    cache = cluster(*objs)
    result = pipeline(cache).schedule(pod_info(), cache.node_list())
    assert result.feasible == 420
    assert result.evaluated >= 840


def test_a_configured_percentage_is_honoured() -> None:
    cache = cluster(*(node(f"n{i:04d}") for i in range(1_000)))
    config = config_from_dict({"percentageOfNodesToScore": 100})
    assert pipeline(cache, config).schedule(pod_info(), cache.node_list()).feasible == 1_000


def test_weights_decide_between_plugins() -> None:
    # "tainted" is emptier (LeastAllocated prefers it) but has a soft taint.
    cache = cluster(
        node("tainted", cpu="64", taints=[{"key": "x", "effect": "PreferNoSchedule"}]),
        node("clean", cpu="2"),
    )
    pod = pod_info(cpu="1")
    heavy_taints = config_from_dict(
        {"plugins": {"score": {"enabled": [{"name": "TaintToleration", "weight": 50}]}}}
    )
    assert pipeline(cache, heavy_taints).schedule(pod, cache.node_list()).node == "clean"
    no_taints = config_from_dict({"plugins": {"score": {"disabled": ["TaintToleration"]}}})
    assert pipeline(cache, no_taints).schedule(pod, cache.node_list()).node == "tainted"


def test_ties_are_broken_at_random() -> None:
    cache = cluster(*(node(f"n{i}") for i in range(4)))
    p = pipeline(cache)
    chosen = {p.schedule(pod_info(name=f"p{i}"), cache.node_list()).node for i in range(40)}
    assert len(chosen) > 1


def test_fits_checks_one_node() -> None:
    cache = cluster(node("a", cpu="1"), node("b", cpu="4"))
    p = pipeline(cache)
    a, b = cache.node("a"), cache.node("b")
    assert a is not None and b is not None
    assert not p.fits(pod_info(cpu="2"), a)
    assert p.fits(pod_info(cpu="2"), b)


def test_may_help_follows_the_rejecting_plugins() -> None:
    p = pipeline(Cache())
    fit = frozenset({"NodeResourcesFit"})
    affinity = frozenset({"NodeAffinity"})
    assert p.may_help(fit, ClusterEvent.POD_DELETED)
    assert not p.may_help(affinity, ClusterEvent.POD_DELETED)
    assert p.may_help(affinity, ClusterEvent.NODE_LABELS_CHANGED)
    assert p.may_help(frozenset(), ClusterEvent.NODE_ADDED)  # there were no nodes at all
    assert p.may_help(fit | affinity, ClusterEvent.NODE_ADDED)


class _Broken:
    name = "Broken"
    events = ClusterEvent.NODE_ADDED

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> _Broken:
        return cls()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return Status.error("the disk is on fire")


class _OutOfRange:
    name = "OutOfRange"

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> _OutOfRange:
        return cls()

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        return [101] * len(nodes)


def test_a_filter_error_is_not_a_rejection() -> None:
    registry = {**REGISTRY, "Broken": _Broken.new}
    config = config_from_dict({"plugins": {"filter": {"enabled": ["Broken"]}}})
    cache = cluster(node("a"))
    with pytest.raises(SchedulingError, match="the disk is on fire"):
        pipeline(cache, config, registry=registry).schedule(pod_info(), cache.node_list())


class _OnlyEven:
    """A filter with the per-node predicate only (no ``select``)."""

    name = "OnlyEven"
    events = ClusterEvent.NODE_ADDED

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> _OnlyEven:
        return cls()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if int(node.name[1:]) % 2 == 0:
            return Status.ok()
        return Status.unschedulable("node(s) were odd")


def test_a_filter_without_select_runs_node_by_node() -> None:
    registry = {**REGISTRY, "OnlyEven": _OnlyEven.new}
    config = config_from_dict(
        {"plugins": {"filter": {"disabled": ["*"], "enabled": ["OnlyEven", "NodeResourcesFit"]}}}
    )
    cache = cluster(*(node(f"n{i}") for i in range(5)))
    p = pipeline(cache, config, registry=registry)
    for i in range(10):
        assert int(p.schedule(pod_info(name=f"p{i}"), cache.node_list()).node[1:]) % 2 == 0
    with pytest.raises(FitError) as caught:
        p.schedule(pod_info(cpu="100"), cache.node_list())
    assert str(caught.value) == ("0/5 nodes are available: 3 Insufficient cpu, 2 node(s) were odd.")


def test_scores_out_of_range_are_an_error() -> None:
    registry = {**REGISTRY, "OutOfRange": _OutOfRange.new}
    config = config_from_dict({"plugins": {"score": {"enabled": [{"name": "OutOfRange"}]}}})
    cache = cluster(node("a"), node("b"))
    with pytest.raises(SchedulingError, match="outside"):
        pipeline(cache, config, registry=registry).schedule(pod_info(), cache.node_list())


def test_unknown_and_misplaced_plugins_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown plugin Nope"):
        pipeline(Cache(), config_from_dict({"plugins": {"filter": {"enabled": ["Nope"]}}}))
    with pytest.raises(ConfigError, match="has no filter"):
        pipeline(
            Cache(),
            config_from_dict({"plugins": {"filter": {"enabled": ["SelectorSpread"]}}}),
        )
    with pytest.raises(ConfigError, match="has no score"):
        pipeline(Cache(), config_from_dict({"plugins": {"score": {"enabled": ["NodePorts"]}}}))
