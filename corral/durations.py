"""Durations as Kubernetes reads and prints them.

``parse_duration`` is Go's ``time.ParseDuration``, which every Kubernetes
flag and kubectl's ``--timeout`` take; ``human_duration`` is apimachinery's
``duration.HumanDuration``, the ages kubectl shows.
"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``1h``, ``1m30s``, ``500ms``, or a bare number of seconds.

    Raises ValueError naming the text; negative durations are refused.
    """
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError(f"invalid duration {text!r}: negative")
        return seconds
    if not value:
        raise ValueError("invalid duration ''")
    position, total = 0, 0.0
    while position < len(value):
        match = _PART.match(value, position)
        if match is None:
            raise ValueError(f"invalid duration {text!r}: use e.g. 90s, 2m or 1h30m")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total


def human_duration(delta: timedelta) -> str:
    """``45s``, ``3m20s``, ``5h``, ``12d``, ``2y70d``: the short ages kubectl shows.

    Up to one second in the future reads as ``0s``, not ``<invalid>``, as in
    Kubernetes: clocks on two machines differ by that much.
    """
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d" if rest == 0 else f"{days}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{years}y"
