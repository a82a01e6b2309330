import random

import pytest

from corral.backoff import Backoff, jittered


def test_ceiling_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=lambda: 0.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_full_jitter_draws_below_the_ceiling() -> None:
    draws = iter([0.25, 0.999, 0.5])
    backoff = Backoff(1.0, 8.0, rng=lambda: next(draws))
    assert backoff.next() == pytest.approx(0.75)
    assert backoff.next() == pytest.approx(2 * 0.001)
    assert backoff.next() == pytest.approx(2.0)


def test_partial_jitter_keeps_a_floor() -> None:
    backoff = Backoff(2.0, 2.0, jitter=0.5, rng=lambda: 1.0)
    assert backoff.next() == pytest.approx(1.0)


def test_many_clients_spread_out() -> None:
    rng = random.Random(7)
    waits = [Backoff(1.0, 1.0, rng=rng.random).next() for _ in range(200)]
    assert all(0 <= w <= 1.0 for w in waits)
    # Not lined up: the waits cover the window rather than sitting on one value.
    assert max(waits) - min(waits) > 0.9
    assert len({round(w, 3) for w in waits}) > 150


def test_long_outage_does_not_overflow() -> None:
    backoff = Backoff(0.1, 5.0, rng=lambda: 0.0)
    for _ in range(5000):
        assert backoff.next() <= 5.0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)
    with pytest.raises(ValueError):
        Backoff(1, 2, jitter=1.5)


def test_jittered_period_stays_near_its_value() -> None:
    assert jittered(10.0, rng=lambda: 0.0) == pytest.approx(8.0)
    assert jittered(10.0, rng=lambda: 1.0) == pytest.approx(12.0)
