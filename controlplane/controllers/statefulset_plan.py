"""What a StatefulSet sync should do next, decided from what the caches show.

Kubernetes' ``updateStatefulSet`` as a pure function: given the set, its
pods, and its current and update revisions, ``plan`` returns the creates
and deletes to make now, in order. The controller carries them out; the
next sync, woken by the watch, plans the next step.

- Every ordinal in ``[start, start+replicas)`` gets a pod. A failed one is
  deleted so that it comes back under the same name.
- OrderedReady: the plan stops at the first ordinal that is missing (after
  creating it), terminating, or not Running and Ready; so pod N+1 exists
  only once pods 0..N are Ready. Scale-down deletes the highest ordinal,
  one at a time, only when all the others are healthy.
- Parallel: all of the above at once, without waiting.
- RollingUpdate: once every pod is in place, from the highest ordinal down
  to ``partition``, delete one pod of an old revision and wait until its
  replacement is Ready (with ``maxUnavailable``, up to that many at once).
  Ordinals below ``partition`` keep, and are recreated at, the current
  revision.
- OnDelete: pods change revision only when someone deletes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from controlplane.controllers import podutil
from controlplane.controllers.statefulset_identity import (
    identity_matches,
    is_healthy,
    is_member,
    is_running_and_ready,
    ordinal_of,
    ordinal_start,
    ordinals,
    revision_of,
)
from corral import replication
from corral.objects import Obj, spec


@dataclass(frozen=True)
class Create:
    ordinal: int
    revision: str  # the ControllerRevision name the new pod runs


@dataclass(frozen=True)
class Delete:
    pod: Obj
    reason: str  # "failed", "scale-down" or "update"


@dataclass(frozen=True)
class FixIdentity:
    pod: Obj


Action = Create | Delete | FixIdentity


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    # Why the plan stopped early, for logs and tests; "" when it went through.
    waiting: str = ""


def _policy_parallel(sts: Obj) -> bool:
    return spec(sts).get("podManagementPolicy") == "Parallel"


def _strategy(sts: Obj) -> Obj:
    found: Obj = spec(sts).get("updateStrategy") or {"type": "RollingUpdate"}
    return found


def partition(sts: Obj) -> int:
    rolling = _strategy(sts).get("rollingUpdate") or {}
    return int(rolling.get("partition") or 0)


def _max_unavailable(sts: Obj, replicas: int) -> int | None:
    """``rollingUpdate.maxUnavailable`` as a count (at least 1); None when unset."""
    raw = (_strategy(sts).get("rollingUpdate") or {}).get("maxUnavailable")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.endswith("%"):
        # Kubernetes rounds a percentage down here, and never below one.
        return max(1, replicas * int(raw[:-1]) // 100)
    return max(1, int(raw))


def revision_for_new_pod(sts: Obj, ordinal: int, current: str, update: str) -> str:
    """The revision a (re)created pod runs: ordinals below the partition stay current."""
    rolling = _strategy(sts).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and ordinal - ordinal_start(sts) < partition(sts):
        return current
    return update


def split(sts: Obj, pods: list[Obj]) -> tuple[dict[int, Obj], list[Obj]]:
    """The set's pods by wanted ordinal, and the condemned ones (highest ordinal first)."""
    wanted = ordinals(sts)
    slots: dict[int, Obj] = {}
    condemned: list[Obj] = []
    for pod in pods:
        ordinal = ordinal_of(pod)
        if ordinal is None or not is_member(sts, pod):
            continue
        if ordinal in wanted:
            slots[ordinal] = pod
        else:
            condemned.append(pod)
    condemned.sort(key=lambda p: ordinal_of(p) or 0, reverse=True)
    return slots, condemned


def plan(sts: Obj, pods: list[Obj], current: str, update: str, now: datetime) -> Plan:
    min_ready = int(spec(sts).get("minReadySeconds") or 0)
    monotonic = not _policy_parallel(sts)
    slots, condemned = split(sts, pods)
    out = Plan()

    def healthy(pod: Obj) -> bool:
        return is_healthy(pod, min_ready, now)

    unhealthy = [
        p
        for p in [*(slots[o] for o in sorted(slots)), *condemned]
        if not is_running_and_ready(p) or podutil.is_terminating(p)
    ]
    first_unhealthy = unhealthy[0] if unhealthy else None

    for ordinal in ordinals(sts):
        pod = slots.get(ordinal)
        if pod is not None and podutil.is_terminal(pod) and not podutil.is_terminating(pod):
            out.actions.append(Delete(pod, "failed"))
            if monotonic:
                out.waiting = f"pod {ordinal} failed and is being replaced"
                return out
            continue
        if pod is None:
            out.actions.append(Create(ordinal, revision_for_new_pod(sts, ordinal, current, update)))
            if monotonic:
                out.waiting = f"pod {ordinal} is being created"
                return out
            continue
        if podutil.is_terminating(pod):
            if monotonic:
                out.waiting = f"pod {ordinal} is terminating"
                return out
            continue
        if not identity_matches(sts, pod):
            out.actions.append(FixIdentity(pod))
        if monotonic and not healthy(pod):
            out.waiting = f"pod {ordinal} is not yet Running and Ready"
            return out

    for pod in condemned:
        if podutil.is_terminating(pod):
            if monotonic:
                out.waiting = f"pod {ordinal_of(pod)} is terminating"
                return out
            continue
        if monotonic and not is_running_and_ready(pod) and pod is not first_unhealthy:
            out.waiting = f"pod {ordinal_of(pod)} must be healthy before it is scaled down"
            return out
        out.actions.append(Delete(pod, "scale-down"))
        if monotonic:
            return out

    if _strategy(sts).get("type", "RollingUpdate") != "RollingUpdate":
        return out
    wanted = list(ordinals(sts))
    lowest = wanted[0] + partition(sts) if wanted else 0
    budget = _max_unavailable(sts, len(wanted))
    if budget is not None:
        _update_with_budget(out, slots, wanted, lowest, update, budget, healthy)
        return out
    # From the highest ordinal down; a replicated set's primary goes last, so
    # its replicas are updated first and it hands over once (docs/replication.md).
    order = [o for o in reversed(wanted) if o >= lowest]
    order.sort(key=lambda o: (found := slots.get(o)) is not None and replication.leads(found))
    for ordinal in order:
        pod = slots.get(ordinal)
        if pod is None:
            out.waiting = f"pod {ordinal} is being created"
            return out
        if revision_of(pod) != update and not podutil.is_terminating(pod):
            out.actions.append(Delete(pod, "update"))
            return out
        if not healthy(pod):
            out.waiting = f"pod {ordinal} is not yet healthy on the update revision"
            return out
    return out


def _update_with_budget(
    out: Plan,
    slots: dict[int, Obj],
    wanted: list[int],
    lowest: int,
    update: str,
    budget: int,
    healthy: Callable[[Obj], bool],
) -> None:
    """The ``maxUnavailable`` rollout: replace up to ``budget`` unavailable pods at a time."""
    unavailable = sum(1 for o in wanted if (p := slots.get(o)) is None or not healthy(p))
    room = budget - unavailable
    for ordinal in reversed(wanted):
        if ordinal < lowest or room <= 0:
            break
        pod = slots.get(ordinal)
        if pod is None or podutil.is_terminating(pod) or revision_of(pod) == update:
            continue
        out.actions.append(Delete(pod, "update"))
        if healthy(pod):
            room -= 1
    if not out.actions:
        out.waiting = "rolling update waits for unavailable pods"


def status_counts(
    sts: Obj, pods: list[Obj], current: str, update: str, now: datetime
) -> dict[str, int]:
    """replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas."""
    min_ready = int(spec(sts).get("minReadySeconds") or 0)
    members = [p for p in pods if is_member(sts, p) and ordinal_of(p) is not None]
    counts = {
        "replicas": len(members),
        "readyReplicas": sum(1 for p in members if is_running_and_ready(p)),
        "availableReplicas": sum(
            1 for p in members if is_running_and_ready(p) and is_healthy(p, min_ready, now)
        ),
        "currentReplicas": sum(
            1 for p in members if not podutil.is_terminating(p) and revision_of(p) == current
        ),
        "updatedReplicas": sum(
            1 for p in members if not podutil.is_terminating(p) and revision_of(p) == update
        ),
    }
    return counts
