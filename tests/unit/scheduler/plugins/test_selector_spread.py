"""SelectorSpread: replicas picked by the same controllers and services spread out."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.cache import Cache
from scheduler.framework import ConfigError
from scheduler.plugins.selector_spread import SelectorSpread
from scheduler.selectors import SpreadingSelectors
from tests.unit.scheduler.builders import handle, node_info, pod, pod_info, run_score


def rc(name: str, selector: dict[str, str], namespace: str = "default") -> dict[str, Any]:
    return {
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector},
    }


def setup(*placed: tuple[str, str, dict[str, str]]) -> tuple[Cache, SpreadingSelectors]:
    cache = Cache()
    for name in ("a", "b", "c"):
        cache.set_node(node_info(name=name).obj or {})
    for pod_name, node, labels in placed:
        cache.add_pod(pod_info(pod(pod_name, labels=labels, node_name=node)))
    return cache, SpreadingSelectors()


def nodes(cache: Cache) -> list[Any]:
    return sorted(cache.node_list(), key=lambda n: n.name)


def test_nodes_with_fewer_replicas_score_higher() -> None:
    cache, selectors = setup(
        ("w1", "a", {"app": "web"}), ("w2", "a", {"app": "web"}), ("w3", "b", {"app": "web"})
    )
    selectors.set("ReplicationController", rc("web", {"app": "web"}))
    plugin = SelectorSpread.new({}, handle(cache, selectors))
    assert run_score(plugin, pod_info(labels={"app": "web"}), nodes(cache)) == [0, 50, 100]


def test_pods_of_other_controllers_do_not_count() -> None:
    cache, selectors = setup(("d1", "a", {"app": "db"}))
    selectors.set("ReplicationController", rc("web", {"app": "web"}))
    selectors.set("ReplicationController", rc("db", {"app": "db"}))
    plugin = SelectorSpread.new({}, handle(cache, selectors))
    assert run_score(plugin, pod_info(labels={"app": "web"}), nodes(cache)) == [100, 100, 100]


def test_a_pod_nothing_selects_is_not_scored() -> None:
    cache, selectors = setup(("w1", "a", {"app": "web"}))
    plugin = SelectorSpread.new({}, handle(cache, selectors))
    assert run_score(plugin, pod_info(labels={"app": "web"}), nodes(cache)) is None


def test_services_and_replica_sets_count_too() -> None:
    cache, selectors = setup(("w1", "a", {"app": "web", "tier": "front"}))
    selectors.set(
        "Service",
        {
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"selector": {"tier": "front"}},
        },
    )
    plugin = SelectorSpread.new({}, handle(cache, selectors))
    pod = pod_info(labels={"app": "web", "tier": "front"})
    assert run_score(plugin, pod, nodes(cache)) == [0, 100, 100]
    selectors.set(
        "ReplicaSet",
        {
            "kind": "ReplicaSet",
            "metadata": {"name": "rs", "namespace": "default"},
            "spec": {
                "selector": {
                    "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]
                }
            },
        },
    )
    # Both selectors now pick the pod; w1 matches both, so it still counts.
    assert run_score(plugin, pod, nodes(cache)) == [0, 100, 100]


def test_pods_being_deleted_do_not_count() -> None:
    cache, selectors = setup()
    leaving = pod("w1", labels={"app": "web"}, node_name="a")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    cache.add_pod(pod_info(leaving))
    selectors.set("ReplicationController", rc("web", {"app": "web"}))
    plugin = SelectorSpread.new({}, handle(cache, selectors))
    assert run_score(plugin, pod_info(labels={"app": "web"}), nodes(cache)) == [100, 100, 100]


def test_zones_weigh_in() -> None:
    cache = Cache()
    for name, zone in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        cache.set_node(node_info(name=name, zone=zone).obj or {})
    cache.add_pod(pod_info(pod("w1", labels={"app": "web"}, node_name="a1")))
    selectors = SpreadingSelectors()
    selectors.set("ReplicationController", rc("web", {"app": "web"}))
    plugin = SelectorSpread.new({}, handle(cache, selectors))
    scores = dict(
        zip(
            ["a1", "a2", "b1"],
            run_score(plugin, pod_info(labels={"app": "web"}), nodes(cache)) or [],
            strict=True,
        )
    )
    # b1 is best (empty node, empty zone); a2 beats a1 (empty node, same zone).
    assert scores == {"a1": 0, "a2": 33, "b1": 100}


def test_zone_weight_is_configurable() -> None:
    plugin = SelectorSpread.new({"zoneWeight": 0}, handle())
    assert plugin.zone_weight == 0
    with pytest.raises(ConfigError, match="zoneWeight"):
        SelectorSpread.new({"zoneWeight": 2}, handle())
