"""The scheduler's own view of nodes and the pods on them, fed by watches.

A pod is *assumed* onto its node the moment it is chosen, so the next pod
already sees that capacity as used; the bind runs meanwhile. The watch then
confirms the assumption (the pod arrives bound to that node), or a failed
bind forgets it. Pods are indexed by namespace and by label, and counted
per label on each node and in each zone, so that spreading a controller's
replicas reads a few numbers rather than its pods.

Everything here is synchronous and runs on the event loop's one thread: a
scheduling cycle reads the cache without any await, so it needs no snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.api.labels import LabelSelector, Operator
from corral.objects import Obj, meta
from scheduler.events import ClusterEvent
from scheduler.framework import NodeSummary
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo

_EQUALITY = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)


class CacheError(Exception):
    """A cache operation that contradicts what the cache holds (a scheduler bug)."""


@dataclass(slots=True)
class _PodState:
    pod: PodInfo
    assumed: bool


class Cache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, _PodState] = {}
        self._by_namespace: dict[str, dict[str, PodInfo]] = {}
        # Pods with required anti-affinity: every placement checks them.
        self._anti_affine: dict[str, PodInfo] = {}
        self._by_label: dict[tuple[str, str, str], dict[str, PodInfo]] = {}
        # (namespace, label, value) -> node -> pods there with that label,
        # not counting pods being deleted: spreading's usual question, answered
        # without touching a pod.
        self._label_counts: dict[tuple[str, str, str], dict[str, int]] = {}
        # The same per zone, so that spreading over zones reads no node.
        self._label_zone_counts: dict[tuple[str, str, str], dict[str, int]] = {}
        self._node_list: list[NodeInfo] | None = None
        self.summary = NodeSummary()

    # --- nodes ----------------------------------------------------------------------------

    def set_node(self, obj: Obj) -> tuple[NodeInfo, ClusterEvent]:
        """Add or update a Node; returns its info and what changed for scheduling."""
        name = meta(obj).get("name") or ""
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name=name)
        was_listed = info.exists
        zone = info.zone
        if was_listed:
            self._summarise(info, -1)
        changed = info.set_node(obj)
        self._summarise(info, 1)
        if info.zone != zone:
            self._move_zone_counts(info, zone)
        if not was_listed or info.zone != zone:
            self._node_list = None
        return info, changed

    def remove_node(self, name: str) -> None:
        info = self._nodes.get(name)
        if info is None:
            return
        if info.exists:
            self._summarise(info, -1)
        info.clear_node()
        if not info.pods:
            del self._nodes[name]
        self._node_list = None

    def _move_zone_counts(self, info: NodeInfo, old_zone: str) -> None:
        for pod in info.pods.values():
            if pod.terminating:
                continue
            for label, value in pod.labels.items():
                key = (pod.namespace, label, value)
                if old_zone:
                    _decrement(self._label_zone_counts, key, old_zone)
                if info.zone:
                    zones = self._label_zone_counts.setdefault(key, {})
                    zones[info.zone] = zones.get(info.zone, 0) + 1

    def _summarise(self, info: NodeInfo, sign: int) -> None:
        summary = self.summary
        zones = summary.zones
        left = zones.get(info.zone, 0) + sign
        if left > 0:
            zones[info.zone] = left
        else:
            zones.pop(info.zone, None)
        summary.not_ready += sign * (not info.ready)
        summary.unschedulable += sign * info.unschedulable
        summary.hard_tainted += sign * bool(info.hard_taints)
        summary.soft_tainted += sign * bool(info.soft_taints)

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def node_list(self) -> list[NodeInfo]:
        """The nodes that exist, interleaved zone by zone.

        Sampling takes a run of consecutive nodes from this list, so
        interleaving makes every sample span the zones, as Kubernetes'
        node tree does.
        """
        if self._node_list is None:
            by_zone: dict[str, list[NodeInfo]] = {}
            for info in self._nodes.values():
                if info.exists:
                    by_zone.setdefault(info.zone, []).append(info)
            zones = list(by_zone.values())
            interleaved: list[NodeInfo] = []
            for i in range(max((len(z) for z in zones), default=0)):
                interleaved.extend(z[i] for z in zones if i < len(z))
            self._node_list = interleaved
        return self._node_list

    # --- pods -----------------------------------------------------------------------------

    def assume(self, pod: PodInfo, node_name: str) -> PodInfo:
        """Count ``pod`` on ``node_name`` before the API has confirmed the bind."""
        if pod.key in self._pods:
            raise CacheError(f"pod {pod.key} is already in the cache")
        assumed = pod.on_node(node_name)
        self._insert(assumed, assumed=True)
        return assumed

    def forget(self, key: str) -> str | None:
        """Undo an assumption (its bind failed); the node it freed, if it was assumed."""
        state = self._pods.get(key)
        if state is None or not state.assumed:
            return None
        self._remove(state.pod)
        return state.pod.node_name

    def is_assumed(self, key: str) -> bool:
        state = self._pods.get(key)
        return state is not None and state.assumed

    def add_pod(self, pod: PodInfo) -> None:
        """An assigned pod as the API has it: confirms an assumption, or adds or updates it."""
        state = self._pods.get(pod.key)
        if state is not None:
            self._remove(state.pod)
        self._insert(pod, assumed=False)

    def confirm(self, key: str, obj: Obj) -> bool:
        """The watch shows an assumed pod bound where it was assumed: keep its accounting.

        False when that is not the case (not assumed, another node, new
        labels); the caller then adds the pod afresh.
        """
        state = self._pods.get(key)
        if state is None or not state.assumed:
            return False
        spec = obj.get("spec") or {}
        metadata = meta(obj)
        pod = state.pod
        if (
            spec.get("nodeName") != pod.node_name
            or (metadata.get("labels") or {}) != pod.labels
            or bool(metadata.get("deletionTimestamp")) != pod.terminating
        ):
            return False
        state.assumed = False
        pod.obj = obj
        return True

    def remove_pod(self, key: str) -> str | None:
        """Drop a pod that is gone or finished; the node it freed."""
        state = self._pods.get(key)
        if state is None:
            return None
        self._remove(state.pod)
        return state.pod.node_name

    def pod(self, key: str) -> PodInfo | None:
        state = self._pods.get(key)
        return state.pod if state is not None else None

    def __len__(self) -> int:
        return len(self._pods)

    def namespaces(self) -> list[str]:
        """The namespaces that have assigned or assumed pods."""
        return [namespace for namespace, pods in self._by_namespace.items() if pods]

    def pods_with_required_anti_affinity(self) -> list[PodInfo]:
        """Assigned and assumed pods that keep others out of their domain."""
        return list(self._anti_affine.values())

    def pods_matching(self, namespace: str, selectors: Sequence[LabelSelector]) -> list[PodInfo]:
        """Pods of ``namespace`` (assigned or assumed) that every one of ``selectors`` matches."""
        candidates: dict[str, PodInfo] | None = None
        for selector in selectors:
            for key, value in selector.exact_matches().items():
                bucket = self._by_label.get((namespace, key, value))
                if bucket is None:
                    return []
                if candidates is None or len(bucket) < len(candidates):
                    candidates = bucket
        if candidates is None:
            candidates = self._by_namespace.get(namespace, {})
        return [
            pod
            for pod in candidates.values()
            if all(selector.matches(pod.labels) for selector in selectors)
        ]

    def count_matching(
        self, namespace: str, selectors: Sequence[LabelSelector]
    ) -> tuple[Mapping[str, int], Mapping[str, int]]:
        """Per node and per zone, the pods every selector matches, those being deleted left out.

        The results may be the cache's own indexes: read them, never change them.
        """
        if len(selectors) == 1:
            exact = _single_label(selectors[0])
            if exact is not None:
                key = (namespace, *exact)
                return self._label_counts.get(key, {}), self._label_zone_counts.get(key, {})
        by_node: dict[str, int] = {}
        by_zone: dict[str, int] = {}
        for pod in self.pods_matching(namespace, selectors):
            if pod.terminating:
                continue
            by_node[pod.node_name] = by_node.get(pod.node_name, 0) + 1
            info = self._nodes.get(pod.node_name)
            if info is not None and info.zone:
                by_zone[info.zone] = by_zone.get(info.zone, 0) + 1
        return by_node, by_zone

    def _insert(self, pod: PodInfo, *, assumed: bool) -> None:
        self._pods[pod.key] = _PodState(pod, assumed)
        info = self._nodes.get(pod.node_name)
        if info is None:
            # Pods can arrive before their node (or outlive it): keep their
            # usage under a placeholder that is not offered for scheduling.
            info = self._nodes[pod.node_name] = NodeInfo(name=pod.node_name)
        info.add_pod(pod)
        self._by_namespace.setdefault(pod.namespace, {})[pod.key] = pod
        if pod.affinity is not None and pod.affinity.required_anti_affinity:
            self._anti_affine[pod.key] = pod
        zone = info.zone
        for label, value in pod.labels.items():
            key = (pod.namespace, label, value)
            self._by_label.setdefault(key, {})[pod.key] = pod
            if not pod.terminating:
                counts = self._label_counts.setdefault(key, {})
                counts[pod.node_name] = counts.get(pod.node_name, 0) + 1
                if zone:
                    zones = self._label_zone_counts.setdefault(key, {})
                    zones[zone] = zones.get(zone, 0) + 1

    def _remove(self, pod: PodInfo) -> None:
        del self._pods[pod.key]
        info = self._nodes.get(pod.node_name)
        zone = ""
        if info is not None:
            zone = info.zone
            info.remove_pod(pod.key)
            if not info.exists and not info.pods:
                del self._nodes[pod.node_name]
        _discard(self._by_namespace, pod.namespace, pod.key)
        self._anti_affine.pop(pod.key, None)
        for label, value in pod.labels.items():
            key = (pod.namespace, label, value)
            _discard(self._by_label, key, pod.key)
            if not pod.terminating:
                _decrement(self._label_counts, key, pod.node_name)
                if zone:
                    _decrement(self._label_zone_counts, key, zone)


def _single_label(selector: LabelSelector) -> tuple[str, str] | None:
    """``(label, value)`` when the selector is exactly ``label=value``."""
    if selector.match_nothing or len(selector.requirements) != 1:
        return None
    requirement = selector.requirements[0]
    if requirement.operator in _EQUALITY and len(requirement.values) == 1:
        return requirement.key, requirement.values[0]
    return None


def _decrement(index: dict[Any, dict[str, int]], bucket_key: object, where: str) -> None:
    bucket = index.get(bucket_key)
    if bucket is None:
        return
    left = bucket.get(where, 0) - 1
    if left > 0:
        bucket[where] = left
    else:
        bucket.pop(where, None)
        if not bucket:
            del index[bucket_key]


def _discard(index: dict[Any, dict[str, PodInfo]], bucket_key: object, key: str) -> None:
    bucket = index.get(bucket_key)
    if bucket is not None:
        bucket.pop(key, None)
        if not bucket:
            del index[bucket_key]
