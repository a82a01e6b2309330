"""The scheduler's metrics, under kube-scheduler's names, in prometheus_client.

Latencies are histograms with kube-scheduler's buckets (1 ms doubling to
about 16 s), so they aggregate across schedulers and over time; nothing is
sorted at scrape time. Each ``Metrics`` also keeps its own counts
(``.value``), which tests and a process running several schedulers read
without parsing the shared registry.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.utils import INF

PROFILE = "default-scheduler"
# kube-scheduler's metrics.ExponentialBuckets(0.001, 2, 15).
LATENCY_BUCKETS = (*(0.001 * 2**i for i in range(15)), INF)

SCHEDULE_ATTEMPTS = Counter(
    "scheduler_schedule_attempts",
    "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could "
    "not be scheduled, while 'error' means an internal scheduler problem.",
    ["result", "profile"],
)
ATTEMPT_DURATION = Histogram(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
    ["result", "profile"],
    buckets=LATENCY_BUCKETS,
)
ALGORITHM_DURATION = Histogram(
    "scheduler_scheduling_algorithm_duration_seconds",
    "Scheduling algorithm latency in seconds",
    buckets=LATENCY_BUCKETS,
)
BIND_DURATION = Histogram(
    "scheduler_framework_extension_point_duration_seconds",
    "Latency for running all plugins of a specific extension point.",
    ["extension_point", "status", "profile"],
    buckets=(*(0.0001 * 2**i for i in range(12)), INF),
)
POD_SCHEDULING_DURATION = Histogram(
    "scheduler_pod_scheduling_sli_duration_seconds",
    "E2e latency for a pod being scheduled, from the time the pod enters the scheduling "
    "queue and might involve multiple scheduling attempts.",
    buckets=(*(0.01 * 2**i for i in range(20)), INF),
)
EVALUATED_NODES = Histogram(
    "corral_scheduler_evaluated_nodes",
    "Nodes run through the filters for one pod.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, INF),
)
BIND_FAILURES = Counter("corral_scheduler_bind_failures", "Binds the API refused.")
PENDING_PODS = Gauge(
    "scheduler_pending_pods",
    "Number of pending pods, by the queue type. 'active' means number of pods in "
    "activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number "
    "of pods in unschedulablePods.",
    ["queue"],
)
CACHE_SIZE = Gauge(
    "scheduler_cache_size",
    "Number of nodes, pods, and assumed (bound) pods in the scheduler cache.",
    ["type"],
)


class Count:
    """A counter of this scheduler's own, mirrored into a shared prometheus series."""

    def __init__(self, inc_shared: Callable[[], None]) -> None:
        self.value = 0
        self._inc_shared = inc_shared

    def inc(self) -> None:
        self.value += 1
        self._inc_shared()


class Metrics:
    def __init__(self, profile: str = PROFILE) -> None:
        attempts = SCHEDULE_ATTEMPTS
        self.scheduled = Count(attempts.labels("scheduled", profile).inc)
        self.unschedulable = Count(attempts.labels("unschedulable", profile).inc)
        self.errors = Count(attempts.labels("error", profile).inc)
        error = attempts.labels("error", profile)
        failures = BIND_FAILURES

        def bind_failed() -> None:
            # A refused bind is a failed attempt, as kube-scheduler counts it.
            error.inc()
            failures.inc()

        self.bind_failures = Count(bind_failed)
        self.algorithm = ALGORITHM_DURATION
        self.binding = BIND_DURATION.labels("Bind", "Success", profile)
        self.attempt_scheduled = ATTEMPT_DURATION.labels("scheduled", profile)
        self.attempt_unschedulable = ATTEMPT_DURATION.labels("unschedulable", profile)
        self.attempt_error = ATTEMPT_DURATION.labels("error", profile)
        self.e2e = POD_SCHEDULING_DURATION
        self.evaluated_nodes = EVALUATED_NODES

    def pending_pods(self, queue: str, read: Callable[[], float]) -> None:
        PENDING_PODS.labels(queue).set_function(read)

    def cache_size(self, kind: str, read: Callable[[], float]) -> None:
        CACHE_SIZE.labels(kind).set_function(read)
