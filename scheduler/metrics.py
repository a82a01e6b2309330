"""Counters and latency summaries, rendered in Prometheus' text format.

Summaries keep a bounded window of recent observations, so their quantiles
are exact over that window and memory stays flat however long the
scheduler runs.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field

QUANTILES = (0.5, 0.9, 0.99)


def quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of an already sorted list (nearest rank)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@dataclass
class Summary:
    name: str
    help: str
    window: int = 100_000
    count: int = 0
    total: float = 0.0
    _recent: collections.deque[float] = field(default_factory=collections.deque)

    def __post_init__(self) -> None:
        self._recent = collections.deque(maxlen=self.window)

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        self._recent.append(value)

    def quantiles(self) -> dict[float, float]:
        ordered = sorted(self._recent)
        return {q: quantile(ordered, q) for q in QUANTILES}

    def reset(self) -> None:
        self.count = 0
        self.total = 0.0
        self._recent.clear()


@dataclass
class Counter:
    name: str
    help: str
    value: int = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class Metrics:
    def __init__(self) -> None:
        prefix = "corral_scheduler_"
        self.scheduled = Counter(prefix + "pods_scheduled_total", "Pods bound to a node.")
        self.unschedulable = Counter(
            prefix + "unschedulable_attempts_total", "Attempts that found no node."
        )
        self.errors = Counter(prefix + "error_attempts_total", "Attempts that failed on an error.")
        self.bind_failures = Counter(prefix + "bind_failures_total", "Binds the API refused.")
        self.algorithm = Summary(
            prefix + "algorithm_duration_seconds",
            "Filtering, scoring and assuming one pod: the scheduler's own time per pod.",
        )
        self.binding = Summary(prefix + "binding_duration_seconds", "One bind request to the API.")
        self.attempt = Summary(
            prefix + "attempt_duration_seconds",
            "From popping a pod off the queue to its bind being acknowledged.",
        )
        self.e2e = Summary(
            prefix + "pod_scheduling_duration_seconds",
            "From a pod joining the queue to its bind being acknowledged, retries included.",
        )
        self.evaluated_nodes = Summary(
            prefix + "evaluated_nodes", "Nodes run through the filters for one pod."
        )
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.gauges["corral_scheduler_" + name] = (help, read)

    def summaries(self) -> list[Summary]:
        return [self.algorithm, self.binding, self.attempt, self.e2e, self.evaluated_nodes]

    def counters(self) -> list[Counter]:
        return [self.scheduled, self.unschedulable, self.errors, self.bind_failures]

    def reset(self) -> None:
        for summary in self.summaries():
            summary.reset()
        for counter in self.counters():
            counter.value = 0

    def render(self) -> str:
        lines: list[str] = []
        for counter in self.counters():
            lines += [
                f"# HELP {counter.name} {counter.help}",
                f"# TYPE {counter.name} counter",
                f"{counter.name} {counter.value}",
            ]
        for name, (help, read) in self.gauges.items():
            lines += [f"# HELP {name} {help}", f"# TYPE {name} gauge", f"{name} {read():g}"]
        for summary in self.summaries():
            lines += [f"# HELP {summary.name} {summary.help}", f"# TYPE {summary.name} summary"]
            for q, value in summary.quantiles().items():
                lines.append(f'{summary.name}{{quantile="{q:g}"}} {value:.9g}')
            lines += [
                f"{summary.name}_sum {summary.total:.9g}",
                f"{summary.name}_count {summary.count}",
            ]
        return "\n".join(lines) + "\n"
