"""The scheduler's metrics: kube-scheduler's names, as histograms, in the shared registry."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from corral.metrics import render
from scheduler.metrics import Metrics


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(render().decode())
        for sample in family.samples
    }


def test_counts_are_per_scheduler_and_shared_in_the_registry() -> None:
    key = ("scheduler_schedule_attempts_total", (("profile", "t"), ("result", "scheduled")))
    before = _samples().get(key, 0.0)
    metrics = Metrics(profile="t")
    metrics.scheduled.inc()
    metrics.scheduled.inc()
    assert metrics.scheduled.value == 2
    assert _samples()[key] == before + 2


def test_a_refused_bind_is_an_error_attempt() -> None:
    key = ("scheduler_schedule_attempts_total", (("profile", "b"), ("result", "error")))
    metrics = Metrics(profile="b")
    metrics.bind_failures.inc()
    assert metrics.bind_failures.value == 1 and metrics.errors.value == 0
    assert _samples()[key] == 1.0


def test_latencies_are_histograms() -> None:
    metrics = Metrics(profile="h")
    metrics.attempt_scheduled.observe(0.003)
    families = {f.name: f for f in text_string_to_metric_families(render().decode())}
    family = families["scheduler_scheduling_attempt_duration_seconds"]
    assert family.type == "histogram"
    buckets = {
        s.labels["le"]: s.value
        for s in family.samples
        if s.name.endswith("_bucket")
        and s.labels.get("profile") == "h"
        and s.labels["result"] == "scheduled"
    }
    assert buckets["0.002"] == 0.0 and buckets["0.004"] == 1.0
    metrics.pending_pods("active", lambda: 7)
    assert _samples()[("scheduler_pending_pods", (("queue", "active"),))] == 7.0
