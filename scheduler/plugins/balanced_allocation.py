"""NodeResourcesBalancedAllocation: prefer nodes whose resources fill evenly.

A node that would end up at 90 % CPU and 10 % memory strands memory no
other pod can use; the score is ``(1 - spread) * 100``, where the spread is
the standard deviation of the requested fractions of the configured
resources (CPU and memory by default), the pod included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.framework import MAX_NODE_SCORE, CycleState, Handle
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import resource_weights
from scheduler.plugins._usage import cpu_memory_fractions, usage
from scheduler.podinfo import PodInfo

DEFAULT_RESOURCES = (("cpu", 1), ("memory", 1))


class NodeResourcesBalancedAllocation:
    name = "NodeResourcesBalancedAllocation"

    def __init__(self, resources: tuple[tuple[str, int], ...] = DEFAULT_RESOURCES) -> None:
        self.resources = tuple(name for name, _ in resources)

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> NodeResourcesBalancedAllocation:
        # Weights are accepted for symmetry with LeastAllocated; a spread has no use for them.
        return cls(resource_weights(cls.name, args, DEFAULT_RESOURCES))

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        if self.resources != ("cpu", "memory"):
            return [self._score(pod, node) for node in nodes]
        cpu, memory = cpu_memory_fractions(state, pod, nodes)
        # For two values the standard deviation is half their difference
        # (each fraction capped at 1; written without calls, for speed).
        half = MAX_NODE_SCORE / 2
        return [
            int(
                MAX_NODE_SCORE
                - (d if (d := (c if c < 1.0 else 1.0) - (m if m < 1.0 else 1.0)) >= 0.0 else -d)
                * half
            )
            for c, m in zip(cpu, memory, strict=True)
        ]

    def _score(self, pod: PodInfo, node: NodeInfo) -> int:
        fractions = []
        for resource in self.resources:
            requested, allocatable = usage(resource, pod, node)
            if allocatable > 0:
                fractions.append(min(requested / allocatable, 1.0))
        if len(fractions) < 2:
            return MAX_NODE_SCORE
        mean = sum(fractions) / len(fractions)
        spread = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
        return int((1 - spread) * MAX_NODE_SCORE)
