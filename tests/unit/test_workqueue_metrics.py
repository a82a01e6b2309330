"""A named work queue reports client-go's workqueue metrics, timed on its own clock."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from corral.clock import ManualClock
from corral.metrics import render
from corral.workqueue import WorkQueue


def _series(name: str) -> dict[str, float]:
    """Samples of the queue ``name``, by sample name."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(render().decode())
        for sample in family.samples
        if sample.labels.get("name") == name and "le" not in sample.labels
    }


async def test_depth_adds_retries_and_durations() -> None:
    clock = ManualClock()
    queue: WorkQueue[str] = WorkQueue(clock, name="unit-test-queue")
    queue.add("a")
    queue.add("a")  # deduplicated: one add
    queue.add("b")
    series = _series("unit-test-queue")
    assert series["workqueue_depth"] == 2
    assert series["workqueue_adds_total"] == 2
    clock.advance(3.0)
    key = await queue.get()
    clock.advance(0.5)
    queue.done(key)
    queue.add_rate_limited("b")
    series = _series("unit-test-queue")
    assert series["workqueue_depth"] == 1
    assert series["workqueue_retries_total"] == 1
    assert series["workqueue_queue_duration_seconds_count"] == 1
    assert series["workqueue_queue_duration_seconds_sum"] == 3.0
    assert series["workqueue_work_duration_seconds_sum"] == 0.5
    queue.shut_down()


async def test_an_unnamed_queue_reports_nothing() -> None:
    queue: WorkQueue[str] = WorkQueue(ManualClock())
    queue.add("a")
    assert _series("") == {}
