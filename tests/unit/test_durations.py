"""Ages as kubectl prints them, in the server's Tables and in describe alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.apiserver.tables import age
from corral.durations import human_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119.9, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 1800, "3h30m"),
        (8 * 3600 + 1800, "8h"),
        (30 * 3600, "30h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
        (730 * 86400, "2y"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == text


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        (None, "<unknown>"),
        ("", "<unknown>"),
        ("yesterday", "<invalid>"),
        ("2026-01-02T03:03:00Z", "65s"),
        ("2026-01-02T03:03:00+00:00", "65s"),
        # No zone: read as UTC rather than failing to subtract from an aware now.
        ("2026-01-02T03:03:00", "65s"),
        ("2026-01-02T03:04:06Z", "0s"),
        ("2026-01-02T03:05:00Z", "<invalid>"),
    ],
)
def test_age_in_a_table(timestamp: str | None, text: str) -> None:
    assert age(timestamp, NOW) == text
