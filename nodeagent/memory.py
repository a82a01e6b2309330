"""Give the C heap's free pages back to the system.

A burst of pod starts parses many JSON answers and protobuf messages; once
they are freed, glibc keeps the pages for later mallocs, and the agent's
resident size stays at its peak. ``malloc_trim`` returns them; after the
imports alone it gives back 1.3 MiB (docs/benchmarks.md). Elsewhere than
glibc it does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from corral.clock import Clock
from nodeagent.netns import _libc

log = logging.getLogger(__name__)

TRIM_INTERVAL_SECONDS = 60.0


# glibc's; None with another C library.
_trim: Callable[[int], int] | None = getattr(_libc, "malloc_trim", None)


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
