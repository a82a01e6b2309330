"""Metrics render in Prometheus' text format, with exact quantiles over a window."""

from __future__ import annotations

from scheduler.metrics import Metrics, Summary, quantile


def test_quantiles_over_the_window() -> None:
    summary = Summary("s", "help", window=10)
    for value in range(100):
        summary.observe(float(value))
    assert summary.count == 100 and summary.total == sum(range(100))
    assert summary.quantiles()[0.5] == 95.0  # only the last ten are kept
    assert quantile([], 0.5) != quantile([], 0.5)  # NaN


def test_render() -> None:
    metrics = Metrics()
    metrics.scheduled.inc(3)
    metrics.algorithm.observe(0.001)
    metrics.gauge("nodes", "Nodes.", lambda: 5)
    text = metrics.render()
    assert "corral_scheduler_pods_scheduled_total 3" in text
    assert "corral_scheduler_nodes 5" in text
    assert 'corral_scheduler_algorithm_duration_seconds{quantile="0.99"} 0.001' in text
    assert "corral_scheduler_algorithm_duration_seconds_count 1" in text
    metrics.reset()
    assert "corral_scheduler_pods_scheduled_total 0" in metrics.render()
