"""SelectorSpread: replicas of one ReplicationController, ReplicaSet or Service spread out.

The pods that count are those the same selectors pick: every Service,
ReplicationController and ReplicaSet in the pod's namespace whose selector
matches the pod contributes its selector, and a pod already placed counts
when all of them match it. A node scores higher the fewer such pods it has;
with zones (``topology.kubernetes.io/zone``), the zone's count weighs in as
well, by ``zoneWeight`` (two thirds by default, as in Kubernetes), so that
replicas spread across zones first and across nodes within a zone next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scheduler.framework import MAX_NODE_SCORE, ConfigError, CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import only_keys
from scheduler.podinfo import PodInfo

DEFAULT_ZONE_WEIGHT = 2.0 / 3.0


@dataclass(frozen=True, slots=True)
class _Scales:
    by_node: Mapping[str, int]
    # Per zone: the score of a node holding none of the pods, that score as
    # an int, and what each pod on a node takes off it.
    base: dict[str, float]
    flat: dict[str, int]
    slope: dict[str, float]


class SelectorSpread:
    name = "SelectorSpread"

    def __init__(self, handle: Handle, zone_weight: float = DEFAULT_ZONE_WEIGHT) -> None:
        self.handle = handle
        self.zone_weight = zone_weight

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> SelectorSpread:
        only_keys(cls.name, args, {"zoneWeight"})
        weight = args.get("zoneWeight", DEFAULT_ZONE_WEIGHT)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
            raise ConfigError(f"plugin {cls.name}: zoneWeight must be a number from 0 to 1")
        return cls(handle, float(weight))

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        selectors = self.handle.spreading_selectors(pod)
        if not selectors:
            return Status.skip()
        by_node, by_zone = self.handle.count_matching(pod.namespace, selectors)
        # Counts are scaled by the most on any node (and in any zone), not
        # only among the candidates: with sampling, the sample should not
        # change the scale.
        most = max(by_node.values(), default=0)
        per_pod = MAX_NODE_SCORE / most if most else 0.0
        most_zone = max(by_zone.values(), default=0)
        weight = self.zone_weight
        base: dict[str, float] = {}
        slope: dict[str, float] = {}
        for zone in self.handle.node_summary().zones:
            if not zone:
                keep, add = 1.0, 0.0  # a node with no zone keeps its whole score
            else:
                count = by_zone.get(zone, 0)
                zone_score = (
                    (most_zone - count) * MAX_NODE_SCORE / most_zone
                    if most_zone
                    else MAX_NODE_SCORE
                )
                keep, add = 1.0 - weight, weight * zone_score
            base[zone] = MAX_NODE_SCORE * keep + add
            slope[zone] = per_pod * keep
        flat = {zone: int(value) for zone, value in base.items()}
        state.write(self.name, _Scales(by_node, base, flat, slope))
        return Status.ok()

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        scales: _Scales = state.read(self.name)
        by_node = scales.by_node
        base = scales.base
        flat = scales.flat
        slope = scales.slope
        # Most nodes hold none of the pods: their score depends on the zone alone.
        return [
            int(base[node.zone] - by_node[name] * slope[node.zone])
            if (name := node.name) in by_node
            else flat[node.zone]
            for node in nodes
        ]
