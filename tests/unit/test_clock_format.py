"""RFC 3339 stamps: UTC, 'Z', whole seconds or microseconds, from any zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from corral.clock import parse_rfc3339, rfc3339, rfc3339_micro


def test_utc_and_other_zones_give_the_same_stamp() -> None:
    at = datetime(2026, 12, 7, 14, 5, 9, 123456, tzinfo=UTC)
    assert rfc3339(at) == "2026-12-07T14:05:09Z"
    assert rfc3339_micro(at) == "2026-12-07T14:05:09.123456Z"
    east = at.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert rfc3339(east) == "2026-12-07T14:05:09Z"
    assert rfc3339(at.astimezone(ZoneInfo("America/New_York"))) == "2026-12-07T14:05:09Z"
    assert rfc3339_micro(east) == "2026-12-07T14:05:09.123456Z"


def test_whole_seconds_and_round_trip() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rfc3339_micro(at) == "2026-01-02T03:04:05.000000Z"
    assert parse_rfc3339(rfc3339(at)) == at
    assert parse_rfc3339(rfc3339_micro(at.replace(microsecond=7))) == at.replace(microsecond=7)
