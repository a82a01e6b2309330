"""NodePorts: two pods asking for the same host port never share a node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.events import ClusterEvent
from scheduler.framework import CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.podinfo import PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"
_REJECTED = Status.unschedulable(REASON)


class NodePorts:
    name = "NodePorts"
    events = ClusterEvent.NODE_ADDED | ClusterEvent.POD_DELETED

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> NodePorts:
        no_args(cls.name, args)
        return cls()

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        return Status.ok() if pod.host_ports else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return _REJECTED if node.port_conflict(pod.host_ports) else Status.ok()

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        ports = pod.host_ports
        return [node for node in nodes if not node.used_ports or not node.port_conflict(ports)]
