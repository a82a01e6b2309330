"""The CLI's bounded waits: a poll ends by its condition, its deadline or a stop; a race
against a clock ends by its work or its deadline."""

from __future__ import annotations

import asyncio

import pytest

from corral.clock import ManualClock
from corralctl import waiting
from corralctl.waiting import jittered, poll_until, within


def test_jitter_only_lengthens_a_pause_and_by_at_most_a_tenth() -> None:
    pauses = [jittered(2.0) for _ in range(200)]
    assert all(2.0 <= pause <= 2.2 for pause in pauses)
    # Spread, not one fixed pause: clients started together drift apart.
    assert len(set(pauses)) > 100
    assert jittered(0.0) == 0.0


class Attempts:
    """Answers from a script: True, False, or an exception to raise; the last one repeats."""

    def __init__(self, *answers: bool | BaseException) -> None:
        self.answers = answers
        self.calls = 0
        self.now = 0.0

    async def __call__(self) -> bool:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def clock(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += 1.0


async def test_a_transient_failure_is_retried_until_the_condition_holds() -> None:
    attempts = Attempts(ConnectionError("refused"), False, True)
    outcome = await poll_until(
        attempts,
        60,
        interval=0,
        attempt_timeout=5,
        transient=(ConnectionError,),
        clock=attempts.clock,
        tick=attempts.tick,
    )
    assert (outcome.done, outcome.stopped, outcome.error) == (True, False, None)
    assert attempts.calls == 3
    assert outcome.elapsed == 2.0


async def test_other_failures_are_not_retried() -> None:
    attempts = Attempts(ValueError("a bug"), True)
    with pytest.raises(ValueError, match="a bug"):
        await poll_until(attempts, 60, interval=0, attempt_timeout=5, transient=(OSError,))
    assert attempts.calls == 1


async def test_the_deadline_ends_the_wait_and_the_last_failure_is_kept() -> None:
    attempts = Attempts(False, ConnectionError("still refused"))
    outcome = await poll_until(
        attempts,
        5,
        interval=0,
        attempt_timeout=5,
        transient=(ConnectionError,),
        clock=attempts.clock,
        tick=attempts.tick,
    )
    assert not outcome.done and not outcome.stopped
    assert isinstance(outcome.error, ConnectionError)
    assert attempts.calls == 6


async def test_a_hung_attempt_is_cut_short_and_tried_again() -> None:
    calls = 0

    async def attempt() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(3600)
        return True

    outcome = await asyncio.wait_for(
        poll_until(attempt, 60, interval=0, attempt_timeout=0.05), timeout=10
    )
    assert outcome.done and calls == 2


async def test_stopping_ends_the_wait_early() -> None:
    attempts = Attempts(False)
    outcome = await poll_until(
        attempts,
        60,
        interval=0,
        attempt_timeout=5,
        clock=attempts.clock,
        tick=attempts.tick,
        stopping=lambda: attempts.calls >= 2,
    )
    assert (outcome.done, outcome.stopped) == (False, True)
    assert attempts.calls == 2


async def test_within_returns_the_work_or_times_out_on_its_clock() -> None:
    clock = ManualClock()
    assert await within(clock, 5, asyncio.sleep(0, result="done")) == "done"

    never = asyncio.Event()
    waiting = asyncio.ensure_future(within(clock, 5, never.wait()))
    for _ in range(5):
        await asyncio.sleep(0)
    assert clock.sleepers == 1
    clock.advance(4)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(1)
    with pytest.raises(TimeoutError):
        await waiting


async def test_pauses_grow_by_the_backoff_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []

    def record(pause: float) -> float:
        pauses.append(pause)
        return 0.0

    monkeypatch.setattr(waiting, "jittered", record)
    attempts = Attempts(False, False, False, False, False, True)
    outcome = await poll_until(
        attempts, 60, interval=0.05, backoff=2, max_interval=0.3, attempt_timeout=None
    )
    assert outcome.done
    assert pauses == [0.05, 0.1, 0.2, 0.3, 0.3]
