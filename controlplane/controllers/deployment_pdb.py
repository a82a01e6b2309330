"""Replication-aware rollouts: PodDisruptionBudgets hold back old-pod scale-downs.

A rolling update is a voluntary disruption, so it honours the budgets that
``drain`` and evictions honour. Before an old ReplicaSet shrinks, every
PodDisruptionBudget whose selector matches its pods is asked how many more
healthy pods may go, and the scale-down is cut to that. The answer is the
smaller of

- the budget's own ``status.disruptionsAllowed``, kept by the disruption
  controller (0 when it has not yet seen the budget's current spec), and
- ``currentHealthy - desiredHealthy`` counted afresh from the pods: Ready
  and not terminating, less the healthy pods that scale-downs already
  asked for are about to take (the ReplicaSet controller removes unready
  pods first, so only the rest count),

because the budget's status lags the pods, and a lag must never let two
scale-downs spend the same disruption. A scale-down that is held waits for
the budget to change; the Deployment is looked at again when it does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controlplane.controllers import deployment_objects as o
from controlplane.controllers import podutil
from corral.api.labels import LabelSelector, SelectorError, selector_from_dict
from corral.objects import Obj

PodsOf = Callable[[Obj], Sequence[Obj]]


def _live(pods: Sequence[Obj]) -> list[Obj]:
    return [p for p in pods if podutil.is_active(p)]


def healthy_losses(rs: Obj, size: int, pods: Sequence[Obj]) -> int:
    """Healthy pods ``rs`` loses at ``size``: the excess after its unready pods go first."""
    live = _live(pods)
    unready = sum(1 for p in live if not podutil.is_ready(p))
    return max(0, len(live) - size - unready)


@dataclass
class Budget:
    pdb: Obj
    selector: LabelSelector
    remaining: int

    def covers(self, rs: Obj) -> bool:
        return self.selector.matches(o.template_labels(rs))


def budget_for(
    pdb: Obj, pods: Sequence[Obj], replica_sets: Sequence[Obj], pods_of: PodsOf
) -> Budget:
    """How many more healthy pods ``pdb`` lets go now (may be negative: over budget)."""
    try:
        selector = selector_from_dict(o.spec(pdb).get("selector"))
    except SelectorError:
        selector = selector_from_dict(None)  # matches nothing, as the disruption controller does
    status = o.status(pdb)
    if int(status.get("observedGeneration") or 0) < o.generation(pdb):
        # The disruption controller has not seen this spec yet; its numbers mean nothing.
        return Budget(pdb, selector, 0)
    healthy = sum(
        1 for p in _live(pods) if podutil.is_ready(p) and selector.matches(o.labels_of(p))
    )
    desired = int(status.get("desiredHealthy") or 0)
    allowed = min(int(status.get("disruptionsAllowed") or 0), healthy - desired)
    pending = sum(
        healthy_losses(rs, o.replicas(rs), pods_of(rs))
        for rs in replica_sets
        if selector.matches(o.template_labels(rs))
    )
    return Budget(pdb, selector, allowed - pending)


@dataclass
class DisruptionBudgets:
    """A ``ScaleDownLimit`` over the budgets of one namespace, spent as it allows."""

    budgets: list[Budget]
    pods_of: PodsOf
    held: list[tuple[Obj, Obj]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        pdbs: Sequence[Obj],
        pods: Sequence[Obj],
        replica_sets: Sequence[Obj],
        pods_of: PodsOf,
    ) -> DisruptionBudgets:
        """``pods`` are the namespace's pods; ``replica_sets`` every one that may shrink."""
        return cls([budget_for(p, pods, replica_sets, pods_of) for p in pdbs], pods_of)

    def allow(self, rs: Obj, current: int, target: int) -> int:
        covering = [b for b in self.budgets if b.covers(rs)]
        if not covering:
            return target
        pods = self.pods_of(rs)
        spare = max(0, min(b.remaining for b in covering))
        lost_now = healthy_losses(rs, current, pods)
        live = _live(pods)
        unready = sum(1 for p in live if not podutil.is_ready(p))
        # The smallest size whose extra healthy losses fit in what is spare.
        floor = len(live) - unready - lost_now - spare
        allowed = min(current, max(target, floor))
        spent = healthy_losses(rs, allowed, pods) - lost_now
        for budget in covering:
            budget.remaining -= spent
        if allowed > target:
            tightest = min(covering, key=lambda b: b.remaining)
            self.held.append((rs, tightest.pdb))
        return allowed
