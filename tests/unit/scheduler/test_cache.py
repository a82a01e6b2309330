"""The cache: assumptions, confirmations, placeholders and indexes."""

from __future__ import annotations

import pytest

from corral.api.labels import LabelSelector, selector_from_dict, selector_from_set
from scheduler.cache import Cache, CacheError
from scheduler.framework import CycleState
from scheduler.plugins.node_ready import NodeReady
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.taint_toleration import TaintToleration
from tests.unit.scheduler.builders import handle, node, pod, pod_info


def test_an_assumed_pod_uses_capacity_until_forgotten() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    assumed = cache.assume(pod_info(cpu="1"), "a")
    assert assumed.node_name == "a"
    a = cache.node("a")
    assert a is not None and a.requested_cpu == 1000
    assert cache.is_assumed("default/p")
    assert cache.forget("default/p") == "a"
    assert a.requested_cpu == 0
    assert cache.forget("default/p") is None


def test_assuming_twice_is_a_bug() -> None:
    cache = Cache()
    cache.assume(pod_info(), "a")
    with pytest.raises(CacheError):
        cache.assume(pod_info(), "a")


def test_the_watch_confirms_an_assumption() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    cache.assume(pod_info(cpu="1"), "a")
    bound = pod(cpu="1", node_name="a")
    assert cache.confirm("default/p", bound)
    assert not cache.is_assumed("default/p")
    assert cache.forget("default/p") is None  # confirmed: no longer forgettable
    a = cache.node("a")
    assert a is not None and a.requested_cpu == 1000


def test_a_pod_bound_elsewhere_replaces_the_assumption() -> None:
    cache = Cache()
    for name in ("a", "b"):
        cache.set_node(node(name))
    cache.assume(pod_info(cpu="1"), "a")
    assert not cache.confirm("default/p", pod(cpu="1", node_name="b"))
    cache.add_pod(pod_info(cpu="1", node_name="b"))
    a, b = cache.node("a"), cache.node("b")
    assert a is not None and b is not None
    assert (a.requested_cpu, b.requested_cpu) == (0, 1000)


def test_pods_may_arrive_before_their_node_and_outlive_it() -> None:
    cache = Cache()
    cache.add_pod(pod_info(cpu="1", node_name="late"))
    assert cache.node_list() == []  # a placeholder is never offered
    info, _ = cache.set_node(node("late"))
    assert info.requested_cpu == 1000 and cache.node_list() == [info]
    cache.remove_node("late")
    assert cache.node_list() == []
    assert cache.node("late") is not None  # kept while its pod remains
    assert cache.remove_pod("default/p") == "late"
    assert cache.node("late") is None


def test_nodes_are_listed_zone_by_zone() -> None:
    cache = Cache()
    for name, zone in (("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c")):
        cache.set_node(node(name, zone=zone))
    assert [n.name for n in cache.node_list()] == ["a1", "b1", "c1", "a2", "a3"]
    cache.set_node(node("a2", zone="c"))  # a zone change reorders
    assert [n.name for n in cache.node_list()] == ["a1", "a2", "b1", "a3", "c1"]


def by_node(cache: Cache, selectors: list[LabelSelector]) -> dict[str, int]:
    return dict(cache.count_matching("default", selectors)[0])


def by_zone(cache: Cache, selectors: list[LabelSelector]) -> dict[str, int]:
    return dict(cache.count_matching("default", selectors)[1])


def test_pods_matching_and_counts() -> None:
    cache = Cache()
    cache.add_pod(pod_info(pod("w1", labels={"app": "web", "v": "1"}, node_name="a")))
    cache.add_pod(pod_info(pod("w2", labels={"app": "web", "v": "2"}, node_name="a")))
    cache.add_pod(pod_info(pod("w3", labels={"app": "web", "v": "2"}, node_name="b")))
    cache.add_pod(pod_info(pod("x", namespace="other", labels={"app": "web"}, node_name="a")))
    web = selector_from_set({"app": "web"})
    v2 = selector_from_set({"v": "2"})
    assert by_node(cache, [web]) == {"a": 2, "b": 1}
    assert by_node(cache, [web, v2]) == {"a": 1, "b": 1}
    expressions = selector_from_dict(
        {"matchExpressions": [{"key": "v", "operator": "In", "values": ["1", "2"]}]}
    )
    assert by_node(cache, [expressions]) == {"a": 2, "b": 1}
    assert sorted(p.name for p in cache.pods_matching("default", [v2])) == ["w2", "w3"]
    assert cache.pods_matching("default", [selector_from_set({"app": "db"})]) == []
    cache.remove_pod("default/w1")
    assert by_node(cache, [web]) == {"a": 1, "b": 1}


def test_the_node_summary_counts_traits_of_existing_nodes() -> None:
    cache = Cache()
    cache.set_node(node("a", ready=False))
    cache.set_node(node("b", unschedulable=True, taints=[{"key": "k", "effect": "NoSchedule"}]))
    cache.set_node(node("c", taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
    summary = cache.summary
    assert (summary.not_ready, summary.unschedulable) == (1, 1)
    assert (summary.hard_tainted, summary.soft_tainted) == (1, 1)
    cache.set_node(node("a"))
    cache.set_node(node("b"))
    cache.remove_node("c")
    assert (summary.not_ready, summary.unschedulable, summary.hard_tainted) == (0, 0, 0)
    assert summary.soft_tainted == 0


def test_filters_skip_themselves_when_no_node_has_their_trait() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    plugins = [
        cls.new({}, handle(cache)) for cls in (NodeReady, NodeUnschedulable, TaintToleration)
    ]
    assert all(p.pre_filter(CycleState(), pod_info()).is_skip for p in plugins)
    cache.set_node(
        node("b", ready=False, unschedulable=True, taints=[{"key": "k", "effect": "NoExecute"}])
    )
    assert not any(p.pre_filter(CycleState(), pod_info()).is_skip for p in plugins)


def test_zone_counts_follow_nodes_and_their_zones() -> None:
    cache = Cache()
    web = selector_from_set({"app": "web"})
    v1 = selector_from_set({"v": "1"})
    cache.add_pod(pod_info(pod("w1", labels={"app": "web", "v": "1"}, node_name="a")))
    assert by_zone(cache, [web]) == {}  # its node is not known yet
    cache.set_node(node("a", zone="z1"))
    cache.set_node(node("b", zone="z2"))
    cache.add_pod(pod_info(pod("w2", labels={"app": "web", "v": "1"}, node_name="b")))
    assert by_zone(cache, [web]) == {":z1": 1, ":z2": 1}
    assert by_zone(cache, [web, v1]) == {":z1": 1, ":z2": 1}  # the general path agrees
    cache.set_node(node("a", zone="z2"))
    assert by_zone(cache, [web]) == {":z2": 2}
    cache.remove_pod("default/w2")
    assert by_zone(cache, [web]) == {":z2": 1}
    assert cache.summary.zones == {":z2": 2}
