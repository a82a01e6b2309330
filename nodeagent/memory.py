"""Give the C heap's free pages back to the system.

A burst of pod starts parses many JSON answers and protobuf messages; once
they are freed, glibc keeps the pages for later mallocs, and the agent's
resident size stays at its peak. ``malloc_trim`` returns them; after the
imports alone it gives back 1.3 MiB (docs/benchmarks.md). Elsewhere than
glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

from corral.clock import Clock

log = logging.getLogger(__name__)

TRIM_INTERVAL_SECONDS = 60.0


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    return trim


_trim = _load_trim()


def trim() -> bool:
    """Return the heap's free pages to the system; whether there was a malloc_trim to call."""
    if _trim is None:
        return False
    _trim(0)
    return True


async def trim_loop(clock: Clock, interval: float = TRIM_INTERVAL_SECONDS) -> None:
    """Trim every ``interval`` seconds until cancelled (it is the agent's to cancel)."""
    if _trim is None:
        log.debug("no malloc_trim here: the heap is not trimmed")
        return
    while True:
        trim()
        await clock.sleep(interval)
