"""Cron schedules as a CronJob's ``spec.schedule`` and ``spec.timeZone`` read them.

Kubernetes parses schedules with robfig/cron's standard parser: five fields
(minute, hour, day of month, month, day of week) or one of the descriptors
@yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly. The
arithmetic is cronsim's (typed, maintained, handles daylight-saving gaps);
this module keeps to the five-field grammar cronsim extends (it would take a
sixth field of seconds), maps the descriptors, and evaluates the schedule in
the CronJob's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# A schedule's own time zone prefix: Kubernetes refuses it in favour of timeZone.
_ZONE_PREFIXES = ("TZ=", "CRON_TZ=")


class ScheduleError(ValueError):
    """The schedule or time zone cannot be used; the message says why."""


def zone(name: str | None) -> tzinfo:
    """The IANA zone ``name`` names; UTC when none is given."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name}") from None


@dataclass(frozen=True, slots=True)
class Schedule:
    expression: str
    zone: tzinfo

    def next_after(self, after: datetime) -> datetime:
        """The first scheduled time strictly after ``after``, in UTC."""
        local = after.astimezone(self.zone).replace(second=0, microsecond=0)
        found: datetime = next(CronSim(self.expression, local))
        return found.astimezone(UTC)


def parse(schedule: str, time_zone: str | None = None) -> Schedule:
    """A schedule to evaluate, or a ScheduleError naming what is wrong."""
    text = " ".join(schedule.split())
    if text.startswith(_ZONE_PREFIXES):
        raise ScheduleError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if text.startswith("@"):
        expression = DESCRIPTORS.get(text.lower())
        if expression is None:
            raise ScheduleError(f"unrecognized descriptor: {text}")
    else:
        fields = text.split(" ") if text else []
        if len(fields) != 5:
            raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {text}")
        expression = text
    chosen = zone(time_zone)
    try:
        next(CronSim(expression, datetime(2000, 1, 1, tzinfo=chosen)))
    except (CronSimError, StopIteration) as error:
        raise ScheduleError(str(error) or "no time matches the schedule") from None
    return Schedule(expression, chosen)


def times_between(
    schedule: Schedule, earliest: datetime, now: datetime, limit: int
) -> tuple[datetime | None, int]:
    """The most recent scheduled time in (earliest, now] and how many there were.

    Counting stops past ``limit``: the caller only needs to know there were
    "too many", as Kubernetes' mostRecentScheduleTime does.
    """
    latest: datetime | None = None
    count = 0
    current = earliest
    while count <= limit:
        upcoming = schedule.next_after(current)
        if upcoming > now:
            return latest, count
        latest, current = upcoming, upcoming
        count += 1
    # Too many to walk: the most recent one is found from just before now.
    return _most_recent_before(schedule, now), count


def _most_recent_before(schedule: Schedule, now: datetime) -> datetime | None:
    # reverse=True yields times strictly before its start: start a minute on.
    local = now.astimezone(schedule.zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    try:
        found: datetime = next(CronSim(schedule.expression, local, reverse=True))
    except StopIteration:
        return None
    return found.astimezone(UTC)
