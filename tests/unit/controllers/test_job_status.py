"""The Job controller's decisions over its pods: counts, back-off, limits, deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.controllers import job_status as js
from corral.clock import rfc3339
from corral.objects import Obj

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def job(status: Obj | None = None, restart: str = "Never", **spec: Any) -> Obj:
    return {
        "metadata": {"name": "j"},
        "spec": {
            "parallelism": 1,
            "backoffLimit": 6,
            **spec,
            "template": {"spec": {"restartPolicy": restart}},
        },
        "status": status or {},
    }


def pod(phase: str = "Running", finished: datetime | None = None, **extra: Any) -> Obj:
    status: Obj = {"phase": phase}
    if finished is not None:
        status["containerStatuses"] = [
            {"name": "c", "state": {"terminated": {"finishedAt": rfc3339(finished)}}}
        ]
    status.update(extra)
    return {"metadata": {"name": "p", "creationTimestamp": rfc3339(NOW)}, "status": status}


def test_counts_never_go_down() -> None:
    pods = [pod("Succeeded"), pod("Failed"), pod("Running"), pod("Pending")]
    counts = js.count_pods(job(), pods)
    assert (len(counts.active), counts.succeeded, counts.failed) == (2, 1, 1)
    # Finished pods deleted by hand: status keeps what it counted.
    kept = js.count_pods(job({"succeeded": 3, "failed": 2}), pods)
    assert (kept.succeeded, kept.failed) == (3, 2)


def test_terminating_pods_are_not_active() -> None:
    going = pod("Running")
    going["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    counts = js.count_pods(job(), [going])
    assert counts.active == [] and counts.terminating == 1


@pytest.mark.parametrize(
    ("completions", "parallelism", "succeeded", "want"),
    [(3, 3, 0, 3), (3, 3, 2, 1), (5, 2, 1, 2), (3, 3, 3, 0), (None, 4, 0, 4), (None, 4, 1, 0)],
)
def test_wanted_active(
    completions: int | None, parallelism: int, succeeded: int, want: int
) -> None:
    spec: Obj = {"parallelism": parallelism}
    if completions is not None:
        spec["completions"] = completions
    assert js.wanted_active(job(**spec), succeeded) == want


def test_suspended_wants_nothing() -> None:
    assert js.wanted_active(job(parallelism=3, completions=3, suspend=True), 0) == 0


def test_complete_with_and_without_completions() -> None:
    done = js.count_pods(job(), [pod("Succeeded"), pod("Succeeded")])
    assert js.is_complete(job(completions=2), done)
    assert not js.is_complete(job(completions=3), done)
    queue = job(parallelism=2)
    assert js.is_complete(queue, js.count_pods(queue, [pod("Succeeded"), pod("Failed")]))
    assert not js.is_complete(queue, js.count_pods(queue, [pod("Succeeded"), pod("Running")]))


def test_backoff_limit_counts_failed_pods() -> None:
    spec = {"backoffLimit": 2}
    two = js.count_pods(job(**spec), [pod("Failed"), pod("Failed")])
    three = js.count_pods(job(**spec), [pod("Failed"), pod("Failed"), pod("Failed")])
    assert not js.past_backoff_limit(job(**spec), two)
    assert js.past_backoff_limit(job(**spec), three)
    assert js.past_backoff_limit(job(backoffLimit=0), js.count_pods(job(), [pod("Failed")]))


def test_on_failure_counts_container_restarts() -> None:
    restarted = pod("Running", containerStatuses=[{"name": "c", "restartCount": 2}])
    on_failure = job(restart="OnFailure", backoffLimit=2)
    assert js.past_backoff_limit(on_failure, js.count_pods(on_failure, [restarted]))
    never = job(restart="Never", backoffLimit=2)
    assert not js.past_backoff_limit(never, js.count_pods(never, [restarted]))


@pytest.mark.parametrize(
    ("failures", "seconds_ago", "remaining"),
    [
        (0, 0, 0.0),
        (1, 0, 10.0),
        (1, 4, 6.0),
        (1, 10, 0.0),
        (2, 0, 20.0),
        (3, 0, 40.0),
        (6, 0, 320.0),
        (7, 0, 360.0),  # 640 s, capped at 6 minutes
        (12, 0, 360.0),
    ],
)
def test_backoff_doubles_from_10s_to_6_minutes(
    failures: int, seconds_ago: int, remaining: float
) -> None:
    last = NOW - timedelta(seconds=seconds_ago)
    pods = [pod("Failed", last - timedelta(seconds=i)) for i in range(failures)]
    assert js.backoff_remaining(pods, NOW) == pytest.approx(remaining)


def test_a_success_resets_the_backoff() -> None:
    pods = [
        pod("Failed", NOW - timedelta(seconds=30)),
        pod("Failed", NOW - timedelta(seconds=20)),
        pod("Succeeded", NOW - timedelta(seconds=10)),
        pod("Failed", NOW - timedelta(seconds=1)),
    ]
    # One failure since the last success: 10 s from it.
    assert js.backoff_remaining(pods, NOW) == pytest.approx(9.0)


def test_deadline_from_start_time() -> None:
    started = {"startTime": rfc3339(NOW - timedelta(seconds=50))}
    assert js.deadline_in(job(started, activeDeadlineSeconds=60), NOW) == pytest.approx(10)
    assert js.deadline_in(job(started, activeDeadlineSeconds=30), NOW) == pytest.approx(-20)
    assert js.deadline_in(job(started), NOW) is None


def test_status_leaves_zero_counts_out_and_starts_the_clock() -> None:
    counts = js.count_pods(job(), [])
    desired = js.desired_status(job(), counts, 0, NOW)
    assert desired["startTime"] == rfc3339(NOW)
    assert desired["active"] is None and desired["ready"] == 0
    assert js.desired_status(job(suspend=True), counts, 0, NOW)["startTime"] is None
    assert js.status_patch({"startTime": rfc3339(NOW)}, {"startTime": rfc3339(NOW)}) is None


def test_finished_condition_and_new_condition() -> None:
    failed = js.new_condition(js.FAILED, js.DEADLINE_EXCEEDED, NOW)
    assert failed == {
        "type": "Failed",
        "status": "True",
        "lastProbeTime": rfc3339(NOW),
        "lastTransitionTime": rfc3339(NOW),
        "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline",
    }
    assert js.finished_condition(job({"conditions": [failed]})) == failed
    suspended = {"type": "Suspended", "status": "True"}
    assert js.finished_condition(job({"conditions": [suspended]})) is None


def test_suspending_and_resuming() -> None:
    suspended = job(suspend=True)
    condition, event, message = js.suspension_change(suspended, NOW) or ({}, "", "")
    assert (condition["status"], condition["reason"], event) == (
        "True",
        "JobSuspended",
        "Suspended",
    )
    assert message == "Job suspended"
    assert js.suspension_change(job({"conditions": [condition]}, suspend=True), NOW) is None
    assert js.suspension_change(job(), NOW) is None  # never suspended
    later = NOW + timedelta(minutes=5)
    resumed = job({"conditions": [condition], "startTime": rfc3339(NOW)})
    change = js.suspension_change(resumed, later)
    assert change is not None and change[0]["reason"] == "JobResumed" and change[1] == "Resumed"
    desired: Obj = {"conditions": [condition], "startTime": rfc3339(NOW)}
    js.apply_suspension(desired, change[0], later)
    assert desired["startTime"] == rfc3339(later)  # the deadline counts from the resume
    assert [c["status"] for c in desired["conditions"]] == ["False"]


def test_no_deadline_while_suspended() -> None:
    started = {"startTime": rfc3339(NOW - timedelta(seconds=50))}
    assert js.deadline_in(job(started, activeDeadlineSeconds=30, suspend=True), NOW) is None
