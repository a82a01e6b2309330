"""CrashLoopBackOff: how long a container waits before its next restart."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Per-key exponential backoff, as the kubelet keeps one per container.

    The first restart waits ``base``; each later one twice the last, up to
    ``cap``. A container that ran cleanly for ``reset_after`` starts over.
    """

    base: float
    cap: float
    reset_after: float
    _delay: dict[str, float] = field(default_factory=dict)

    def next_delay(self, key: str, ran_for: float) -> float:
        """The wait before restarting ``key``, which just ran for ``ran_for`` seconds."""
        if ran_for >= self.reset_after:
            self._delay.pop(key, None)
        previous = self._delay.get(key)
        delay = self.base if previous is None else min(previous * 2, self.cap)
        self._delay[key] = delay
        return delay

    def current(self, key: str) -> float | None:
        return self._delay.get(key)

    def forget(self, key: str) -> None:
        self._delay.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._delay if k.startswith(prefix)]:
            del self._delay[key]
