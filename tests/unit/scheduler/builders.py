"""Nodes and pods for scheduler tests, as the API would hand them over."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from corral.objects import Obj
from scheduler.cache import Cache
from scheduler.framework import CycleState, Status
from scheduler.handle import ClusterHandle
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.selectors import SpreadingSelectors


def node(
    name: str = "n1",
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: Mapping[str, str] | None = None,
    zone: str | None = None,
    ready: bool = True,
    unschedulable: bool = False,
    taints: Iterable[Obj] = (),
    extra: Mapping[str, str] | None = None,
) -> Obj:
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if zone is not None:
        all_labels["topology.kubernetes.io/zone"] = zone
    resources = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    spec: Obj = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = list(taints)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    name: str = "p",
    *,
    namespace: str = "default",
    cpu: str | None = None,
    memory: str | None = None,
    labels: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    affinity: Obj | None = None,
    tolerations: Iterable[Obj] = (),
    host_ports: Iterable[int] = (),
    priority: int | None = None,
    node_name: str | None = None,
    scheduler_name: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory), *(extra or {}).items()) if v}
    container: Obj = {"name": "c", "image": "busybox:1"}
    if requests:
        container["resources"] = {"requests": requests}
    ports = list(host_ports)
    if ports:
        container["ports"] = [
            {"containerPort": 8000 + i, "hostPort": p} for i, p in enumerate(ports)
        ]
    spec: Obj = {"containers": [container]}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if affinity:
        spec["affinity"] = affinity
    if tolerations:
        spec["tolerations"] = list(tolerations)
    if priority is not None:
        spec["priority"] = priority
    if node_name:
        spec["nodeName"] = node_name
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": dict(labels or {"app": "web"}),
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def pod_info(obj: Obj | None = None, **kwargs: Any) -> PodInfo:
    return PodInfo.from_obj(obj if obj is not None else pod(**kwargs))


def node_info(obj: Obj | None = None, **kwargs: Any) -> NodeInfo:
    return NodeInfo.from_obj(obj if obj is not None else node(**kwargs))


def handle(
    cache: Cache | None = None, selectors: SpreadingSelectors | None = None
) -> ClusterHandle:
    return ClusterHandle(
        cache if cache is not None else Cache(),
        selectors if selectors is not None else SpreadingSelectors(),
    )


def handle_with(*nodes: NodeInfo) -> ClusterHandle:
    """A handle whose cache holds ``nodes``: filters that skip themselves
    when no node in the cluster has their trait do see these."""
    cache = Cache()
    for info in nodes:
        assert info.obj is not None
        cache.set_node(info.obj)
    return handle(cache)


def run_filter(plugin: Any, pod: PodInfo, node: NodeInfo) -> Status:
    """PreFilter then Filter, as the framework would; a skip means the filter passes."""
    state = CycleState()
    if hasattr(plugin, "pre_filter"):
        status = plugin.pre_filter(state, pod)
        if status.is_skip:
            return Status.ok()
        if not status.is_success:
            return status  # type: ignore[no-any-return]
    result = plugin.filter(state, pod, node)
    if hasattr(plugin, "select"):
        # The batch path must say the same as the per-node predicate.
        assert (plugin.select(state, pod, [node]) == [node]) == result.is_success
    return result  # type: ignore[no-any-return]


def run_score(plugin: Any, pod: PodInfo, nodes: list[NodeInfo]) -> list[int] | None:
    """PreScore then Score; None when the plugin skips this pod."""
    state = CycleState()
    if hasattr(plugin, "pre_score"):
        status = plugin.pre_score(state, pod, nodes)
        if status.is_skip:
            return None
        assert status.is_success, status
    scores: list[int] = plugin.score(state, pod, nodes)
    assert len(scores) == len(nodes)
    assert all(0 <= s <= 100 for s in scores), scores
    return scores
