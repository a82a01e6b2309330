"""NodeUnschedulable: keep pods off cordoned nodes (``spec.unschedulable``)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from typing import Any

from scheduler.events import ClusterEvent
from scheduler.framework import CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.podinfo import PodInfo, Taint, tolerated

# What a pod tolerates to be placed on a cordoned node anyway (DaemonSets do).
UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")
REASON = "node(s) were unschedulable"
_REJECTED = Status.unresolvable(REASON)
_CORDONED = operator.attrgetter("unschedulable")


class NodeUnschedulable:
    name = "NodeUnschedulable"
    events = ClusterEvent.NODE_ADDED | ClusterEvent.NODE_SCHEDULABLE_CHANGED

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> NodeUnschedulable:
        no_args(cls.name, args)
        return cls(handle)

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        if not self.handle.node_summary().unschedulable or tolerated(
            UNSCHEDULABLE_TAINT, pod.tolerations
        ):
            return Status.skip()
        return Status.ok()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return _REJECTED if node.unschedulable else Status.ok()

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        return list(itertools.filterfalse(_CORDONED, nodes))
