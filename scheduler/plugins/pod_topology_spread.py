"""PodTopologySpread: pods spread over topology domains, as kube-scheduler 1.32 spreads them.

A constraint (``spec.topologySpreadConstraints``) names a node label (the
topology key; nodes with one value of it form a domain), the pods that
count (``labelSelector``, plus ``matchLabelKeys`` taken from the pod's own
labels, in the pod's namespace, not being deleted) and ``maxSkew``.

- Filter, for ``whenUnsatisfiable: DoNotSchedule``: placing the pod in the
  node's domain may not leave it more than ``maxSkew`` pods ahead of the
  emptiest domain (0 when fewer than ``minDomains`` domains exist). A node
  without the key is refused for good. Domains are those of the nodes that
  carry every such key and pass the pod's node selector and required
  affinity (``nodeAffinityPolicy: Honor``) and, with
  ``nodeTaintsPolicy: Honor``, whose taints the pod tolerates.
- Score, for ``whenUnsatisfiable: ScheduleAnyway``: per node, the matching
  pods in its domain times ``log(domains + 2)``, plus ``maxSkew - 1``,
  summed over constraints; fewer is better, scaled as Kubernetes does
  (``100 * (max + min - s) / max``).

A pod with no constraints of its own gets the system defaults, as
kube-scheduler's ``defaultingType: System``: ScheduleAnyway with maxSkew 3
per hostname and 5 per zone, counting the pods that every Service,
ReplicationController and ReplicaSet selecting the pod also selects. So
replicas spread even when nothing else (requests, affinity) tells nodes apart.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.api.labels import (
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    selector_from_dict,
)
from corral.objects import spec
from scheduler.events import ClusterEvent
from scheduler.framework import MAX_NODE_SCORE, CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.plugins.node_affinity import parse_term
from scheduler.podinfo import PodInfo, tolerated

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
SKEW_REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL_REASON = (
    "node(s) didn't match pod topology spread constraints (missing required label)"
)
_FILTER_KEY = "PodTopologySpread/filter"
_SCORE_KEY = "PodTopologySpread/score"


@dataclass(frozen=True, slots=True)
class Constraint:
    max_skew: int
    key: str
    hard: bool
    selector: LabelSelector | tuple[LabelSelector, ...]
    min_domains: int = 1
    honor_affinity: bool = True
    honor_taints: bool = False

    def selects(self, labels: Mapping[str, str]) -> bool:
        if isinstance(self.selector, LabelSelector):
            return self.selector.matches(labels)
        return all(s.matches(labels) for s in self.selector)

    @property
    def selectors(self) -> tuple[LabelSelector, ...]:
        return (self.selector,) if isinstance(self.selector, LabelSelector) else self.selector


def _selector(raw: Mapping[str, Any], pod: PodInfo) -> LabelSelector:
    selector = selector_from_dict(raw.get("labelSelector"))
    extra = [
        Requirement(key, Operator.IN, (pod.labels[key],))
        for key in raw.get("matchLabelKeys") or ()
        if isinstance(key, str) and key in pod.labels
    ]
    if not extra or selector.match_nothing:
        return selector
    return LabelSelector(tuple(sorted((*selector.requirements, *extra), key=lambda r: r.key)))


def constraints_of(pod: PodInfo) -> list[Constraint]:
    """The pod's own constraints; malformed ones (the API refuses them) are left out."""
    found = []
    for raw in spec(pod.obj).get("topologySpreadConstraints") or ():
        if not isinstance(raw, Mapping):
            continue
        skew, key = raw.get("maxSkew"), raw.get("topologyKey")
        if not isinstance(skew, int) or skew < 1 or not isinstance(key, str) or not key:
            continue
        try:
            selector = _selector(raw, pod)
        except SelectorError:
            continue
        min_domains = raw.get("minDomains")
        found.append(
            Constraint(
                skew,
                key,
                raw.get("whenUnsatisfiable") != "ScheduleAnyway",
                selector,
                min_domains if isinstance(min_domains, int) and min_domains > 0 else 1,
                raw.get("nodeAffinityPolicy") != "Ignore",
                raw.get("nodeTaintsPolicy") == "Honor",
            )
        )
    return found


def default_constraints(selectors: Sequence[LabelSelector]) -> list[Constraint]:
    chosen = tuple(selectors)
    return [Constraint(3, HOSTNAME, False, chosen), Constraint(5, ZONE, False, chosen)]


class _Eligibility:
    """Which nodes count for a pod's constraints (nodeAffinityPolicy, nodeTaintsPolicy)."""

    def __init__(self, pod: PodInfo) -> None:
        pod_spec = spec(pod.obj)
        self.node_selector: Mapping[str, str] = pod_spec.get("nodeSelector") or {}
        affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.terms = (
            tuple(parse_term(t) for t in required.get("nodeSelectorTerms") or ())
            if isinstance(required, Mapping)
            else None
        )
        self.tolerations = pod.tolerations

    def admits_every_node(self, constraint: Constraint, hard_tainted_nodes: int) -> bool:
        """Whether ``admits`` is true of every node, so counting needs no node list."""
        if constraint.honor_affinity and (self.node_selector or self.terms is not None):
            return False
        return not (constraint.honor_taints and hard_tainted_nodes)

    def admits(self, node: NodeInfo, constraint: Constraint) -> bool:
        if constraint.honor_affinity:
            labels = node.labels
            if any(labels.get(k) != v for k, v in self.node_selector.items()):
                return False
            if self.terms is not None and not any(t.matches(node) for t in self.terms):
                return False
        if constraint.honor_taints:
            return all(tolerated(t, self.tolerations) for t in node.hard_taints)
        return True


def _counts(
    handle: Handle, pod: PodInfo, constraint: Constraint, admitted: Iterable[NodeInfo]
) -> dict[str, int]:
    """Matching pods per value of the constraint's key, over the admitted nodes (zeros included)."""
    counts = {node.labels[constraint.key]: 0 for node in admitted if constraint.key in node.labels}
    for other in handle.pods_matching(pod.namespace, constraint.selectors):
        if other.terminating or other.key == pod.key:
            continue
        node = handle.node(other.node_name)
        if node is None:
            continue
        value = node.labels.get(constraint.key)
        if value is not None and value in counts:
            counts[value] += 1
    return counts


@dataclass(frozen=True, slots=True)
class _Hard:
    constraint: Constraint
    counts: dict[str, int]
    floor: int  # the emptiest domain's count, 0 when too few domains exist
    self_match: int


@dataclass(frozen=True, slots=True)
class _Soft:
    constraints: tuple[Constraint, ...]
    weights: tuple[float, ...]
    counts: tuple[dict[str, int], ...]  # per constraint; hostname counts are per node
    ignored: frozenset[str]  # nodes missing a key of the pod's own constraints


class PodTopologySpread:
    name = "PodTopologySpread"
    events = ClusterEvent.NODE_ADDED | ClusterEvent.NODE_LABELS_CHANGED | ClusterEvent.POD_DELETED

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> PodTopologySpread:
        no_args(cls.name, args)
        return cls(handle)

    # --- filter ---------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        hard = [c for c in constraints_of(pod) if c.hard]
        if not hard:
            return Status.skip()
        eligible = _Eligibility(pod)
        keys = {c.key for c in hard}
        nodes = [n for n in self.handle.node_list() if keys <= n.labels.keys()]
        found = []
        for constraint in hard:
            admitted = [n for n in nodes if eligible.admits(n, constraint)]
            counts = _counts(self.handle, pod, constraint, admitted)
            few = len(counts) < constraint.min_domains
            floor = 0 if few or not counts else min(counts.values())
            found.append(_Hard(constraint, counts, floor, int(constraint.selects(pod.labels))))
        state.write(_FILTER_KEY, tuple(found))
        return Status.ok()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        hard: tuple[_Hard, ...] = state.read(_FILTER_KEY)
        for entry in hard:
            value = node.labels.get(entry.constraint.key)
            if value is None:
                return Status.unresolvable(MISSING_LABEL_REASON)
            skew = entry.counts.get(value, 0) + entry.self_match - entry.floor
            if skew > entry.constraint.max_skew:
                return Status.unschedulable(SKEW_REASON)
        return Status.ok()

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        hard: tuple[_Hard, ...] = state.read(_FILTER_KEY)
        # Per constraint, the domains that still have room for the pod.
        open_domains = [
            {
                value
                for value, count in entry.counts.items()
                if count + entry.self_match - entry.floor <= entry.constraint.max_skew
            }
            # A domain no admitted node holds counts 0 pods.
            | ({None} if entry.self_match - entry.floor <= entry.constraint.max_skew else set())
            for entry in hard
        ]
        return [
            node
            for node in nodes
            if all(
                (value := node.labels.get(entry.constraint.key)) is not None
                and (value in room if value in entry.counts else None in room)
                for entry, room in zip(hard, open_domains, strict=True)
            )
        ]

    # --- score ----------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        own = constraints_of(pod)
        if own:
            soft = [c for c in own if not c.hard]
        else:
            selectors = self.handle.spreading_selectors(pod)
            soft = default_constraints(selectors) if selectors else []
        if not soft:
            return Status.skip()
        keys = {c.key for c in soft}
        # The pod's own constraints need every key; the defaults use what a node has.
        ignored = frozenset(n.name for n in nodes if own and not keys <= n.labels.keys())
        candidates = [n for n in nodes if n.name not in ignored]
        eligible = _Eligibility(pod)
        weights: list[float] = []
        counts: list[dict[str, int]] = []
        summary = self.handle.node_summary()
        zoned = any(summary.zones)
        for constraint in soft:
            key = constraint.key
            if key == HOSTNAME:
                found = self._per_node(pod, constraint, candidates)
            elif key == ZONE and not zoned:
                found = {}  # no node has a zone: nothing to count
            else:
                values = {n.labels[key] for n in candidates if key in n.labels}
                if not values:
                    every: Mapping[str, int] = {}
                elif eligible.admits_every_node(constraint, summary.hard_tainted):
                    every = self._per_value(pod, constraint)
                else:
                    nodes_all = self.handle.node_list()
                    admitted = [n for n in nodes_all if eligible.admits(n, constraint)]
                    every = _counts(self.handle, pod, constraint, admitted)
                found = {v: every.get(v, 0) for v in values}
            weights.append(math.log(len(found) + 2))
            counts.append(found)
        state.write(_SCORE_KEY, _Soft(tuple(soft), tuple(weights), tuple(counts), ignored))
        return Status.ok()

    def _per_value(self, pod: PodInfo, constraint: Constraint) -> dict[str, int]:
        """Matching pods per value of the constraint's key, when every node is eligible.

        From the cache's per-node counts, so the cost is the nodes that hold
        matching pods rather than every node of the cluster (which made the
        zone default cost milliseconds a pod at 1,000 nodes).
        """
        by_node, _ = self.handle.count_matching(pod.namespace, constraint.selectors)
        counts: dict[str, int] = {}
        for name, count in by_node.items():
            node = self.handle.node(name)
            value = node.labels.get(constraint.key) if node is not None else None
            if value is not None:
                counts[value] = counts.get(value, 0) + count
        return counts

    def _per_node(
        self, pod: PodInfo, constraint: Constraint, nodes: Sequence[NodeInfo]
    ) -> dict[str, int]:
        # The cache's per-node index counts the pods (not being deleted) every
        # selector matches; keyed here by the hostname label, the node's domain.
        by_node, _ = self.handle.count_matching(pod.namespace, constraint.selectors)
        return {
            value: by_node.get(node.name, 0)
            for node in nodes
            if (value := node.labels.get(HOSTNAME)) is not None
        }

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        soft: _Soft = state.read(_SCORE_KEY)
        totals = [0.0] * len(nodes)
        for constraint, weight, counts in zip(
            soft.constraints, soft.weights, soft.counts, strict=True
        ):
            if not counts:
                continue  # no node has the key: it adds nothing anywhere
            key = constraint.key
            base = constraint.max_skew - 1
            # A node without the key adds nothing (no label value holds a NUL).
            added = [
                0.0 if (c := counts.get(n.labels.get(key, "\0"), -1)) < 0 else c * weight + base
                for n in nodes
            ]
            totals = list(map(operator.add, totals, added))
        ignored = soft.ignored
        # Go's math.Round: halves away from zero (Python's round goes to even).
        raw = [
            None if ignored and node.name in ignored else math.floor(total + 0.5)
            for node, total in zip(nodes, totals, strict=True)
        ]
        return _normalise(raw)


def _normalise(raw: Sequence[int | None]) -> list[int]:
    """Kubernetes' NormalizeScore: fewer matching pods score higher; ignored nodes 0."""
    present = [s for s in raw if s is not None]
    if not present:
        return [0] * len(raw)
    low, high = min(present), max(present)
    if high == 0:
        return [0 if s is None else MAX_NODE_SCORE for s in raw]
    return [0 if s is None else MAX_NODE_SCORE * (high + low - s) // high for s in raw]
