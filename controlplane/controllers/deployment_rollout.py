"""The replica arithmetic of a rollout, as Kubernetes' deployment controller does it.

Everything here is pure: it reads Deployments and ReplicaSets and says what
sizes the ReplicaSets should have; ``deployment.py`` does the writing.

- ``maxSurge`` and ``maxUnavailable`` are ints or percentages of
  ``spec.replicas``; surge rounds up, unavailable rounds down, and when both
  come to 0 unavailable becomes 1 so a rollout can always move
  (``ResolveFenceposts``).
- A rolling update scales the new ReplicaSet up while the total stays within
  ``replicas + maxSurge``, and old ones down while the available pods stay
  at or above ``replicas - maxUnavailable``; unhealthy old pods go first.
- When ``spec.replicas`` changes mid-rollout (or while paused), every active
  ReplicaSet grows or shrinks in proportion to its size, using the
  ``max-replicas`` annotation each carries from its last scaling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from controlplane.controllers import deployment_objects as o
from controlplane.controllers.deployment_objects import DESIRED_REPLICAS, MAX_REPLICAS
from corral.objects import Obj


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as is, ``"25%"`` of ``total`` rounded."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: {value!r} is not a percentage")
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: {value!r} is not a percentage") from None
    product = percent * total
    # Integer arithmetic, so 29% of 100 is exactly 29 (floats make it 29.000000000000004).
    return -(-product // 100) if round_up else product // 100


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """(surge, unavailable) for ``desired`` replicas; never both 0."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        # Validation refuses an explicit 0/0, but rounding down can reach it
        # (1% of 10). Allowing one unavailable pod keeps the rollout moving
        # where a surge pod might not fit.
        unavailable = 1
    return surge, unavailable


def is_rolling(d: Obj) -> bool:
    strategy = o.spec(d).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") == "RollingUpdate")


def _rolling_params(d: Obj) -> tuple[int | str | None, int | str | None]:
    rolling = (o.spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    surge, unavailable = _rolling_params(d)
    return resolve_fenceposts(surge, unavailable, o.replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    surge, unavailable = _rolling_params(d)
    return resolve_fenceposts(surge, unavailable, o.replicas(d))[1]


def min_available(d: Obj) -> int:
    return o.replicas(d) - max_unavailable(d)


def total_replicas(replica_sets: Sequence[Obj | None]) -> int:
    return sum(o.replicas(rs) for rs in replica_sets if rs is not None)


def total_available(replica_sets: Sequence[Obj | None]) -> int:
    return sum(o.available_replicas(rs) for rs in replica_sets if rs is not None)


def active(replica_sets: Sequence[Obj | None]) -> list[Obj]:
    """``FilterActiveReplicaSets``: those asked to run at least one pod."""
    return [rs for rs in replica_sets if rs is not None and o.replicas(rs) > 0]


def new_rs_replicas(d: Obj, all_rs: Sequence[Obj | None], new_rs: Obj) -> int:
    """``NewRSNewReplicas``: how far the new ReplicaSet may grow right now."""
    if not is_rolling(d):
        return o.replicas(d)
    surge, _ = _rolling_params(d)
    max_total = o.replicas(d) + scaled_value(surge, o.replicas(d), round_up=True)
    current = total_replicas(all_rs)
    if current >= max_total:
        return o.replicas(new_rs)
    scale_up = min(max_total - current, o.replicas(d) - o.replicas(new_rs))
    return o.replicas(new_rs) + scale_up


class ScaleDownLimit(Protocol):
    """Something that may forbid part of a scale-down (a PodDisruptionBudget)."""

    def allow(self, rs: Obj, current: int, target: int) -> int:
        """The smallest size from ``target`` up to ``current`` that ``rs`` may shrink to now."""
        ...


class NoLimit:
    def allow(self, rs: Obj, current: int, target: int) -> int:
        return target


@dataclass
class Resize:
    rs: Obj
    to: int


def old_scale_downs(
    d: Obj,
    all_rs: Sequence[Obj],
    old_rs: Sequence[Obj],
    new_rs: Obj,
    limit: ScaleDownLimit | None = None,
) -> list[Resize]:
    """``reconcileOldReplicaSets``: which old ReplicaSets shrink, and to what.

    Two passes, as in Kubernetes. First unhealthy old pods go, within what
    the total may lose without dropping the new ReplicaSet's unavailable
    pods below the minimum. Then available old pods go, as far as
    availability stays at ``replicas - maxUnavailable``. ``limit`` may hold
    back either (a PodDisruptionBudget); it is asked for every step.
    """
    limit = limit or NoLimit()
    if total_replicas(old_rs) == 0:
        return []
    sizes = {o.name_of(rs): o.replicas(rs) for rs in all_rs}
    minimum = min_available(d)
    new_unavailable = o.replicas(new_rs) - o.available_replicas(new_rs)
    max_scaled_down = sum(sizes.values()) - minimum - new_unavailable
    if max_scaled_down <= 0:
        return []
    steps: list[Resize] = []
    by_age = sorted(old_rs, key=o.creation_key)

    # Pass 1: unhealthy replicas cannot lower availability, and left alone
    # they would block the rollout (kubernetes#16737).
    cleaned = 0
    for rs in by_age:
        if cleaned >= max_scaled_down:
            break
        size = sizes[o.name_of(rs)]
        unhealthy = size - o.available_replicas(rs)
        if size == 0 or unhealthy <= 0:
            continue
        target = limit.allow(rs, size, size - min(max_scaled_down - cleaned, unhealthy))
        if target < size:
            steps.append(Resize(rs, target))
            cleaned += size - target
            sizes[o.name_of(rs)] = target

    # Pass 2: available replicas, oldest ReplicaSet first.
    available = total_available(all_rs)
    if available > minimum:
        budget = available - minimum
        taken = 0
        for rs in by_age:
            if taken >= budget:
                break
            size = sizes[o.name_of(rs)]
            if size == 0:
                continue
            target = limit.allow(rs, size, size - min(size, budget - taken))
            if target < size:
                steps.append(Resize(rs, target))
                taken += size - target
                sizes[o.name_of(rs)] = target
    return steps


# --- scaling events: spec.replicas changed, not the template ----------------------------------


def is_scaling_event(d: Obj, replica_sets: Sequence[Obj | None]) -> bool:
    """Whether an active ReplicaSet was sized for a different ``spec.replicas``."""
    for rs in active(replica_sets):
        desired = o.int_annotation(rs, DESIRED_REPLICAS)
        if desired is not None and desired != o.replicas(d):
            return True
    return False


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The new ReplicaSet runs, and was sized for, every replica of the Deployment."""
    if rs is None:
        return False
    desired = o.int_annotation(rs, DESIRED_REPLICAS)
    return o.replicas(rs) == o.replicas(d) and desired == o.replicas(d)


def find_active_or_latest(new_rs: Obj | None, old_rs: Sequence[Obj]) -> Obj | None:
    """The one ReplicaSet to give every replica, or None when several share them."""
    if new_rs is None and not old_rs:
        return None
    newest_first = sorted(old_rs, key=o.creation_key, reverse=True)
    running = active([*newest_first, new_rs])
    if not running:
        return new_rs if new_rs is not None else newest_first[0]
    if len(running) == 1:
        return running[0]
    return None


def _round_half_away(value: float) -> int:
    # Go's math.Round; Python's round() would send 2.5 to 2.
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


def _fraction(rs: Obj, d: Obj) -> int:
    """``getReplicaSetFraction``: how many replicas ``rs`` gains (or loses) in a resize."""
    if o.replicas(d) == 0:
        return -o.replicas(rs)
    deployment_max = o.replicas(d) + max_surge(d)
    annotated = o.int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        # Sized before annotations existed: the current total is the best guess,
        # and the min/max against what is left keeps the result within bounds.
        annotated = int(o.status(d).get("replicas") or 0)
    if annotated == 0:
        return 0
    return _round_half_away(o.replicas(rs) * deployment_max / annotated) - o.replicas(rs)


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if o.replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d: Obj, new_rs: Obj | None, old_rs: Sequence[Obj]) -> list[Resize]:
    """The ``scale`` step of a resize; each ``Resize.to`` is a new size, up or down.

    One active ReplicaSet takes everything; a saturated new one leaves the
    old ones nothing; otherwise (rolling updates only) the replicas to add
    or remove are shared in proportion, biggest first, and what rounding
    leaves over goes to the biggest.
    """
    only = find_active_or_latest(new_rs, old_rs)
    if only is not None:
        if o.replicas(only) == o.replicas(d):
            return []
        return [Resize(only, o.replicas(d))]
    if is_saturated(d, new_rs):
        return [Resize(rs, 0) for rs in active(old_rs)]
    if not is_rolling(d):
        return []
    running = active([*old_rs, new_rs])
    allowed_size = o.replicas(d) + max_surge(d) if o.replicas(d) > 0 else 0
    to_add = allowed_size - total_replicas(running)
    if to_add > 0:
        # Biggest first; between equals the newer grows first.
        running.sort(key=o.creation_key, reverse=True)
        running.sort(key=o.replicas, reverse=True)
    elif to_add < 0:
        # Biggest first; between equals the older shrinks first.
        running.sort(key=o.creation_key)
        running.sort(key=o.replicas, reverse=True)
    sizes: list[int] = []
    added = 0
    for rs in running:
        share = _proportion(rs, d, to_add, added)
        sizes.append(o.replicas(rs) + share)
        added += share
    if running and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return [Resize(rs, size) for rs, size in zip(running, sizes, strict=True)]
