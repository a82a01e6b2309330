"""The fault tests' checker (tests/e2e/test_ha_faults.py) fails on each kind of loss it names."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_ha_faults import COUNTER, Election, History, WatchLog, check, check_election


def _cm(name: str, version: int, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(version)}, "data": data or {}}


def _good() -> tuple[History, WatchLog, dict[str, Any]]:
    history = History(acked_creates={"cm-0-0"}, acked_increments={"op-0-0"})
    log = WatchLog(
        events=[
            ("ADDED", COUNTER, 10, {"n": "0"}),
            ("ADDED", "cm-0-0", 11, {}),
            ("MODIFIED", COUNTER, 12, {"n": "1", "op-0-0": "1"}),
        ]
    )
    final = {"items": [_cm("cm-0-0", 11), _cm(COUNTER, 12, {"n": "1", "op-0-0": "1"})]}
    return history, log, final


def test_a_clean_history_passes() -> None:
    check(*_good())


def test_a_lost_create_fails() -> None:
    history, log, final = _good()
    final["items"] = final["items"][1:]
    with pytest.raises(AssertionError, match="lost creates"):
        check(history, log, final)


def test_a_lost_update_fails() -> None:
    history, log, final = _good()
    history.acked_increments.add("op-1-0")
    with pytest.raises(AssertionError):
        check(history, log, final)


def test_a_repeated_watch_event_fails() -> None:
    history, log, final = _good()
    log.events.append(("ADDED", "cm-0-0", 11, {}))
    with pytest.raises(AssertionError, match="out of order or repeated"):
        check(history, log, final)


def test_a_410_gone_fails() -> None:
    history, log, final = _good()
    log.gone.append("too old resource version")
    with pytest.raises(AssertionError, match="410"):
        check(history, log, final)


def _election() -> Election:
    """Corral's copy (pid 1) leads through the first jump, the faked one (pid 2) the second."""
    return Election(
        samples=[
            (1.0, {"corral": True, "faked": False}),
            (5.0, {"corral": False, "faked": True}),
        ],
        holders=[(1.0, "host_1"), (4.0, ""), (5.0, "host_2")],
        phases=[(0.0, 2.0, 1, "faked"), (4.5, 6.0, 2, "corral")],
    )


def test_a_clean_election_passes() -> None:
    check_election(_election())


def test_two_leaders_at_once_fail() -> None:
    election = _election()
    election.samples.append((3.0, {"corral": True, "faked": True}))
    with pytest.raises(AssertionError, match="two copies believed they led"):
        check_election(election)


def test_a_lease_moved_during_a_jump_fails() -> None:
    election = _election()
    election.holders.append((1.5, "host_2"))
    with pytest.raises(AssertionError, match="the Lease moved"):
        check_election(election)


def test_a_standby_that_believes_it_leads_during_a_jump_fails() -> None:
    election = _election()
    election.samples.append((1.5, {"corral": False, "faked": True}))
    with pytest.raises(AssertionError, match="the faked copy believed it led"):
        check_election(election)
