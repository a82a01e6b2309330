"""What a Job's pods say about it: counts, back-off, deadlines, and the finishing condition.

Pure functions over wire-form objects, after Kubernetes' job_controller.go,
so that the controller's decisions are unit-tested without an API server.

Counting: Kubernetes counts terminated pods durably with a finalizer on
every pod and ``status.uncountedTerminatedPods``. Corral counts the pods
that are there and never lets a count go down (a succeeded pod deleted by
hand is not "un-succeeded"); the Job's own pods are never deleted once
finished, so the counts are exact unless someone deletes finished pods
while new ones finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from controlplane.controllers import job_indexed, podutil
from corral.clock import rfc3339
from corral.objects import Obj, meta, parse_time, spec, status

# Kubernetes' DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff.
DEFAULT_BACKOFF = 10.0
MAX_BACKOFF = 360.0

COMPLETE = "Complete"
FAILED = "Failed"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
DEADLINE_EXCEEDED = "DeadlineExceeded"
COMPLETIONS_REACHED = "CompletionsReached"
SUSPENDED = "Suspended"

MESSAGES = {
    BACKOFF_LIMIT_EXCEEDED: "Job has reached the specified backoff limit",
    DEADLINE_EXCEEDED: "Job was active longer than specified deadline",
    COMPLETIONS_REACHED: "Reached expected number of succeeded pods",
}


@dataclass(frozen=True)
class PodCounts:
    active: list[Obj]
    succeeded: int
    failed: int
    ready: int
    terminating: int
    # Indexed Jobs only: the succeeded indexes as intervals ("0-2,4").
    completed_indexes: str | None = None


def count_pods(job: Obj, pods: list[Obj]) -> PodCounts:
    """Counts over the Job's pods; terminated counts never drop below what status says."""
    previous = status(job)
    indexes = None
    if job_indexed.is_indexed(job):
        # Each index counts once, however many of its pods succeeded.
        done = job_indexed.completed(job, pods)
        succeeded, indexes = len(done), job_indexed.intervals(done) or None
    else:
        succeeded = sum(1 for p in pods if podutil.phase(p) == "Succeeded")
    failed = sum(1 for p in pods if podutil.phase(p) == "Failed")
    active = [p for p in pods if podutil.is_active(p)]
    return PodCounts(
        active=active,
        succeeded=max(succeeded, int(previous.get("succeeded") or 0)),
        failed=max(failed, int(previous.get("failed") or 0)),
        ready=sum(1 for p in active if podutil.is_ready(p)),
        terminating=sum(
            1 for p in pods if podutil.is_terminating(p) and not podutil.is_terminal(p)
        ),
        completed_indexes=indexes,
    )


# --- conditions -------------------------------------------------------------------------


def finished_condition(job: Obj) -> Obj | None:
    """The Job's true Complete or Failed condition, if it has finished."""
    for found in status(job).get("conditions") or []:
        if found.get("type") in (COMPLETE, FAILED) and found.get("status") == "True":
            result: Obj = found
            return result
    return None


def new_condition(kind: str, reason: str, now: datetime) -> Obj:
    at = rfc3339(now)
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": at,
        "lastTransitionTime": at,
        "reason": reason,
        "message": MESSAGES.get(reason, reason),
    }


def suspension_change(job: Obj, now: datetime) -> tuple[Obj, str, str] | None:
    """The Suspended condition ``spec.suspend`` calls for, with its event's reason and message.

    None when the condition already says what spec says (or the Job was
    never suspended and is not now).
    """
    suspended = bool(spec(job).get("suspend"))
    current = next(
        (c for c in status(job).get("conditions") or [] if c.get("type") == SUSPENDED), None
    )
    is_true = current is not None and current.get("status") == "True"
    if suspended == is_true:
        return None
    reason, message, event = (
        ("JobSuspended", "Job suspended", "Suspended")
        if suspended
        else ("JobResumed", "Job resumed", "Resumed")
    )
    at = rfc3339(now)
    condition = {
        "type": SUSPENDED,
        "status": "True" if suspended else "False",
        "lastProbeTime": at,
        "lastTransitionTime": at,
        "reason": reason,
        "message": message,
    }
    return condition, event, message


def apply_suspension(desired: Obj, condition: Obj, now: datetime) -> None:
    """Write the Suspended condition; a resumed Job's deadline counts from now, as Kubernetes'."""
    others = [c for c in desired.get("conditions") or [] if c.get("type") != SUSPENDED]
    desired["conditions"] = [*others, condition]
    if condition["status"] == "False":
        desired["startTime"] = rfc3339(now)


# --- when to stop ---------------------------------------------------------------------------


def past_backoff_limit(job: Obj, counts: PodCounts) -> bool:
    """More failures than backoffLimit; with OnFailure, container restarts count as failures."""
    limit = int(spec(job).get("backoffLimit", 6))
    if counts.failed > limit:
        return True
    template_spec = spec(spec(job).get("template") or {})
    if template_spec.get("restartPolicy") != "OnFailure" or not counts.active:
        return False
    restarts = sum(
        int(s.get("restartCount") or 0)
        for p in counts.active
        for s in status(p).get("containerStatuses") or []
    )
    return restarts > 0 if limit == 0 else restarts >= limit


def deadline_in(job: Obj, now: datetime) -> float | None:
    """Seconds left before activeDeadlineSeconds runs out (<= 0: it has), None without one."""
    deadline = spec(job).get("activeDeadlineSeconds")
    started = parse_time(status(job).get("startTime"))
    # A suspended Job's deadline does not run: it restarts when the Job resumes.
    if deadline is None or started is None or spec(job).get("suspend"):
        return None
    return (started + timedelta(seconds=int(deadline)) - now).total_seconds()


def is_complete(job: Obj, counts: PodCounts) -> bool:
    completions = spec(job).get("completions")
    if completions is None:
        # A work queue: done once one pod succeeded and none is left running.
        return counts.succeeded > 0 and not counts.active
    return counts.succeeded >= int(completions)


def wanted_active(job: Obj, succeeded: int) -> int:
    """How many pods should run now: parallelism, or fewer when few completions remain."""
    job_spec = spec(job)
    if job_spec.get("suspend"):
        return 0
    parallelism = int(job_spec.get("parallelism", 1))
    completions = job_spec.get("completions")
    if completions is None:
        # A work queue stops starting pods once one has succeeded.
        return 0 if succeeded > 0 else parallelism
    return max(0, min(parallelism, int(completions) - succeeded))


# --- back-off ---------------------------------------------------------------------------------


def finish_time(pod: Obj) -> datetime | None:
    """When a terminated pod finished: its last container's end, else its last condition."""
    ends = [
        at
        for s in status(pod).get("containerStatuses") or []
        if (at := parse_time(((s.get("state") or {}).get("terminated") or {}).get("finishedAt")))
    ]
    if ends:
        return max(ends)
    moments = [
        at
        for c in status(pod).get("conditions") or []
        if (at := parse_time(c.get("lastTransitionTime")))
    ]
    return max(moments) if moments else parse_time(meta(pod).get("creationTimestamp"))


def backoff_remaining(
    pods: list[Obj],
    now: datetime,
    base: float = DEFAULT_BACKOFF,
    cap: float = MAX_BACKOFF,
) -> float:
    """Seconds to wait before creating pods: base doubling per failure since the last success.

    Kubernetes' getRemainingTimeForFailuresCount: 10 s after the first
    failure, 20 s after the second, ..., at most 6 minutes, counted from the
    latest failure.
    """
    last_success = max(
        (t for p in pods if podutil.phase(p) == "Succeeded" and (t := finish_time(p))),
        default=None,
    )
    failures = [
        t
        for p in pods
        if podutil.phase(p) == "Failed"
        and (t := finish_time(p)) is not None
        and (last_success is None or t > last_success)
    ]
    if not failures:
        return 0.0
    delay = min(base * 2 ** (len(failures) - 1), cap)
    return max(0.0, (max(failures) + timedelta(seconds=delay) - now).total_seconds())


# --- status -----------------------------------------------------------------------------------


def desired_status(job: Obj, counts: PodCounts, active: int, now: datetime) -> Obj:
    """The status to write; zero counts left out as Kubernetes' omitempty does."""
    current = status(job)
    out: Obj = {
        "active": active or None,
        "succeeded": counts.succeeded or None,
        "failed": counts.failed or None,
        "ready": counts.ready if active else 0,
        "terminating": counts.terminating,
        "uncountedTerminatedPods": current.get("uncountedTerminatedPods") or {},
        "startTime": current.get("startTime"),
        "completionTime": current.get("completionTime"),
        "conditions": current.get("conditions"),
    }
    if job_indexed.is_indexed(job):
        out["completedIndexes"] = counts.completed_indexes
    if out["startTime"] is None and not spec(job).get("suspend"):
        out["startTime"] = rfc3339(now)
    return out


def status_patch(current: Obj, desired: Obj) -> Obj | None:
    """A merge patch from ``current`` to ``desired`` status; None when nothing changes."""
    patch = {k: v for k, v in desired.items() if current.get(k) != v}
    return patch or None
