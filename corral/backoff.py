"""Jittered exponential back-off: the one way every retry loop in corral waits.

A loop that doubles a fixed delay makes every client that lost the same
server retry at the same instants, so hundreds of agents hit a restarted API
server together. Each wait here is drawn at random below its exponential
ceiling ("full jitter", as AWS's architecture blog and gRPC's connection
back-off recommend), which spreads the retries evenly over the window.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


def jittered(
    seconds: float, *, spread: float = 0.2, rng: Callable[[], float] = random.random
) -> float:
    """``seconds`` moved at random by up to ``spread`` of itself either way.

    For periodic work (heartbeats, polls) whose period must stay near its
    value but must not line up across clients.
    """
    return seconds * (1 - spread + 2 * spread * rng())


@dataclass
class Backoff:
    """Exponential back-off with jitter, reset after a success.

    The n-th consecutive failure waits a random time in
    ``[ceiling * (1 - jitter), ceiling]`` where ``ceiling = min(cap,
    initial * factor**n)``; ``jitter=1`` is full jitter.
    """

    initial: float
    cap: float
    factor: float = 2.0
    jitter: float = 1.0
    rng: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap:
            raise ValueError("need 0 < initial <= cap")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("need factor >= 1 and 0 <= jitter <= 1")

    def ceiling(self) -> float:
        """The longest the next wait may be."""
        # Capped exponent: the float power cannot overflow on a long outage.
        exponent = min(self.attempts, 64)
        return min(self.cap, self.initial * self.factor**exponent)

    def next(self) -> float:
        """The next wait; each call counts one more failure."""
        ceiling = self.ceiling()
        self.attempts += 1
        return ceiling * (1 - self.jitter * self.rng())

    def reset(self) -> None:
        self.attempts = 0
