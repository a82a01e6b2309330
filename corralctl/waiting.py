"""Bounded waits for the command line: poll until something holds, or race a deadline.

Every wait the CLI makes ends: when its condition holds, when its deadline
passes, or when it is asked to stop. Two shapes cover them all:

- ``poll_until`` asks again and again (``corral up``'s waits for nodes and
  for workloads). Each attempt has a timeout of its own, so one hung request
  cannot outlive the deadline; a failure that may pass (an API server that
  restarts) is kept for the report and retried; the pause between attempts
  is jittered, so clients started together do not poll in step.
- ``within`` races one awaitable against a deadline on a ``Clock``
  (``rollout status --timeout``, rolling-update's wait for a change), so
  tests can drive the deadline with a manual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from corral.clock import Clock

T = TypeVar("T")

# apimachinery's wait.Jitter: each pause is lengthened by up to this fraction.
JITTER = 0.1
# An attempt always gets this long, even when the deadline is nearer, so the
# last one can still answer.
MIN_ATTEMPT_TIMEOUT = 0.1


def jittered(interval: float, factor: float = JITTER) -> float:
    """``interval`` plus up to ``factor`` of it, at random."""
    # Spreading polls needs no secrecy: the module's generator is fine.
    return interval + random.random() * factor * interval


@dataclass(frozen=True)
class PollOutcome:
    done: bool
    # Ended because ``stopping`` said so, rather than by the deadline.
    stopped: bool
    # The last attempt's transient failure; None when it answered.
    error: BaseException | None
    elapsed: float


async def poll_until(
    attempt: Callable[[], Awaitable[bool]],
    timeout: float,
    *,
    interval: float,
    attempt_timeout: float | None,
    backoff: float = 1.0,
    max_interval: float | None = None,
    transient: tuple[type[BaseException], ...] = (),
    clock: Callable[[], float] = time.monotonic,
    tick: Callable[[], None] = lambda: None,
    stopping: Callable[[], bool] = lambda: False,
) -> PollOutcome:
    """Run ``attempt`` until it returns True, ``timeout`` passes or ``stopping()`` is true.

    An attempt that raises one of ``transient``, or outlives its own timeout
    (None leaves that to the client's), counts as not done and is tried
    again on the next round. Between rounds ``tick`` runs (``corral up``
    tends its children there), then a jittered pause: ``interval`` at first,
    ``backoff`` times longer each round, up to ``max_interval``.
    """
    started = clock()
    deadline = started + timeout
    error: BaseException | None = None
    # An attempt that outlives its own timeout is retried like any transient failure.
    retried: tuple[type[BaseException], ...] = (*transient, TimeoutError)
    pause = interval
    while not stopping():
        try:
            async with asyncio.timeout(_attempt_limit(attempt_timeout, deadline - clock())):
                done = await attempt()
            error = None
        except retried as failure:
            done, error = False, failure
        if done:
            return PollOutcome(True, False, None, clock() - started)
        if clock() >= deadline:
            break
        tick()
        await asyncio.sleep(jittered(pause))
        pause = pause * backoff if max_interval is None else min(pause * backoff, max_interval)
    return PollOutcome(False, stopping(), error, clock() - started)


def _attempt_limit(attempt_timeout: float | None, remaining: float) -> float | None:
    if attempt_timeout is None:
        return None
    return min(attempt_timeout, max(remaining, MIN_ATTEMPT_TIMEOUT))


async def within(clock: Clock, seconds: float, work: Awaitable[T]) -> T:
    """``work``, or TimeoutError once ``seconds`` pass on ``clock`` (0: no limit)."""
    task = asyncio.ensure_future(work)
    if seconds <= 0:
        return await task
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise TimeoutError
    return task.result()
