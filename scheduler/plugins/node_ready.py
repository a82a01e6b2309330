"""NodeReady: only nodes whose Ready condition is True take new pods."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from scheduler.events import ClusterEvent
from scheduler.framework import CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.podinfo import PodInfo, Taint, tolerated

# The taint Kubernetes puts on a node that is not ready; a pod that tolerates
# it asked to be placed there regardless.
NOT_READY_TAINT = Taint("node.kubernetes.io/not-ready", "", "NoSchedule")
REASON = "node(s) were not ready"
_REJECTED = Status.unresolvable(REASON)
_READY = operator.attrgetter("ready")


class NodeReady:
    name = "NodeReady"
    events = ClusterEvent.NODE_ADDED | ClusterEvent.NODE_CONDITION_CHANGED

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> NodeReady:
        no_args(cls.name, args)
        return cls(handle)

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        if not self.handle.node_summary().not_ready or tolerated(NOT_READY_TAINT, pod.tolerations):
            return Status.skip()
        return Status.ok()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return Status.ok() if node.ready else _REJECTED

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        return list(filter(_READY, nodes))
