"""The plugins the scheduler knows, by the name a config file uses for them.

An explicit table: nothing is discovered by walking packages, and nothing
registers itself at import time. Each factory checks its own arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from scheduler.framework import Handle, Plugin
from scheduler.plugins.balanced_allocation import NodeResourcesBalancedAllocation
from scheduler.plugins.inter_pod_affinity import InterPodAffinity
from scheduler.plugins.least_allocated import NodeResourcesLeastAllocated
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.node_name import NodeName
from scheduler.plugins.node_ports import NodePorts
from scheduler.plugins.node_ready import NodeReady
from scheduler.plugins.node_resources_fit import NodeResourcesFit
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.pod_topology_spread import PodTopologySpread
from scheduler.plugins.selector_spread import SelectorSpread
from scheduler.plugins.taint_toleration import TaintToleration
from scheduler.plugins.volume_binding import VolumeBinding

PluginFactory = Callable[[Mapping[str, Any], Handle], Plugin]

REGISTRY: dict[str, PluginFactory] = {
    NodeUnschedulable.name: NodeUnschedulable.new,
    NodeReady.name: NodeReady.new,
    NodeName.name: NodeName.new,
    TaintToleration.name: TaintToleration.new,
    NodeAffinity.name: NodeAffinity.new,
    InterPodAffinity.name: InterPodAffinity.new,
    NodePorts.name: NodePorts.new,
    NodeResourcesFit.name: NodeResourcesFit.new,
    VolumeBinding.name: VolumeBinding.new,
    SelectorSpread.name: SelectorSpread.new,
    PodTopologySpread.name: PodTopologySpread.new,
    NodeResourcesLeastAllocated.name: NodeResourcesLeastAllocated.new,
    NodeResourcesBalancedAllocation.name: NodeResourcesBalancedAllocation.new,
}
