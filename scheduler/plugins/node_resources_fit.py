"""NodeResourcesFit: the pod's requests fit in what the node has left.

CPU, memory, the pod count and any other resource the pod requests
(ephemeral storage, extended resources) are compared against the node's
allocatable minus the requests of the pods already there or assumed there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.events import ClusterEvent
from scheduler.framework import ConfigError, CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import only_keys
from scheduler.podinfo import PodInfo

TOO_MANY_PODS = "Too many pods"


def insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


class NodeResourcesFit:
    name = "NodeResourcesFit"
    events = (
        ClusterEvent.NODE_ADDED | ClusterEvent.NODE_ALLOCATABLE_CHANGED | ClusterEvent.POD_DELETED
    )

    def __init__(self, ignored: frozenset[str] = frozenset()) -> None:
        self.ignored = ignored

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> NodeResourcesFit:
        only_keys(cls.name, args, {"ignoredResources"})
        ignored = args.get("ignoredResources") or []
        if not isinstance(ignored, list) or not all(isinstance(r, str) for r in ignored):
            raise ConfigError(f"plugin {cls.name}: ignoredResources must be a list of names")
        if {"cpu", "memory", "pods"} & set(ignored):
            raise ConfigError(f"plugin {cls.name}: cpu, memory and pods cannot be ignored")
        return cls(frozenset(ignored))

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        reasons: list[str] | None = None
        if node.free_pods <= 0:
            reasons = [TOO_MANY_PODS]
        cpu = pod.cpu
        if cpu and cpu > node.free_cpu:
            reasons = [*(reasons or ()), insufficient("cpu")]
        memory = pod.memory
        if memory and memory > node.free_memory:
            reasons = [*(reasons or ()), insufficient("memory")]
        if pod.scalars:
            for resource, amount in pod.scalars.items():
                if resource in self.ignored:
                    continue
                free = node.allocatable_scalars.get(resource, 0) - node.requested_scalars.get(
                    resource, 0
                )
                if amount > free:
                    reasons = [*(reasons or ()), insufficient(resource)]
        if reasons is None:
            return Status.ok()
        return Status.unschedulable(*reasons)

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        cpu = pod.cpu
        memory = pod.memory
        if cpu and memory:
            fitting = [
                node
                for node in nodes
                if node.free_pods > 0 and cpu <= node.free_cpu and memory <= node.free_memory
            ]
        else:
            # A request of zero fits even a node that is already overcommitted.
            fitting = [
                node
                for node in nodes
                if node.free_pods > 0
                and (not cpu or cpu <= node.free_cpu)
                and (not memory or memory <= node.free_memory)
            ]
        if pod.scalars:
            fitting = [node for node in fitting if self._scalars_fit(pod, node)]
        return fitting

    def _scalars_fit(self, pod: PodInfo, node: NodeInfo) -> bool:
        for resource, amount in pod.scalars.items():
            if resource in self.ignored:
                continue
            free = node.allocatable_scalars.get(resource, 0) - node.requested_scalars.get(
                resource, 0
            )
            if amount > free:
                return False
        return True
