"""The Events table at the end of most descriptions (kubectl's ``DescribeEvents``)."""

from __future__ import annotations

from datetime import UTC, datetime

from corral.objects import Obj, parse_time
from corralctl.describe.formatting import NONE
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter


def _event_sort_time(event: Obj) -> datetime:
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return datetime.min.replace(tzinfo=UTC)


def _event_age(src: DescribeSource, event: Obj) -> str:
    first = (
        src.since(event["eventTime"])
        if parse_time(event.get("eventTime"))
        else src.since(event.get("firstTimestamp"))
    )
    series = event.get("series")
    if series:
        last = src.since(series.get("lastObservedTime"))
        return f"{last} (x{int(series.get('count') or 0)} over {first})"
    count = int(event.get("count") or 0)
    if count > 1:
        return f"{src.since(event.get('lastTimestamp'))} (x{count} over {first})"
    return first


def write_events(w: PrefixWriter, src: DescribeSource, events: list[Obj] | None) -> None:
    """``DescribeEvents``: oldest first, with repeats shown as ``12m (x4 over 40m)``."""
    if events is None:
        return
    if not events:
        w.write(0, f"Events:\t{NONE}\n")
        return
    w.flush()
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for event in sorted(events, key=_event_sort_time):
        source = (event.get("source") or {}).get("component") or event.get("reportingComponent", "")
        message = str(event.get("message") or "").strip()
        w.write(
            1,
            f"{event.get('type', '')}\t{event.get('reason', '')}\t"
            f"{_event_age(src, event)}\t{source}\t{message}\n",
        )
