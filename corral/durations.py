"""Durations as kubectl prints them: apimachinery's ``duration.HumanDuration``."""

from __future__ import annotations

from datetime import timedelta


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
