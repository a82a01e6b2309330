"""Nodes parsed once; their pods' requests kept as running totals."""

from __future__ import annotations

from scheduler.events import ClusterEvent
from scheduler.nodeinfo import NodeInfo, zone_of
from tests.unit.scheduler.builders import node, pod_info


def test_allocatable_is_parsed_into_integers() -> None:
    info = NodeInfo.from_obj(node(cpu="3500m", memory="2Gi", pods="10"))
    assert (info.allocatable_cpu, info.allocatable_memory, info.allocatable_pods) == (
        3500,
        2 * 1024**3,
        10,
    )


def test_capacity_stands_in_for_a_missing_allocatable() -> None:
    obj = node(cpu="2")
    del obj["status"]["allocatable"]
    assert NodeInfo.from_obj(obj).allocatable_cpu == 2000


def test_pod_totals_go_up_and_back_down() -> None:
    info = NodeInfo.from_obj(node())
    a = pod_info(name="a", cpu="1", memory="1Gi", host_ports=[80], extra={"example.com/gpu": "1"})
    info.add_pod(a)
    info.add_pod(pod_info(name="b", cpu="500m"))
    assert (info.requested_cpu, info.requested_memory) == (1500, 1024**3)
    assert info.requested_scalars == {"example.com/gpu": 1}
    assert ("TCP", 80) in info.used_ports
    info.remove_pod("default/a")
    assert (info.requested_cpu, info.requested_memory, info.requested_scalars) == (500, 0, {})
    assert info.used_ports == {}
    assert info.remove_pod("default/a") is None


def test_set_node_reports_what_changed() -> None:
    info = NodeInfo(name="n1")
    assert info.set_node(node()) == ClusterEvent.NODE_ADDED
    assert info.set_node(node()) == ClusterEvent(0)  # a heartbeat changes nothing
    assert info.set_node(node(labels={"x": "y"})) == ClusterEvent.NODE_LABELS_CHANGED
    changed = info.set_node(node(labels={"x": "y"}, cpu="8", unschedulable=True))
    assert changed == ClusterEvent.NODE_ALLOCATABLE_CHANGED | ClusterEvent.NODE_SCHEDULABLE_CHANGED
    changed = info.set_node(
        node(
            labels={"x": "y"},
            cpu="8",
            unschedulable=True,
            ready=False,
            taints=[{"key": "k", "effect": "NoSchedule"}],
        )
    )
    assert changed == ClusterEvent.NODE_CONDITION_CHANGED | ClusterEvent.NODE_TAINTS_CHANGED


def test_taints_are_split_by_effect() -> None:
    info = NodeInfo.from_obj(
        node(
            taints=[
                {"key": "a", "effect": "NoSchedule"},
                {"key": "b", "effect": "NoExecute"},
                {"key": "c", "effect": "PreferNoSchedule"},
            ]
        )
    )
    assert [t.key for t in info.hard_taints] == ["a", "b"]
    assert [t.key for t in info.soft_taints] == ["c"]


def test_zone_combines_region_and_zone() -> None:
    assert zone_of({}) == ""
    assert zone_of({"topology.kubernetes.io/zone": "a"}) == ":a"
    assert (
        zone_of({"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "a"}) == "r:a"
    )
    assert zone_of({"failure-domain.beta.kubernetes.io/zone": "old"}) == ":old"
