"""NodeName: a pod that names its node (``spec.nodeName``) fits only that node.

Pods that arrive with a node name never reach the queue; the filter matters
when the framework is asked whether an assigned pod fits a node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.events import ClusterEvent
from scheduler.framework import CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.podinfo import PodInfo

REASON = "node(s) didn't match the requested node name"
_REJECTED = Status.unresolvable(REASON)


class NodeName:
    name = "NodeName"
    events = ClusterEvent.NODE_ADDED

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> NodeName:
        no_args(cls.name, args)
        return cls()

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        return Status.ok() if pod.node_name else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return Status.ok() if node.name == pod.node_name else _REJECTED

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        wanted = pod.node_name
        return [node for node in nodes if node.name == wanted]
