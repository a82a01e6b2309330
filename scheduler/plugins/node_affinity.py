"""NodeAffinity: ``nodeSelector`` and node affinity, required (filter) and preferred (score).

The required part is a pod's ``nodeSelector`` (every label must match) AND
its required node affinity (any one of the terms must match). Within a term
every expression must hold; ``matchFields`` may only name ``metadata.name``.
A term with no expressions at all matches nothing, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.api.labels import Operator, Requirement
from corral.objects import spec
from scheduler.events import ClusterEvent
from scheduler.framework import MAX_NODE_SCORE, CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.podinfo import PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"
_REJECTED = Status.unresolvable(REASON)
_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
    "Gt": Operator.GREATER_THAN,
    "Lt": Operator.LESS_THAN,
}


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    expressions: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]
    # A term that could not be understood (an unknown operator or field) matches nothing.
    valid: bool = True

    def matches(self, node: NodeInfo) -> bool:
        if not self.valid or not (self.expressions or self.fields):
            return False
        labels = node.labels
        if not all(r.matches(labels) for r in self.expressions):
            return False
        if self.fields:
            fields = {"metadata.name": node.name}
            return all(r.matches(fields) for r in self.fields)
        return True


def _requirement(raw: Mapping[str, Any]) -> Requirement | None:
    op = _OPERATORS.get(raw.get("operator") or "")
    if op is None:
        return None
    return Requirement(raw.get("key") or "", op, tuple(raw.get("values") or ()))


def parse_term(raw: Mapping[str, Any]) -> NodeSelectorTerm:
    expressions = [_requirement(e) for e in raw.get("matchExpressions") or ()]
    fields = [_requirement(f) for f in raw.get("matchFields") or ()]
    valid = all(r is not None for r in (*expressions, *fields)) and all(
        f is not None and f.key == "metadata.name" and f.operator in (Operator.IN, Operator.NOT_IN)
        for f in fields
    )
    return NodeSelectorTerm(
        tuple(r for r in expressions if r is not None),
        tuple(r for r in fields if r is not None),
        valid,
    )


@dataclass(frozen=True, slots=True)
class _Required:
    node_selector: dict[str, str]
    terms: tuple[NodeSelectorTerm, ...] | None

    def matches(self, node: NodeInfo) -> bool:
        labels = node.labels
        for key, value in self.node_selector.items():
            if labels.get(key) != value:
                return False
        return self.terms is None or any(t.matches(node) for t in self.terms)


def _node_affinity(pod: PodInfo) -> Mapping[str, Any]:
    affinity = spec(pod.obj).get("affinity") or {}
    return affinity.get("nodeAffinity") or {}


class NodeAffinity:
    name = "NodeAffinity"
    events = ClusterEvent.NODE_ADDED | ClusterEvent.NODE_LABELS_CHANGED

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> NodeAffinity:
        no_args(cls.name, args)
        return cls()

    # --- filter -----------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        node_selector = spec(pod.obj).get("nodeSelector") or {}
        required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
        if not node_selector and required is None:
            return Status.skip()
        terms = None
        if required is not None:
            terms = tuple(parse_term(t) for t in required.get("nodeSelectorTerms") or ())
        state.write(self.name, _Required(dict(node_selector), terms))
        return Status.ok()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        required: _Required = state.read(self.name)
        return Status.ok() if required.matches(node) else _REJECTED

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        required: _Required = state.read(self.name)
        return [node for node in nodes if required.matches(node)]

    # --- score ------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
        if not preferred:
            return Status.skip()
        weighted = tuple(
            (int(p.get("weight") or 0), parse_term(p.get("preference") or {})) for p in preferred
        )
        state.write(self.name + "/preferred", weighted)
        return Status.ok()

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        weighted: tuple[tuple[int, NodeSelectorTerm], ...] = state.read(self.name + "/preferred")
        raw = [sum(w for w, term in weighted if term.matches(node)) for node in nodes]
        highest = max(raw, default=0)
        if highest <= 0:
            return [0] * len(nodes)
        return [max(0, r) * MAX_NODE_SCORE // highest for r in raw]
