"""controlplane.usage: the in-memory series and the metrics.k8s.io shapes built from them."""

from __future__ import annotations

from controlplane.usage.api import cpu_quantity, duration, memory_quantity, pod_metrics
from controlplane.usage.store import MAX_POINTS, UsageStore
from corral.proto import agent_pb2 as pb


class _Wall:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _report(node: str, pods: dict[str, int], cpu: int = 10**9) -> pb.UsageReport:
    return pb.UsageReport(
        node_name=node,
        window_seconds=10,
        cpu_nanocores=cpu,
        memory_bytes=1 << 30,
        pods=[
            pb.PodUsage(
                namespace="ns",
                name=name,
                containers=[pb.ContainerUsage(name="c", cpu_nanocores=n, memory_bytes=4096)],
            )
            for name, n in pods.items()
        ],
    )


def test_the_newest_point_is_served_until_it_goes_stale() -> None:
    wall = _Wall()
    store = UsageStore(wall)
    store.record(_report("n1", {"a": 5}))
    point = store.node_latest("n1")
    assert point is not None and point.cpu_nanocores == 10**9
    assert store.pod_latest("ns", "a") is not None
    wall.now += 31  # three windows of 10 s, and 30 s at least
    assert store.node_latest("n1") is None
    assert store.pod_latest("ns", "a") is None


def test_a_pod_missing_from_its_nodes_newer_report_is_gone() -> None:
    wall = _Wall()
    store = UsageStore(wall)
    store.record(_report("n1", {"a": 5, "b": 7}))
    wall.now += 10
    store.record(_report("n1", {"a": 6}))
    assert store.pod_latest("ns", "a") is not None
    assert store.pod_latest("ns", "b") is None
    assert len(store.pod_series("ns", "b")) == 1  # the chart keeps its history


def test_series_are_bounded_and_forgotten_after_the_retention() -> None:
    wall = _Wall()
    store = UsageStore(wall, retention=900)
    for _ in range(MAX_POINTS + 20):
        store.record(_report("n1", {"a": 1}))
        wall.now += 1
    assert len(store.node_series("n1")) == MAX_POINTS
    wall.now += 901
    store.record(_report("n2", {}))
    assert store.node_names() == ["n2"]
    assert store.pod_keys() == []


def test_quantities_and_windows_are_written_as_metrics_server_writes_them() -> None:
    assert cpu_quantity(250_000_000) == "250000000n"
    assert memory_quantity(16 * 1024 * 1024 + 100) == "16384Ki"
    assert duration(10.0) == "10s"
    assert duration(10.5) == "10.5s"
    assert duration(75.25) == "1m15.25s"
    wall = _Wall()
    store = UsageStore(wall)
    store.record(_report("n1", {"a": 123}))
    point = store.pod_latest("ns", "a")
    assert point is not None
    pod = {"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "x"}}}
    shaped = pod_metrics(pod, point, "2026-01-01T00:00:00Z")
    assert shaped["kind"] == "PodMetrics"
    assert shaped["metadata"] == {
        "name": "a",
        "namespace": "ns",
        "labels": {"app": "x"},
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    assert shaped["containers"] == [{"name": "c", "usage": {"cpu": "123n", "memory": "4Ki"}}]
    assert shaped["window"] == "10s"
