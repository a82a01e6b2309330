"""InterPodAffinity: pods placed near, or away from, other pods by their labels.

A term names pods (a label selector over some namespaces) and a topology
key, a node label such as ``kubernetes.io/hostname`` or
``topology.kubernetes.io/zone``. Nodes with the same value of that label
form one domain.

Filter, as in Kubernetes:

- the pod's required affinity: every term needs a matching pod in the
  node's domain. The first pod of a group that matches its own terms may go
  anywhere a term's key exists, or it could never start;
- the pod's required anti-affinity: no term may have a matching pod in the
  node's domain;
- existing pods' required anti-affinity: a node is refused when it shares
  a domain with a pod whose term matches the new pod (the rule is
  symmetric, or the second pod would undo the first one's wish).

Score: the pod's preferred terms, weight times the matching pods in the
node's domain, added for affinity and taken off for anti-affinity, then
scaled to 0..100 over the candidate nodes.

Namespaces: a term's ``namespaces``, else the pod's own; an empty
``namespaceSelector`` ({}) means all namespaces. A non-empty
``namespaceSelector`` is not evaluated (the scheduler does not cache
Namespace labels): its term then looks only at ``namespaces``, or the
pod's own namespace. Existing pods' preferred terms are not scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scheduler.events import ClusterEvent
from scheduler.framework import MAX_NODE_SCORE, CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.podinfo import AffinityTerm, PodInfo

AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"

Domain = tuple[str, str]  # (topology key, value)


@dataclass(frozen=True, slots=True)
class _Filtering:
    # Per required affinity term, the domains that hold a matching pod; None
    # when no pod anywhere matches and the pod matches all its own terms.
    affinity: tuple[frozenset[Domain] | None, ...]
    affinity_keys: tuple[str, ...]
    anti_affinity: frozenset[Domain]
    existing_anti_affinity: frozenset[Domain]


def term_matches(term: AffinityTerm, owner_namespace: str, pod: PodInfo) -> bool:
    """Whether ``pod`` is one of the pods ``term`` (of a pod in ``owner_namespace``) names."""
    if term.all_namespaces:
        in_scope = True
    elif term.namespaces:
        in_scope = pod.namespace in term.namespaces
    else:
        in_scope = pod.namespace == owner_namespace
    return in_scope and term.selector.matches(pod.labels)


def _matching_pods(handle: Handle, term: AffinityTerm, owner: PodInfo) -> Iterable[PodInfo]:
    if term.all_namespaces:
        namespaces: Iterable[str] = handle.namespaces()
    else:
        namespaces = term.namespaces or (owner.namespace,)
    for namespace in namespaces:
        for pod in handle.pods_matching(namespace, (term.selector,)):
            if pod.key != owner.key:
                yield pod


def _domains(handle: Handle, pods: Iterable[PodInfo], key: str) -> dict[Domain, int]:
    found: dict[Domain, int] = {}
    for pod in pods:
        node = handle.node(pod.node_name)
        if node is None:
            continue
        value = node.labels.get(key)
        if value is not None:
            found[key, value] = found.get((key, value), 0) + 1
    return found


class InterPodAffinity:
    name = "InterPodAffinity"
    events = ClusterEvent.POD_DELETED | ClusterEvent.NODE_ADDED | ClusterEvent.NODE_LABELS_CHANGED

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> InterPodAffinity:
        no_args(cls.name, args)
        return cls(handle)

    # --- filter ---------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        affinity = pod.affinity
        required = affinity.required_affinity if affinity else ()
        required_anti = affinity.required_anti_affinity if affinity else ()
        existing = [
            domain
            for other in self.handle.pods_with_required_anti_affinity()
            if other.key != pod.key
            for domain in self._blocked_by(other, pod)
        ]
        if not required and not required_anti and not existing:
            return Status.skip()
        handle = self.handle
        per_term: list[frozenset[Domain] | None] = []
        any_match = False
        for term in required:
            domains = _domains(handle, _matching_pods(handle, term, pod), term.topology_key)
            any_match = any_match or bool(domains)
            per_term.append(frozenset(domains))
        if (
            required
            and not any_match
            and all(term_matches(t, pod.namespace, pod) for t in required)
        ):
            per_term = [None] * len(required)
        anti: set[Domain] = set()
        for term in required_anti:
            anti.update(_domains(handle, _matching_pods(handle, term, pod), term.topology_key))
        state.write(
            self.name,
            _Filtering(
                tuple(per_term),
                tuple(t.topology_key for t in required),
                frozenset(anti),
                frozenset(existing),
            ),
        )
        return Status.ok()

    def _blocked_by(self, other: PodInfo, pod: PodInfo) -> list[Domain]:
        assert other.affinity is not None
        node = self.handle.node(other.node_name)
        if node is None:
            return []
        blocked = []
        for term in other.affinity.required_anti_affinity:
            value = node.labels.get(term.topology_key)
            if value is not None and term_matches(term, other.namespace, pod):
                blocked.append((term.topology_key, value))
        return blocked

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        filtering: _Filtering = state.read(self.name)
        labels = node.labels
        # Kubernetes' order, so that a pod is explained the same way.
        for key, domains in zip(filtering.affinity_keys, filtering.affinity, strict=True):
            value = labels.get(key)
            if value is None or (domains is not None and (key, value) not in domains):
                # Evicting pods would not bring the named pods here.
                return Status.unresolvable(AFFINITY_REASON)
        for domain in filtering.anti_affinity:
            if labels.get(domain[0]) == domain[1]:
                return Status.unschedulable(ANTI_AFFINITY_REASON)
        for domain in filtering.existing_anti_affinity:
            if labels.get(domain[0]) == domain[1]:
                return Status.unschedulable(EXISTING_ANTI_AFFINITY_REASON)
        return Status.ok()

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        return [node for node in nodes if self.filter(state, pod, node).is_success]

    # --- score ----------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        affinity = pod.affinity
        if affinity is None or not (
            affinity.preferred_affinity or affinity.preferred_anti_affinity
        ):
            return Status.skip()
        weights: dict[Domain, int] = {}
        for sign, terms in (
            (1, affinity.preferred_affinity),
            (-1, affinity.preferred_anti_affinity),
        ):
            for weight, term in terms:
                matching = _matching_pods(self.handle, term, pod)
                for domain, count in _domains(self.handle, matching, term.topology_key).items():
                    weights[domain] = weights.get(domain, 0) + sign * weight * count
        keys = sorted({key for key, _ in weights})
        state.write(self.name + "/score", (weights, keys))
        return Status.ok()

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        weights, keys = state.read(self.name + "/score")
        raw = []
        for node in nodes:
            labels = node.labels
            total = 0
            for key in keys:
                value = labels.get(key)
                if value is not None:
                    total += weights.get((key, value), 0)
            raw.append(total)
        low, high = min(raw, default=0), max(raw, default=0)
        if high == low:
            return [0] * len(raw)
        return [(value - low) * MAX_NODE_SCORE // (high - low) for value in raw]
