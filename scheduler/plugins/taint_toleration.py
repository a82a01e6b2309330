"""TaintToleration: NoSchedule/NoExecute taints keep pods off; PreferNoSchedule ones discourage.

The filter rejects a node with a hard taint the pod does not tolerate. The
score counts the PreferNoSchedule taints the pod does not tolerate and gives
the node with the fewest the highest score.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.events import ClusterEvent
from scheduler.framework import MAX_NODE_SCORE, CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.podinfo import PodInfo, Taint, Toleration, tolerated

_SOFT_TAINTS = operator.attrgetter("soft_taints")


def untolerated_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


class TaintToleration:
    name = "TaintToleration"
    events = ClusterEvent.NODE_ADDED | ClusterEvent.NODE_TAINTS_CHANGED

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> TaintToleration:
        no_args(cls.name, args)
        return cls(handle)

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        return Status.ok() if self.handle.node_summary().hard_tainted else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        for taint in node.hard_taints:
            if not tolerated(taint, pod.tolerations):
                return Status.unresolvable(untolerated_reason(taint))
        return Status.ok()

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        tolerations = pod.tolerations
        return [
            node
            for node in nodes
            if not node.hard_taints
            or all(tolerated(taint, tolerations) for taint in node.hard_taints)
        ]

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        if not self.handle.node_summary().soft_tainted or not any(map(_SOFT_TAINTS, nodes)):
            return Status.skip()
        soft = tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))
        state.write(self.name, soft)
        return Status.ok()

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        tolerations: tuple[Toleration, ...] = state.read(self.name)
        counts = [
            sum(1 for taint in node.soft_taints if not tolerated(taint, tolerations))
            for node in nodes
        ]
        highest = max(counts, default=0)
        if highest == 0:
            return [MAX_NODE_SCORE] * len(nodes)
        return [MAX_NODE_SCORE - count * MAX_NODE_SCORE // highest for count in counts]
