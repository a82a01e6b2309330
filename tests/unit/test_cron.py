"""Cron schedules as a CronJob reads them: five fields or a descriptor, in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from corral import cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("* * * * *", "2026-03-01T10:00:00", "2026-03-01T10:01:00"),
        ("* * * * *", "2026-03-01T10:00:30", "2026-03-01T10:01:00"),
        ("*/15 * * * *", "2026-03-01T10:01:00", "2026-03-01T10:15:00"),
        ("0 3 * * 1", "2026-03-01T10:00:00", "2026-03-02T03:00:00"),  # Monday
        ("@hourly", "2026-03-01T10:00:00", "2026-03-01T11:00:00"),
        ("@daily", "2026-03-01T10:00:00", "2026-03-02T00:00:00"),
        ("@midnight", "2026-03-01T10:00:00", "2026-03-02T00:00:00"),
        ("@weekly", "2026-03-02T10:00:00", "2026-03-08T00:00:00"),  # Sunday
        ("@monthly", "2026-03-01T10:00:00", "2026-04-01T00:00:00"),
        ("@yearly", "2026-03-01T10:00:00", "2027-01-01T00:00:00"),
        ("@annually", "2026-03-01T10:00:00", "2027-01-01T00:00:00"),
        ("0  12 * *  *", "2026-03-01T10:00:00", "2026-03-01T12:00:00"),  # extra spaces
    ],
)
def test_next_time_after(schedule: str, after: str, expected: str) -> None:
    assert cron.parse(schedule).next_after(at(after)) == at(expected)


def test_time_zone_moves_the_schedule_and_follows_daylight_saving() -> None:
    paris = cron.parse("0 9 * * *", "Europe/Paris")
    # Winter: UTC+1; summer (after 2026-03-29): UTC+2.
    assert paris.next_after(at("2026-03-01T00:00:00")) == at("2026-03-01T08:00:00")
    assert paris.next_after(at("2026-04-01T00:00:00")) == at("2026-04-01T07:00:00")


@pytest.mark.parametrize(
    ("schedule", "zone", "message"),
    [
        ("* * * *", None, "expected exactly 5 fields, found 4"),
        ("* * * * * *", None, "expected exactly 5 fields, found 6"),
        ("", None, "expected exactly 5 fields, found 0"),
        ("61 * * * *", None, "Bad minute"),
        ("@every 5m", None, "unrecognized descriptor"),
        ("TZ=UTC * * * * *", None, "use timeZone field instead"),
        ("CRON_TZ=UTC * * * * *", None, "use timeZone field instead"),
        ("* * * * *", "Mars/Olympus", "unknown time zone Mars/Olympus"),
    ],
)
def test_refused(schedule: str, zone: str | None, message: str) -> None:
    with pytest.raises(cron.ScheduleError, match=message):
        cron.parse(schedule, zone)


def test_times_between_counts_and_finds_the_most_recent() -> None:
    minutely = cron.parse("* * * * *")
    now = at("2026-03-01T10:00:30")
    assert cron.times_between(minutely, now - timedelta(minutes=3), now, 100) == (
        at("2026-03-01T10:00:00"),
        3,
    )
    assert cron.times_between(minutely, now - timedelta(seconds=20), now, 100) == (None, 0)


def test_times_between_stops_counting_past_the_limit() -> None:
    minutely = cron.parse("* * * * *")
    now = at("2026-03-01T10:00:30")
    latest, count = cron.times_between(minutely, now - timedelta(days=2), now, 100)
    assert latest == at("2026-03-01T10:00:00")
    assert count == 101  # "more than 100": the caller reports too many missed start times
