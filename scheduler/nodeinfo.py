"""A node as the scheduler needs it: what it offers, and what its pods already use.

The node's own fields are parsed when the Node object changes; the totals
of its pods' requests move as pods are added, assumed and removed, so a
filter compares a handful of integers and never walks the node's pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.api.quantity import QuantityError
from corral.objects import Obj, meta
from scheduler.events import ClusterEvent
from scheduler.podinfo import WILDCARD_IP, HostPort, PodInfo, Taint, quantity

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
_LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
_LEGACY_REGION_LABEL = "failure-domain.beta.kubernetes.io/region"
HARD_EFFECTS = ("NoSchedule", "NoExecute")


def zone_of(labels: Mapping[str, str]) -> str:
    """The node's failure domain: region and zone together, "" when it has neither."""
    zone = labels.get(ZONE_LABEL) or labels.get(_LEGACY_ZONE_LABEL) or ""
    region = labels.get(REGION_LABEL) or labels.get(_LEGACY_REGION_LABEL) or ""
    if not zone and not region:
        return ""
    return f"{region}:{zone}"


@dataclass(slots=True, eq=False)
class NodeInfo:
    name: str
    obj: Obj | None = field(default=None, repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    zone: str = ""
    ready: bool = False
    unschedulable: bool = False
    taints: tuple[Taint, ...] = ()
    # The taints that keep pods off (NoSchedule, NoExecute) and the ones that
    # only discourage them (PreferNoSchedule), split once for the plugins.
    hard_taints: tuple[Taint, ...] = ()
    soft_taints: tuple[Taint, ...] = ()
    allocatable_cpu: int = 0
    allocatable_memory: int = 0
    allocatable_pods: int = 0
    allocatable_scalars: dict[str, int] = field(default_factory=dict)
    requested_cpu: int = 0
    requested_memory: int = 0
    requested_scalars: dict[str, int] = field(default_factory=dict)
    nonzero_cpu: int = 0
    nonzero_memory: int = 0
    # Allocatable minus requested, kept current: what the fit filter reads.
    free_cpu: int = 0
    free_memory: int = 0
    free_pods: int = 0
    pods: dict[str, PodInfo] = field(default_factory=dict)
    # (protocol, port) -> {host IP: how many pods use it}
    used_ports: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    _signature: tuple[object, ...] = field(default=(), repr=False)

    @classmethod
    def from_obj(cls, obj: Obj) -> NodeInfo:
        info = cls(name=meta(obj).get("name") or "")
        info.set_node(obj)
        return info

    @property
    def exists(self) -> bool:
        """False for a node the scheduler knows only from pods bound to it."""
        return self.obj is not None

    # --- the Node object ------------------------------------------------------------------

    def set_node(self, obj: Obj) -> ClusterEvent:
        """Take a new version of the Node; returns what changed that scheduling cares about."""
        metadata = meta(obj)
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        labels = metadata.get("labels") or {}
        ready = _is_ready(status)
        resources = status.get("allocatable") or status.get("capacity") or {}
        taints = spec.get("taints") or []
        unschedulable = bool(spec.get("unschedulable"))
        signature = (labels, ready, resources, taints, unschedulable)
        first = self.obj is None
        self.obj = obj
        if signature == self._signature:
            return ClusterEvent(0)
        changed = ClusterEvent(0)
        if first:
            changed = ClusterEvent.NODE_ADDED
        else:
            old_labels, old_ready, old_resources, old_taints, old_unschedulable = self._signature
            if old_labels != labels:
                changed |= ClusterEvent.NODE_LABELS_CHANGED
            if old_ready != ready:
                changed |= ClusterEvent.NODE_CONDITION_CHANGED
            if old_resources != resources:
                changed |= ClusterEvent.NODE_ALLOCATABLE_CHANGED
            if old_taints != taints:
                changed |= ClusterEvent.NODE_TAINTS_CHANGED
            if old_unschedulable != unschedulable:
                changed |= ClusterEvent.NODE_SCHEDULABLE_CHANGED
        self._signature = signature
        self.labels = dict(labels)
        self.zone = zone_of(self.labels)
        self.ready = ready
        self.unschedulable = unschedulable
        self.taints = tuple(
            Taint(t.get("key") or "", t.get("value") or "", t.get("effect") or "") for t in taints
        )
        self.hard_taints = tuple(t for t in self.taints if t.effect in HARD_EFFECTS)
        self.soft_taints = tuple(t for t in self.taints if t.effect == "PreferNoSchedule")
        self._set_allocatable(resources)
        return changed

    def clear_node(self) -> None:
        """The Node is gone; its pods (still being deleted) keep their accounting."""
        self.obj = None
        self._signature = ()

    def _set_allocatable(self, resources: Mapping[str, Any]) -> None:
        scalars: dict[str, int] = {}
        cpu = memory = pods = 0
        for name, value in resources.items():
            try:
                amount = quantity(name, value)
            except (QuantityError, TypeError, ValueError):
                # A node that reports garbage offers nothing of that resource.
                amount = 0
            if name == "cpu":
                cpu = amount
            elif name == "memory":
                memory = amount
            elif name == "pods":
                pods = amount
            else:
                scalars[name] = amount
        self.allocatable_cpu = cpu
        self.allocatable_memory = memory
        self.allocatable_pods = pods
        self.allocatable_scalars = scalars
        self._update_free()

    def _update_free(self) -> None:
        self.free_cpu = self.allocatable_cpu - self.requested_cpu
        self.free_memory = self.allocatable_memory - self.requested_memory
        self.free_pods = self.allocatable_pods - len(self.pods)

    # --- its pods --------------------------------------------------------------------------

    def add_pod(self, pod: PodInfo) -> None:
        self.pods[pod.key] = pod
        self.requested_cpu += pod.cpu
        self.requested_memory += pod.memory
        self.nonzero_cpu += pod.nonzero_cpu
        self.nonzero_memory += pod.nonzero_memory
        for name, amount in pod.scalars.items():
            self.requested_scalars[name] = self.requested_scalars.get(name, 0) + amount
        for ip, protocol, port in pod.host_ports:
            ips = self.used_ports.setdefault((protocol, port), {})
            ips[ip] = ips.get(ip, 0) + 1
        self._update_free()

    def remove_pod(self, key: str) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is None:
            return None
        self.requested_cpu -= pod.cpu
        self.requested_memory -= pod.memory
        self.nonzero_cpu -= pod.nonzero_cpu
        self.nonzero_memory -= pod.nonzero_memory
        for name, amount in pod.scalars.items():
            left = self.requested_scalars.get(name, 0) - amount
            if left:
                self.requested_scalars[name] = left
            else:
                self.requested_scalars.pop(name, None)
        for ip, protocol, port in pod.host_ports:
            ips = self.used_ports.get((protocol, port))
            if ips is None:
                continue
            count = ips.get(ip, 0) - 1
            if count > 0:
                ips[ip] = count
            else:
                ips.pop(ip, None)
                if not ips:
                    del self.used_ports[(protocol, port)]
        self._update_free()
        return pod

    def port_conflict(self, ports: tuple[HostPort, ...]) -> bool:
        """Whether any of ``ports`` is taken here; 0.0.0.0 clashes with every address."""
        used_ports = self.used_ports
        for ip, protocol, port in ports:
            ips = used_ports.get((protocol, port))
            if ips and (ip == WILDCARD_IP or WILDCARD_IP in ips or ip in ips):
                return True
        return False


def _is_ready(status: Mapping[str, Any]) -> bool:
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False
