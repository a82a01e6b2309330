"""Every built-in filter's batch path (``select``) agrees with its per-node predicate."""

from __future__ import annotations

import random
from typing import Any

import pytest

from scheduler.config import DEFAULT_FILTERS
from scheduler.framework import BatchFilterPlugin, CycleState
from scheduler.nodeinfo import NodeInfo
from scheduler.registry import REGISTRY
from tests.unit.scheduler.builders import handle_with, node, node_info, pod, pod_info

TAINTS = [
    {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
    {"key": "gpu", "value": "", "effect": "NoExecute"},
    {"key": "spot", "value": "yes", "effect": "PreferNoSchedule"},
]


def random_node(rng: random.Random, i: int) -> NodeInfo:
    info = node_info(
        node(
            f"n{i}",
            cpu=rng.choice(["0", "1", "2", "4"]),
            memory=rng.choice(["0", "1Gi", "4Gi"]),
            pods=rng.choice(["0", "2", "110"]),
            labels=rng.choice([{}, {"disk": "ssd"}, {"disk": "hdd", "zone": "a"}]),
            ready=rng.random() > 0.2,
            unschedulable=rng.random() < 0.2,
            taints=rng.sample(TAINTS, rng.randint(0, 2)),
        )
    )
    for j in range(rng.randint(0, 2)):
        info.add_pod(
            pod_info(
                name=f"on-{i}-{j}",
                cpu=rng.choice([None, "500m", "3"]),
                memory=rng.choice([None, "512Mi"]),
                host_ports=rng.choice([[], [80]]),
            )
        )
    return info


AFFINITIES = [
    None,
    # Names no pod, and not this one: no node will do.
    {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "nobody"}}, "topologyKey": "disk"}
            ]
        }
    },
    # The first of its group: any node with the key will do.
    {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}
            ]
        }
    },
]


WEB = {"matchLabels": {"app": "web"}}
SPREADS: list[Any] = [
    None,
    [{"maxSkew": 1, "topologyKey": "disk", "whenUnsatisfiable": "DoNotSchedule",
      "labelSelector": WEB}],
    [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
      "labelSelector": WEB, "minDomains": 2, "nodeTaintsPolicy": "Honor"}],
    [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
      "whenUnsatisfiable": "DoNotSchedule", "labelSelector": WEB,
      "nodeAffinityPolicy": "Ignore"}],
]  # fmt: skip


def random_pod(rng: random.Random) -> Any:
    obj = pod(
        labels={"app": "web"},
        affinity=rng.choice(AFFINITIES),
        cpu=rng.choice([None, "100m", "1", "3"]),
        memory=rng.choice([None, "256Mi", "2Gi"]),
        node_selector=rng.choice([None, {"disk": "ssd"}]),
        tolerations=rng.choice([[], [{"key": "dedicated", "operator": "Exists"}]]),
        host_ports=rng.choice([[], [80], [81]]),
        node_name=rng.choice([None, None, "n3"]),
    )
    spreads = rng.choice(SPREADS)
    if spreads:
        obj["spec"]["topologySpreadConstraints"] = spreads
    return pod_info(obj)


# VolumeBinding skips every pod without claims, which these random pods are;
# tests/unit/scheduler/test_volume_binding.py checks its select against its filter.
@pytest.mark.parametrize("name", [f for f in DEFAULT_FILTERS if f != "VolumeBinding"])
def test_select_matches_filter(name: str) -> None:
    rng = random.Random(name)
    nodes = [random_node(rng, i) for i in range(40)]
    cluster = handle_with(*nodes)
    for info in nodes:  # the pods on them count for spreading and affinity
        for placed in info.pods.values():
            cluster.cache.add_pod(placed.on_node(info.name))
    plugin = REGISTRY[name]({}, cluster)
    assert isinstance(plugin, BatchFilterPlugin)
    checked = 0
    for _ in range(200):
        candidate = random_pod(rng)
        state = CycleState()
        if hasattr(plugin, "pre_filter") and plugin.pre_filter(state, candidate).is_skip:
            continue
        expected = [n for n in nodes if plugin.filter(state, candidate, n).is_success]
        assert plugin.select(state, candidate, nodes) == expected
        checked += 1
    assert checked > 20
