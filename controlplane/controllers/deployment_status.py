"""A Deployment's status: replica counts, the Available and Progressing conditions.

Counts come from the ReplicaSets' status, which the ReplicaSet controller
keeps (``availableReplicas`` there already honours ``minReadySeconds``).
Progress is judged as in Kubernetes' ``progress.go``: a rollout makes
progress when new pods appear or become available or old ones go; with no
progress for ``progressDeadlineSeconds`` after the Progressing condition
last moved, the condition turns False with ProgressDeadlineExceeded. Every
time comes from the injected clock.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timedelta

from controlplane.controllers import deployment_objects as o
from controlplane.controllers.deployment_rollout import max_unavailable
from corral.clock import parse_rfc3339, rfc3339
from corral.objects import Obj

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"

# Progressing reasons.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"

# Available reasons.
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

# Kubernetes treats the int32 maximum as "no deadline".
_NO_DEADLINE = 2**31 - 1


def new_condition(
    condition_type: str, status: str, reason: str, message: str, now: datetime
) -> Obj:
    stamp = rfc3339(now)
    return {
        "type": condition_type,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Obj, condition_type: str) -> Obj | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == condition_type:
            found: Obj = condition
            return found
    return None


def remove_condition(status: Obj, condition_type: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != condition_type]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def set_condition(status: Obj, condition: Obj) -> None:
    """``SetDeploymentCondition``: same status and reason leave it alone entirely;
    same status keeps the transition time."""
    current = get_condition(status, condition["type"])
    if (
        current is not None
        and current.get("status") == condition["status"]
        and current.get("reason") == condition.get("reason")
    ):
        return
    condition = dict(condition)
    if current is not None and current.get("status") == condition["status"]:
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def has_progress_deadline(d: Obj) -> bool:
    deadline = o.spec(d).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != _NO_DEADLINE


def calculate_status(d: Obj, all_rs: Sequence[Obj | None], new_rs: Obj | None) -> Obj:
    """Counts from the ReplicaSets, conditions carried over, Available recomputed."""
    replica_sets = [rs for rs in all_rs if rs is not None]
    available = sum(o.available_replicas(rs) for rs in replica_sets)
    total = sum(o.replicas(rs) for rs in replica_sets)
    current = o.status(d)
    status: Obj = {
        "observedGeneration": o.generation(d),
        "replicas": sum(o.actual_replicas(rs) for rs in replica_sets),
        "updatedReplicas": o.actual_replicas(new_rs) if new_rs is not None else 0,
        "readyReplicas": sum(o.ready_replicas(rs) for rs in replica_sets),
        "availableReplicas": available,
        # More available than asked for (while scaling down) is not negative unavailability.
        "unavailableReplicas": max(0, total - available),
    }
    if current.get("collisionCount") is not None:
        status["collisionCount"] = current["collisionCount"]
    if current.get("conditions"):
        status["conditions"] = copy.deepcopy(current["conditions"])
    return status


def set_availability(d: Obj, status: Obj, now: datetime) -> None:
    if status["availableReplicas"] >= o.replicas(d) - max_unavailable(d):
        condition = new_condition(
            AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now
        )
    else:
        condition = new_condition(
            AVAILABLE,
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, condition)


def deployment_complete(d: Obj, status: Obj) -> bool:
    """Every replica updated, no old ones left, availability within bounds, spec observed."""
    desired = o.replicas(d)
    return (
        int(status.get("updatedReplicas") or 0) == desired
        and int(status.get("replicas") or 0) == desired
        and int(status.get("availableReplicas") or 0) >= desired - max_unavailable(d)
        and int(status.get("observedGeneration") or 0) >= o.generation(d)
    )


def deployment_progressing(d: Obj, new_status: Obj) -> bool:
    """New pods appeared, old pods went, or more became available, since the last status."""
    old = o.status(d)
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = int(new_status.get("replicas") or 0) - int(new_status.get("updatedReplicas") or 0)
    return (
        int(new_status.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
        or new_old < old_old
        or int(new_status.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0)
    )


def _deadline(d: Obj, condition: Obj) -> datetime | None:
    stamp = condition.get("lastUpdateTime")
    if not stamp:
        return None
    seconds = int(o.spec(d).get("progressDeadlineSeconds") or 0)
    return parse_rfc3339(str(stamp)) + timedelta(seconds=seconds)


def timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    """No progress since the Progressing condition last moved, for longer than the deadline."""
    if not has_progress_deadline(d):
        return False
    condition = get_condition(status, PROGRESSING)
    if condition is None:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    deadline = _deadline(d, condition)
    return deadline is not None and deadline < now


def replica_failure(all_rs: Sequence[Obj | None], new_rs: Obj | None) -> Obj | None:
    """A ReplicaSet's ReplicaFailure (pods it could not create), the new one's first."""
    for rs in [new_rs, *all_rs]:
        if rs is None:
            continue
        for condition in o.status(rs).get("conditions") or []:
            if condition.get("type") == REPLICA_FAILURE:
                return {
                    "type": REPLICA_FAILURE,
                    "status": condition.get("status", "True"),
                    "lastUpdateTime": condition.get("lastTransitionTime"),
                    "lastTransitionTime": condition.get("lastTransitionTime"),
                    "reason": condition.get("reason"),
                    "message": condition.get("message"),
                }
    return None


def rollout_status(d: Obj, all_rs: Sequence[Obj | None], new_rs: Obj | None, now: datetime) -> Obj:
    """``syncRolloutStatus``'s new status: counts, Available, Progressing moved on, and
    any ReplicaFailure of the ReplicaSets brought up to the Deployment."""
    status = calculate_status(d, all_rs, new_rs)
    set_availability(d, status, now)
    failure = replica_failure(all_rs, new_rs)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
        return status
    current = get_condition(o.status(d), PROGRESSING)
    complete_before = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if complete_before:
        # A resync of a finished rollout: nothing to estimate.
        return status
    subject = (
        f'ReplicaSet "{o.name_of(new_rs)}"'
        if new_rs is not None
        else f'Deployment "{o.name_of(d)}"'
    )
    if deployment_complete(d, status):
        set_condition(
            status,
            new_condition(
                PROGRESSING,
                "True",
                NEW_RS_AVAILABLE,
                f"{subject} has successfully progressed.",
                now,
            ),
        )
    elif deployment_progressing(d, status):
        condition = new_condition(
            PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.", now
        )
        # Progress moves lastUpdateTime even when the reason stays the same,
        # which set_condition alone would not do: that is what restarts the clock.
        if current is not None:
            if current.get("status") == "True":
                condition["lastTransitionTime"] = current.get("lastTransitionTime")
            remove_condition(status, PROGRESSING)
        set_condition(status, condition)
    elif timed_out(d, status, now):
        set_condition(
            status,
            new_condition(
                PROGRESSING, "False", TIMED_OUT, f"{subject} has timed out progressing.", now
            ),
        )
    return status


def requeue_after(d: Obj, status: Obj, now: datetime) -> float | None:
    """Seconds until the progress deadline should be checked again, or None.

    A stuck rollout produces no events, so without this nothing would look
    at it when its deadline passes (kubernetes#34458).
    """
    condition = get_condition(status, PROGRESSING)
    if not has_progress_deadline(d) or condition is None:
        return None
    if deployment_complete(d, status) or condition.get("reason") == TIMED_OUT:
        return None
    deadline = _deadline(d, condition)
    if deadline is None:
        return None
    # One second past the deadline: timestamps are stored to the second, and
    # a check exactly at the deadline would not yet see it passed.
    return max(0.0, (deadline - now).total_seconds()) + 1.0


def paused_condition(d: Obj, now: datetime) -> Obj | None:
    """``checkPausedConditions``: an Unknown Progressing condition on pause and on resume.

    It restarts the deadline on resume, so time spent paused never counts
    as lack of progress. None when nothing changes.
    """
    if not has_progress_deadline(d):
        return None
    current = get_condition(o.status(d), PROGRESSING)
    if current is not None and current.get("reason") == TIMED_OUT:
        return None
    paused_before = current is not None and current.get("reason") == PAUSED
    if o.spec(d).get("paused") and not paused_before:
        return new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now)
    if not o.spec(d).get("paused") and paused_before:
        return new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now)
    return None
