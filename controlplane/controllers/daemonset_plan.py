"""What a DaemonSet should do next, decided from its nodes and pods alone (no I/O).

Kubernetes 1.32's daemon controller, in three parts:

- ``manage``: a pod on every node that should run one and has none; extra,
  failed and misplaced pods deleted (``podsShouldBeOnNode``);
- ``rolling_update``: old pods replaced within ``maxUnavailable`` (delete
  first), or, with ``maxSurge``, a new pod started beside the old one,
  which goes once the new one is available;
- ``status_counts``: the counts ``kubectl rollout status`` reads.

Pods are grouped by the node they are for (``nodeName``, or the node their
affinity pins them to while they wait for the scheduler).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from controlplane.controllers import podutil
from controlplane.controllers.daemonset_nodes import should_run, target_node
from controlplane.controllers.statefulset_identity import REVISION_LABEL
from corral.objects import Obj, labels_of, meta, name_of, spec

NodePods = dict[str, list[Obj]]


@dataclass
class Delete:
    pod: Obj
    reason: str
    # A pod bound to a node that no longer exists has no agent to confirm a
    # graceful stop: it goes at once, as Kubernetes' pod GC removes it.
    force: bool = False


@dataclass
class Plan:
    create_on: list[str] = field(default_factory=list)
    delete: list[Delete] = field(default_factory=list)

    def empty(self) -> bool:
        return not self.create_on and not self.delete


def by_node(pods: Iterable[Obj]) -> NodePods:
    grouped: NodePods = {}
    for pod in pods:
        node = target_node(pod)
        if node is not None:
            grouped.setdefault(node, []).append(pod)
    return grouped


def _oldest_first(pods: Iterable[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: (str(meta(p).get("creationTimestamp") or ""), name_of(p)))


def is_updated(pod: Obj, revision_hash: str) -> bool:
    return labels_of(pod).get(REVISION_LABEL) == revision_hash


def _template(ds: Obj) -> Obj:
    template: Obj = spec(ds).get("template") or {}
    return template


def rolling(ds: Obj) -> Obj | None:
    strategy = spec(ds).get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return None
    found: Obj = strategy.get("rollingUpdate") or {}
    return found


def scaled(value: int | str | None, total: int, default: int) -> int:
    """An int-or-percent of ``total``, a percentage rounded up, as Kubernetes scales it."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        return math.ceil(int(text[:-1]) * total / 100)
    return int(text)


def _surge(ds: Obj, desired: int) -> int:
    found = rolling(ds)
    return 0 if found is None else scaled(found.get("maxSurge"), desired, 0)


def _unavailable(ds: Obj, desired: int) -> int:
    found = rolling(ds)
    return 1 if found is None else scaled(found.get("maxUnavailable"), desired, 1)


# --- manage ----------------------------------------------------------------------------------


def manage(ds: Obj, nodes: Sequence[Obj], pods: NodePods, revision_hash: str) -> Plan:
    plan = Plan()
    # ``AllowsSurge``: any surge at all, a percentage of one node rounded up.
    allows_surge = _surge(ds, 1) > 0
    template = _template(ds)
    for node in sorted(nodes, key=name_of):
        name = name_of(node)
        on_node = pods.get(name, [])
        run, keep = should_run(template, node)
        if run and not on_node:
            plan.create_on.append(name)
        elif keep:
            _settle_node(plan, on_node, allows_surge, revision_hash)
        elif on_node:
            plan.delete.extend(
                Delete(p, "misscheduled") for p in on_node if not podutil.is_terminating(p)
            )
    known = {name_of(n) for n in nodes}
    for node_name, on_node in sorted(pods.items()):
        if node_name in known:
            continue
        for pod in on_node:
            bound = bool(spec(pod).get("nodeName"))
            if not (podutil.is_terminating(pod) and not bound):
                plan.delete.append(Delete(pod, "node gone", force=bound))
    return plan


def _settle_node(plan: Plan, on_node: list[Obj], allows_surge: bool, revision_hash: str) -> None:
    """Failed pods go; of the rest, one stays (one old and one new while surging)."""
    running: list[Obj] = []
    for pod in on_node:
        if podutil.is_terminating(pod):
            continue
        if podutil.phase(pod) in ("Failed", "Succeeded"):
            plan.delete.append(Delete(pod, "failed"))
            continue
        running.append(pod)
    kept_new = kept_old = False
    for pod in _oldest_first(running):
        if not allows_surge:
            if kept_old:
                plan.delete.append(Delete(pod, "extra"))
            kept_old = True
        elif is_updated(pod, revision_hash) and not kept_new:
            kept_new = True
        elif not is_updated(pod, revision_hash) and not kept_old:
            kept_old = True
        else:
            plan.delete.append(Delete(pod, "extra"))


# --- rolling update --------------------------------------------------------------------------


def _new_and_old(pods: Sequence[Obj], revision_hash: str) -> tuple[Obj | None, Obj | None, bool]:
    """``findUpdatedPodsOnNode``: the node's new and old pod; False if it has two of either."""
    new = old = None
    for pod in pods:
        if podutil.is_terminating(pod):
            continue
        if is_updated(pod, revision_hash):
            if new is not None:
                return None, None, False
            new = pod
        elif old is not None:
            return None, None, False
        else:
            old = pod
    return new, old, True


def rolling_update(
    ds: Obj, nodes: Sequence[Obj], pods: NodePods, revision_hash: str, now: datetime
) -> Plan:
    if rolling(ds) is None:
        return Plan()
    min_ready = int(spec(ds).get("minReadySeconds") or 0)
    template = _template(ds)
    wanted = {name_of(n) for n in nodes if should_run(template, n)[0]}
    per_node = {name: pods.get(name, []) for name in wanted | set(pods)}
    desired = len(wanted)
    surge = _surge(ds, desired)
    unavailable = _unavailable(ds, desired)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # an impossible configuration: Kubernetes falls back to one at a time
    if surge == 0:
        return _replace_within_unavailable(per_node, revision_hash, min_ready, now, unavailable)
    return _surge_then_delete(per_node, wanted, revision_hash, min_ready, now, surge)


def _replace_within_unavailable(
    per_node: Mapping[str, list[Obj]],
    revision_hash: str,
    min_ready: int,
    now: datetime,
    max_unavailable: int,
) -> Plan:
    unavailable = 0
    replace_anyway: list[Obj] = []  # old pods that are not available: nothing is lost
    candidates: list[Obj] = []
    for name in sorted(per_node):
        new, old, ok = _new_and_old(per_node[name], revision_hash)
        if not ok or (new is None) == (old is None):
            unavailable += 1  # the manage loop settles this node first
        elif new is not None:
            if not podutil.is_available(new, min_ready, now):
                unavailable += 1
        elif old is not None:
            if not podutil.is_available(old, min_ready, now):
                replace_anyway.append(old)
            elif unavailable < max_unavailable:
                candidates.append(old)
    room = max(0, min(max_unavailable - unavailable, len(candidates)))
    chosen = [*replace_anyway, *candidates[:room]]
    return Plan(delete=[Delete(p, "update") for p in chosen])


def _surge_then_delete(
    per_node: Mapping[str, list[Obj]],
    wanted: set[str],
    revision_hash: str,
    min_ready: int,
    now: datetime,
    max_surge: int,
) -> Plan:
    surging = 0
    replace_anyway: list[str] = []
    candidates: list[str] = []
    plan = Plan()
    for name in sorted(per_node):
        new, old, ok = _new_and_old(per_node[name], revision_hash)
        if not ok:
            surging += 1  # the manage loop settles this node first
            continue
        if old is None or name not in wanted:
            continue
        if new is None:
            if not podutil.is_available(old, min_ready, now):
                replace_anyway.append(name)
            elif surging < max_surge:
                candidates.append(name)
        elif not podutil.is_available(new, min_ready, now):
            surging += 1
        else:
            plan.delete.append(Delete(old, "update"))
    room = max(0, min(max_surge - surging, len(candidates)))
    plan.create_on = [*replace_anyway, *candidates[:room]]
    return plan


# --- status ----------------------------------------------------------------------------------


def status_counts(
    ds: Obj, nodes: Sequence[Obj], pods: NodePods, revision_hash: str, now: datetime
) -> dict[str, int]:
    """``updateDaemonSetStatus``'s counts; each node is judged by its oldest pod."""
    min_ready = int(spec(ds).get("minReadySeconds") or 0)
    template = _template(ds)
    counts = dict.fromkeys(
        (
            "desiredNumberScheduled",
            "currentNumberScheduled",
            "numberMisscheduled",
            "numberReady",
            "numberAvailable",
            "updatedNumberScheduled",
        ),
        0,
    )
    for node in nodes:
        # Pods both finished and deleted are gone for every purpose.
        on_node = [
            p
            for p in pods.get(name_of(node), [])
            if not (podutil.is_terminal(p) and podutil.is_terminating(p))
        ]
        if not should_run(template, node)[0]:
            counts["numberMisscheduled"] += 1 if on_node else 0
            continue
        counts["desiredNumberScheduled"] += 1
        if not on_node:
            continue
        counts["currentNumberScheduled"] += 1
        oldest = _oldest_first(on_node)[0]
        if podutil.is_ready(oldest):
            counts["numberReady"] += 1
            if podutil.is_available(oldest, min_ready, now):
                counts["numberAvailable"] += 1
        if is_updated(oldest, revision_hash):
            counts["updatedNumberScheduled"] += 1
    counts["numberUnavailable"] = counts["desiredNumberScheduled"] - counts["numberAvailable"]
    return counts
