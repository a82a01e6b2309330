"""Status counts, the Available and Progressing conditions, and the progress deadline."""

from __future__ import annotations

from datetime import timedelta

from controlplane.controllers import deployment_status as st
from corral.clock import ManualClock, rfc3339
from tests.unit.controllers.test_deployment_builders import deployment, replica_set


def test_counts_come_from_the_replica_sets() -> None:
    d = deployment(4, surge=1, unavailable=1, generation=3)
    old = replica_set("web-old", 2, actual=3, available=2, ready=3)
    new = replica_set("web-new", 3, actual=2, available=1)
    status = st.calculate_status(d, [old, new], new)
    assert status == {
        "observedGeneration": 3,
        "replicas": 5,
        "updatedReplicas": 2,
        "readyReplicas": 4,
        "availableReplicas": 3,
        "unavailableReplicas": 2,
    }
    # More available than asked for is never negative unavailability.
    surplus = replica_set("web-new", 1, actual=3, available=3)
    assert st.calculate_status(d, [surplus], surplus)["unavailableReplicas"] == 0


def test_available_condition_follows_max_unavailable() -> None:
    clock = ManualClock()
    d = deployment(4, surge=1, unavailable=1)
    status = st.calculate_status(d, [replica_set("web-a", 4, available=3)], None)
    st.set_availability(d, status, clock.now())
    condition = st.get_condition(status, st.AVAILABLE)
    assert condition is not None and condition["status"] == "True"
    assert condition["reason"] == st.MIN_AVAILABLE
    status = st.calculate_status(d, [replica_set("web-a", 4, available=2)], None)
    st.set_availability(d, status, clock.now())
    condition = st.get_condition(status, st.AVAILABLE)
    assert condition is not None and condition["reason"] == st.MIN_UNAVAILABLE


def test_set_condition_keeps_times_unless_something_changes() -> None:
    clock = ManualClock()
    status: dict[str, object] = {}
    st.set_condition(status, st.new_condition("X", "True", "A", "m", clock.now()))
    first = rfc3339(clock.now())
    clock.advance(60)
    st.set_condition(status, st.new_condition("X", "True", "A", "m2", clock.now()))
    condition = st.get_condition(status, "X")
    assert condition is not None and condition["lastUpdateTime"] == first  # same reason: untouched
    st.set_condition(status, st.new_condition("X", "True", "B", "m3", clock.now()))
    condition = st.get_condition(status, "X")
    assert condition is not None and condition["reason"] == "B"
    assert condition["lastTransitionTime"] == first  # same status: transition time kept
    assert condition["lastUpdateTime"] == rfc3339(clock.now())


def _progressing(d: dict[str, object], reason: str, at: str, status: str = "True") -> None:
    d["status"] = {
        "observedGeneration": 1,
        "replicas": 10,
        "updatedReplicas": 3,
        "availableReplicas": 8,
        "conditions": [
            {
                "type": "Progressing",
                "status": status,
                "reason": reason,
                "lastUpdateTime": at,
                "lastTransitionTime": at,
            }
        ],
    }


def _stuck() -> tuple[dict[str, object], list[dict[str, object]], dict[str, object]]:
    d = deployment(10, surge=3, unavailable=2, deadline=60)
    new = replica_set("web-new", 3, available=0, created="2026-01-01T00:01:00Z")
    old = replica_set("web-old", 7, available=7)
    return d, [old, new], new


def test_no_progress_past_the_deadline_times_out() -> None:
    clock = ManualClock()
    d, all_rs, new = _stuck()
    _progressing(d, st.NEW_RS_CREATED, rfc3339(clock.now()))
    d["status"]["availableReplicas"] = 7  # type: ignore[index]
    d["status"]["replicas"] = 10  # type: ignore[index]

    clock.advance(30)
    status = st.rollout_status(d, all_rs, new, clock.now())
    condition = st.get_condition(status, st.PROGRESSING)
    assert condition is not None and condition["reason"] == st.NEW_RS_CREATED
    # Come back one second past the deadline: 60 - 30 + 1.
    assert st.requeue_after(d, status, clock.now()) == 31.0

    clock.advance(31)
    status = st.rollout_status(d, all_rs, new, clock.now())
    condition = st.get_condition(status, st.PROGRESSING)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", st.TIMED_OUT)
    assert condition["message"] == 'ReplicaSet "web-new" has timed out progressing.'
    assert st.requeue_after(d, status, clock.now()) is None  # nothing left to wait for


def test_progress_restarts_the_deadline() -> None:
    clock = ManualClock()
    d, all_rs, new = _stuck()
    start = rfc3339(clock.now())
    _progressing(d, st.RS_UPDATED, start)
    d["status"]["updatedReplicas"] = 2  # type: ignore[index]
    clock.advance(50)
    status = st.rollout_status(d, all_rs, new, clock.now())
    condition = st.get_condition(status, st.PROGRESSING)
    assert condition is not None and condition["reason"] == st.RS_UPDATED
    assert condition["lastUpdateTime"] == rfc3339(clock.now())
    assert condition["lastTransitionTime"] == start
    assert st.requeue_after(d, status, clock.now()) == 61.0


def test_a_finished_rollout_is_available_and_stays_so() -> None:
    clock = ManualClock()
    d = deployment(3, surge=1, unavailable=0)
    new = replica_set("web-new", 3)
    _progressing(d, st.RS_UPDATED, rfc3339(clock.now()))
    status = st.rollout_status(d, [new], new, clock.now())
    condition = st.get_condition(status, st.PROGRESSING)
    assert condition is not None and condition["reason"] == st.NEW_RS_AVAILABLE
    assert condition["message"] == 'ReplicaSet "web-new" has successfully progressed.'
    assert st.deployment_complete(d, status)
    # Long after: a finished rollout never times out.
    d["status"] = status
    clock.advance(3600)
    again = st.rollout_status(d, [new], new, clock.now())
    condition = st.get_condition(again, st.PROGRESSING)
    assert condition is not None and condition["reason"] == st.NEW_RS_AVAILABLE


def test_complete_needs_the_current_generation_observed() -> None:
    d = deployment(3, generation=2)
    status = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    assert not st.deployment_complete(d, status)
    assert st.deployment_complete(d, {**status, "observedGeneration": 2})


def test_without_a_deadline_there_is_no_progressing_condition() -> None:
    clock = ManualClock()
    d = deployment(3, deadline=None)
    _progressing(d, st.RS_UPDATED, rfc3339(clock.now()))
    status = st.rollout_status(d, [replica_set("web-new", 3)], None, clock.now())
    assert st.get_condition(status, st.PROGRESSING) is None
    assert not st.timed_out(d, status, clock.now() + timedelta(days=1))


def test_pause_and_resume_conditions() -> None:
    clock = ManualClock()
    d = deployment(3, paused=True)
    paused = st.paused_condition(d, clock.now())
    assert paused is not None and (paused["status"], paused["reason"]) == ("Unknown", st.PAUSED)
    d["status"] = {"conditions": [paused]}
    assert st.paused_condition(d, clock.now()) is None
    d["spec"]["paused"] = False
    resumed = st.paused_condition(d, clock.now())
    assert resumed is not None and resumed["reason"] == st.RESUMED
    # A timed-out rollout keeps saying so.
    _progressing(d, st.TIMED_OUT, rfc3339(clock.now()), status="False")
    d["spec"]["paused"] = True
    assert st.paused_condition(d, clock.now()) is None


def test_resuming_restarts_the_deadline() -> None:
    clock = ManualClock()
    d, all_rs, new = _stuck()
    _progressing(d, st.RESUMED, rfc3339(clock.now()), status="Unknown")
    d["status"]["availableReplicas"] = 7  # type: ignore[index]
    clock.advance(59)
    status = st.rollout_status(d, all_rs, new, clock.now())
    condition = st.get_condition(status, st.PROGRESSING)
    assert condition is not None and condition["reason"] == st.RESUMED
    clock.advance(2)
    status = st.rollout_status(d, all_rs, new, clock.now())
    condition = st.get_condition(status, st.PROGRESSING)
    assert condition is not None and condition["reason"] == st.TIMED_OUT


def test_a_replica_set_failure_is_brought_up_and_cleared() -> None:
    clock = ManualClock()
    d = deployment(3)
    new = replica_set("web-new", 3, actual=1)
    new["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": "pods is forbidden",
            "lastTransitionTime": rfc3339(clock.now()),
        }
    ]
    status = st.rollout_status(d, [new], new, clock.now())
    failure = st.get_condition(status, st.REPLICA_FAILURE)
    assert failure is not None and failure["reason"] == "FailedCreate"
    d["status"] = status
    healed = replica_set("web-new", 3)
    assert (
        st.get_condition(st.rollout_status(d, [healed], healed, clock.now()), "ReplicaFailure")
        is None
    )
