"""InterPodAffinity: required terms filter (anti-affinity both ways), preferred ones score."""

from __future__ import annotations

from typing import Any

from scheduler.cache import Cache
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins.inter_pod_affinity import (
    AFFINITY_REASON,
    ANTI_AFFINITY_REASON,
    EXISTING_ANTI_AFFINITY_REASON,
    InterPodAffinity,
)
from scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import handle, node, pod, pod_info, run_filter, run_score

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def term(labels: dict[str, str], key: str = HOST, **extra: Any) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def required(kind: str, *terms: dict[str, Any]) -> dict[str, Any]:
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def preferred(kind: str, *weighted: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    return {
        kind: {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": w, "podAffinityTerm": t} for w, t in weighted
            ]
        }
    }


class Cluster:
    """Three nodes in two zones: a and b in zone one, c in zone two."""

    def __init__(self) -> None:
        self.cache = Cache()
        for name, zone in (("a", "one"), ("b", "one"), ("c", "two")):
            self.cache.set_node(node(name, labels={HOST: name, ZONE: zone}))
        self.plugin = InterPodAffinity(handle(self.cache))

    def place(self, on: str, **kwargs: Any) -> None:
        self.cache.add_pod(pod_info(pod(node_name=on, **kwargs)))

    def nodes(self) -> list[NodeInfo]:
        found = [self.cache.node(name) for name in "abc"]
        return [n for n in found if n is not None]

    def fits(self, candidate: PodInfo) -> dict[str, str]:
        """Node name to "" when it fits, else the reason."""
        results = {}
        for info in self.nodes():
            status = run_filter(self.plugin, candidate, info)
            results[info.name] = "" if status.is_success else status.message
        return results


def with_a_loner_on_b() -> Cluster:
    """A pod on b that keeps pods labelled app=noisy off its host."""
    cluster = Cluster()
    cluster.place(
        "b",
        name="loner",
        labels={"app": "loner"},
        affinity=required("podAntiAffinity", term({"app": "noisy"})),
    )
    return cluster


def test_a_pod_without_terms_in_a_cluster_without_them_costs_nothing() -> None:
    cluster = Cluster()
    cluster.place("a", name="web-1", labels={"app": "web"})
    assert cluster.fits(pod_info(name="x")) == {"a": "", "b": "", "c": ""}


def test_required_anti_affinity_keeps_replicas_on_different_hosts() -> None:
    cluster = Cluster()
    cluster.place("a", name="db-1", labels={"app": "db"})
    candidate = pod_info(
        name="db-2",
        labels={"app": "db"},
        affinity=required("podAntiAffinity", term({"app": "db"})),
    )
    assert cluster.fits(candidate) == {"a": ANTI_AFFINITY_REASON, "b": "", "c": ""}


def test_required_anti_affinity_by_zone_refuses_the_whole_zone() -> None:
    cluster = Cluster()
    cluster.place("a", name="db-1", labels={"app": "db"})
    candidate = pod_info(
        name="db-2",
        labels={"app": "db"},
        affinity=required("podAntiAffinity", term({"app": "db"}, ZONE)),
    )
    refused = ANTI_AFFINITY_REASON
    assert cluster.fits(candidate) == {"a": refused, "b": refused, "c": ""}


def test_an_existing_pods_anti_affinity_is_symmetric() -> None:
    cluster = with_a_loner_on_b()
    noisy = pod_info(name="noisy", labels={"app": "noisy"})
    quiet = pod_info(name="quiet", labels={"app": "quiet"})
    assert cluster.fits(noisy) == {"a": "", "b": EXISTING_ANTI_AFFINITY_REASON, "c": ""}
    assert cluster.fits(quiet) == {"a": "", "b": "", "c": ""}


def test_required_affinity_follows_the_pods_it_names() -> None:
    cluster = Cluster()
    cluster.place("c", name="cache", labels={"app": "cache"})
    by_host = pod_info(name="web", affinity=required("podAffinity", term({"app": "cache"})))
    assert cluster.fits(by_host) == {"a": AFFINITY_REASON, "b": AFFINITY_REASON, "c": ""}
    cluster.place("a", name="cache-2", labels={"app": "cache"})
    by_zone = pod_info(name="web", affinity=required("podAffinity", term({"app": "cache"}, ZONE)))
    assert cluster.fits(by_zone) == {"a": "", "b": "", "c": ""}


def test_required_affinity_to_nothing_fits_nowhere_unless_it_is_the_first_of_its_group() -> None:
    cluster = Cluster()
    lonely = pod_info(name="web", affinity=required("podAffinity", term({"app": "cache"})))
    assert set(cluster.fits(lonely).values()) == {AFFINITY_REASON}
    first = pod_info(
        name="web-1",
        labels={"app": "web"},
        affinity=required("podAffinity", term({"app": "web"}, ZONE)),
    )
    assert cluster.fits(first) == {"a": "", "b": "", "c": ""}


def test_terms_look_in_the_pods_own_namespace_unless_told_otherwise() -> None:
    cluster = Cluster()
    cluster.place("a", name="db-1", namespace="other", labels={"app": "db"})
    own = pod_info(name="db-2", affinity=required("podAntiAffinity", term({"app": "db"})))
    assert cluster.fits(own) == {"a": "", "b": "", "c": ""}
    listed = pod_info(
        name="db-2",
        affinity=required("podAntiAffinity", term({"app": "db"}, namespaces=["other"])),
    )
    assert cluster.fits(listed)["a"] == ANTI_AFFINITY_REASON
    everywhere = pod_info(
        name="db-2",
        affinity=required("podAntiAffinity", term({"app": "db"}, namespaceSelector={})),
    )
    assert cluster.fits(everywhere)["a"] == ANTI_AFFINITY_REASON


def test_preferred_anti_affinity_scores_the_hosts_without_the_group_highest() -> None:
    cluster = Cluster()
    cluster.place("a", name="mariadb-primary", labels={"app": "mariadb"})
    replica = pod_info(
        name="mariadb-replica",
        labels={"app": "mariadb"},
        affinity=preferred("podAntiAffinity", (100, term({"app": "mariadb"}))),
    )
    assert run_score(cluster.plugin, replica, cluster.nodes()) == [0, 100, 100]


def test_preferred_affinity_and_anti_affinity_weigh_against_each_other() -> None:
    cluster = Cluster()
    cluster.place("a", name="cache", labels={"app": "cache"})
    cluster.place("b", name="batch", labels={"app": "batch"})
    cluster.place("b", name="batch-2", labels={"app": "batch"})
    web = pod_info(
        name="web",
        affinity={
            **preferred("podAffinity", (50, term({"app": "cache"}, ZONE))),
            **preferred("podAntiAffinity", (10, term({"app": "batch"}))),
        },
    )
    # a: +50; b: +50 (same zone as the cache) - 2 * 10; c: 0.
    assert run_score(cluster.plugin, web, cluster.nodes()) == [100, 60, 0]


def test_removing_the_pod_lifts_its_anti_affinity() -> None:
    cluster = with_a_loner_on_b()
    noisy = pod_info(name="noisy", labels={"app": "noisy"})
    assert cluster.fits(noisy)["b"] == EXISTING_ANTI_AFFINITY_REASON
    cluster.cache.remove_pod("default/loner")
    assert cluster.fits(noisy)["b"] == ""
