"""PodTopologySpread: the pod's constraints filter and score, and the system defaults score."""

from __future__ import annotations

import random
from typing import Any

from scheduler.cache import Cache
from scheduler.framework import Code
from scheduler.plugins.pod_topology_spread import (
    MISSING_LABEL_REASON,
    SKEW_REASON,
    PodTopologySpread,
)
from scheduler.selectors import SpreadingSelectors
from tests.unit.scheduler.builders import handle, node, pod, pod_info, run_filter, run_score

WEB = {"matchLabels": {"app": "web"}}
SERVICE = {
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"selector": {"app": "web"}},
}


def cluster(
    nodes: dict[str, str | None], placed: dict[str, str], labels: dict[str, str] | None = None
) -> Cache:
    """Nodes by name with their zone (None: no zone label); pods by name with their node."""
    cache = Cache()
    for name, zone in nodes.items():
        cache.set_node(node(name, zone=zone))
    for name, where in placed.items():
        cache.add_pod(pod_info(pod(name, labels=labels or {"app": "web"}, node_name=where)))
    return cache


def spread(*constraints: dict[str, Any]) -> Any:
    obj = pod("new", labels={"app": "web"})
    obj["spec"]["topologySpreadConstraints"] = list(constraints)
    return pod_info(obj)


def hard(key: str, max_skew: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "maxSkew": max_skew,
        "topologyKey": key,
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": WEB,
        **extra,
    }


ZONE = "topology.kubernetes.io/zone"


def test_do_not_schedule_keeps_the_skew_within_max_skew() -> None:
    cache = cluster({"a": "z1", "b": "z1", "c": "z2", "d": None}, {"w1": "a", "w2": "b"})
    plugin = PodTopologySpread.new({}, handle(cache))
    new = spread(hard(ZONE))
    results = {name: run_filter(plugin, new, cache.node(name)) for name in "abcd"}  # type: ignore[arg-type]
    assert results["a"].code is Code.UNSCHEDULABLE and results["a"].reasons == (SKEW_REASON,)
    assert results["b"].code is Code.UNSCHEDULABLE
    assert results["c"].is_success
    assert results["d"].code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert results["d"].reasons == (MISSING_LABEL_REASON,)
    # Pods the selector does not pick do not count.
    others = cluster({"a": "z1", "c": "z2"}, {"x1": "a", "x2": "a"}, labels={"app": "db"})
    plugin = PodTopologySpread.new({}, handle(others))
    assert run_filter(plugin, new, others.node("a")).is_success  # type: ignore[arg-type]


def test_min_domains_counts_missing_domains_as_empty() -> None:
    cache = cluster({"a": "z1", "b": "z1"}, {"w1": "a"})
    plugin = PodTopologySpread.new({}, handle(cache))
    node_b = cache.node("b")
    assert node_b is not None
    # One domain, holding one pod: its own minimum, so one more is a skew of 1.
    assert run_filter(plugin, spread(hard(ZONE)), node_b).is_success
    # Two domains wanted, one exists: the missing one counts 0, the skew would be 2.
    assert not run_filter(plugin, spread(hard(ZONE, minDomains=2)), node_b).is_success


def test_node_affinity_policy_decides_which_nodes_domains_count() -> None:
    cache = cluster({"a": "z1", "c": "z2"}, {"w1": "a"})
    cache.set_node(node("e", zone="z3", labels={"pool": "other"}))
    plugin = PodTopologySpread.new({}, handle(cache))
    node_a = cache.node("a")
    assert node_a is not None
    honoured = spread(hard(ZONE))
    honoured.obj["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    # No node carries the selector's label: no domain counts, nothing to exceed.
    assert run_filter(plugin, pod_info(honoured.obj), node_a).is_success
    ignored = spread(hard(ZONE, nodeAffinityPolicy="Ignore"))
    ignored.obj["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    assert not run_filter(plugin, pod_info(ignored.obj), node_a).is_success


def by_name(cache: Cache) -> list[Any]:
    return sorted(cache.node_list(), key=lambda n: n.name)


def test_the_system_defaults_score_replicas_apart_by_hostname() -> None:
    cache = cluster({"a": None, "b": None, "c": None}, {"w1": "a", "w2": "a", "w3": "b"})
    selectors = SpreadingSelectors()
    selectors.set("Service", SERVICE)
    plugin = PodTopologySpread.new({}, handle(cache, selectors))
    # Kubernetes' numbers: count * log(3 nodes + 2) + (maxSkew - 1), rounded:
    # 5, 4, 2; then 100 * (max + min - s) / max.
    assert run_score(plugin, pod_info(labels={"app": "web"}), by_name(cache)) == [40, 60, 100]
    # A pod nothing selects is not spread.
    assert run_score(plugin, pod_info(labels={"app": "lonely"}), by_name(cache)) is None


def test_the_defaults_weigh_zones_too() -> None:
    cache = cluster({"a": "z1", "b": "z1", "c": "z2"}, {"w1": "a"})
    selectors = SpreadingSelectors()
    selectors.set("Service", SERVICE)
    plugin = PodTopologySpread.new({}, handle(cache, selectors))
    scores = run_score(plugin, pod_info(labels={"app": "web"}), by_name(cache))
    assert scores is not None
    # b shares a's zone: better than a, worse than c, alone in its zone.
    assert scores[0] < scores[1] < scores[2] == 100


def test_schedule_anyway_constraints_ignore_nodes_without_the_key() -> None:
    cache = cluster({"a": "z1", "b": "z2", "c": None}, {"w1": "a"})
    plugin = PodTopologySpread.new({}, handle(cache))
    soft = spread({**hard(ZONE), "whenUnsatisfiable": "ScheduleAnyway"})
    assert run_score(plugin, soft, by_name(cache)) == [0, 100, 0]


def test_zone_counts_from_the_per_node_index_agree_with_a_walk_over_every_node() -> None:
    """The defaults' zone counts take a shortcut when every node is eligible
    (no nodeSelector or affinity, no hard taints): the same scores as the
    walk over every node that a nodeSelector matching all nodes forces."""
    rng = random.Random(7)
    for _ in range(40):
        cache = Cache()
        names = [f"n{i}" for i in range(rng.randint(2, 30))]
        for name in names:
            zone = rng.choice(["z1", "z2", "z3", None])
            cache.set_node(node(name, zone=zone, labels={"pool": "all"}))
        for i in range(rng.randint(0, 60)):
            app = rng.choice(["web", "web", "db"])
            cache.add_pod(pod_info(pod(f"p{i}", labels={"app": app}, node_name=rng.choice(names))))
        selectors = SpreadingSelectors()
        selectors.set("Service", SERVICE)
        plugin = PodTopologySpread.new({}, handle(cache, selectors))
        shortcut = pod_info(labels={"app": "web"})
        walked = pod("new", labels={"app": "web"}, node_selector={"pool": "all"})
        nodes = by_name(cache)
        assert run_score(plugin, shortcut, nodes) == run_score(plugin, pod_info(walked), nodes)
