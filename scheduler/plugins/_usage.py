"""How full each node would be with the pod on it: shared by the resource scores.

Both resource scores need the same two fractions per node (CPU and memory
requested over allocatable, the pod included); the first to ask computes
them for the whole batch and keeps them in the cycle state for the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.framework import CycleState
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo

_KEY = "NodeResources/fractions"
# The fraction given for a resource the node has none of: over full, which
# scores it as the least attractive choice.
OVER_FULL = 2.0


def usage(resource: str, pod: PodInfo, node: NodeInfo) -> tuple[int, int]:
    """``(requested including the pod, allocatable)``; CPU in millis, with non-zero defaults."""
    if resource == "cpu":
        return node.nonzero_cpu + pod.nonzero_cpu, node.allocatable_cpu
    if resource == "memory":
        return node.nonzero_memory + pod.nonzero_memory, node.allocatable_memory
    requested = node.requested_scalars.get(resource, 0) + pod.scalars.get(resource, 0)
    return requested, node.allocatable_scalars.get(resource, 0)


def cpu_memory_fractions(
    state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
) -> tuple[list[float], list[float]]:
    """Per node, requested over allocatable for CPU and for memory, the pod included."""
    try:
        found: tuple[int, tuple[list[float], list[float]]] = state.read(_KEY)
    except KeyError:
        pass  # not worked out yet in this cycle
    else:
        # The same batch of nodes: scores run one after another on one list.
        if found[0] == id(nodes):
            return found[1]
    cpu = pod.nonzero_cpu
    memory = pod.nonzero_memory
    # One pass over the nodes, split after: each pass over hundreds of nodes
    # costs memory traffic as well as bytecode.
    pairs = [
        (
            (n.nonzero_cpu + cpu) / c if (c := n.allocatable_cpu) > 0 else OVER_FULL,
            (n.nonzero_memory + memory) / m if (m := n.allocatable_memory) > 0 else OVER_FULL,
        )
        for n in nodes
    ]
    cpus, memories = (list(column) for column in zip(*pairs, strict=True)) if pairs else ([], [])
    fractions = (cpus, memories)
    state.write(_KEY, (id(nodes), fractions))
    return fractions
