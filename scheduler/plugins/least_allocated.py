"""NodeResourcesLeastAllocated: prefer the node with the most room left after the pod.

Per resource, ``(allocatable - requested) * 100 / allocatable`` with the
pod's request included, then a weighted mean over the configured resources
(CPU and memory, weight 1 each, by default). Requests count with
Kubernetes' non-zero defaults, so pods that request nothing still fill a node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.framework import MAX_NODE_SCORE, CycleState, Handle
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import resource_weights
from scheduler.plugins._usage import cpu_memory_fractions, usage
from scheduler.podinfo import PodInfo

DEFAULT_RESOURCES = (("cpu", 1), ("memory", 1))


class NodeResourcesLeastAllocated:
    name = "NodeResourcesLeastAllocated"

    def __init__(self, resources: tuple[tuple[str, int], ...] = DEFAULT_RESOURCES) -> None:
        self.resources = resources

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> NodeResourcesLeastAllocated:
        return cls(resource_weights(cls.name, args, DEFAULT_RESOURCES))

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        if self.resources != DEFAULT_RESOURCES:
            return [self._score(pod, node) for node in nodes]
        cpu, memory = cpu_memory_fractions(state, pod, nodes)
        # Per resource (1 - fraction) * 100, floored at 0; the mean of the two.
        return [
            int(
                ((1.0 - c if c < 1.0 else 0.0) + (1.0 - m if m < 1.0 else 0.0))
                * (MAX_NODE_SCORE / 2)
            )
            for c, m in zip(cpu, memory, strict=True)
        ]

    def _score(self, pod: PodInfo, node: NodeInfo) -> int:
        total = weights = 0
        for resource, weight in self.resources:
            requested, allocatable = usage(resource, pod, node)
            if allocatable <= 0:
                continue
            weights += weight
            if requested <= allocatable:
                total += (allocatable - requested) * MAX_NODE_SCORE // allocatable * weight
        return total // weights if weights else 0
