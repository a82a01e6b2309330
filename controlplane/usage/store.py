"""The last 15 minutes of every node's and pod's resource usage, in memory.

Like metrics-server, the API server keeps resource metrics out of etcd: they
are rebuilt within one reporting interval after a restart, and writing one
per node every ten seconds would cost etcd more than the figures are worth.
Each series is a bounded deque, and series that stop receiving points are
dropped once their newest point leaves the retention window.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

RETENTION_SECONDS = 15 * 60.0
# Agents report every 10 s or so; a little headroom for faster ones.
MAX_POINTS = 256


@dataclass(frozen=True, slots=True)
class ContainerPoint:
    name: str
    cpu_nanocores: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class Point:
    """One window's usage: the average CPU rate over it, the working set at its end."""

    timestamp: float  # the window's end, Unix seconds (the API server's clock)
    window: float
    cpu_nanocores: int
    memory_bytes: int
    containers: tuple[ContainerPoint, ...] = ()


@dataclass
class _Series:
    points: deque[Point]
    node: str = ""

    @property
    def latest(self) -> Point:
        return self.points[-1]


def _series() -> _Series:
    return _Series(deque(maxlen=MAX_POINTS))


class UsageStore:
    """Node and pod series, written by the agents' gRPC service and read by the API.

    Both run on the API server's event loop; the lock only guards against a
    reader on another thread (none today) seeing a half-swept dict.
    """

    def __init__(
        self, wall_clock: Callable[[], float], retention: float = RETENTION_SECONDS
    ) -> None:
        self.wall_clock = wall_clock
        self.retention = retention
        self._nodes: dict[str, _Series] = {}
        self._pods: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()

    def record(self, report: Any) -> None:
        """Add one agent's UsageReport (corral.proto.agent_pb2.UsageReport)."""
        now = self.wall_clock()
        window = max(float(report.window_seconds), 0.0)
        with self._lock:
            node = self._nodes.setdefault(report.node_name, _series())
            node.points.append(Point(now, window, report.cpu_nanocores, report.memory_bytes))
            for pod in report.pods:
                containers = tuple(
                    ContainerPoint(c.name, c.cpu_nanocores, c.memory_bytes) for c in pod.containers
                )
                series = self._pods.setdefault((pod.namespace, pod.name), _series())
                series.node = report.node_name
                series.points.append(
                    Point(
                        now,
                        window,
                        sum(c.cpu_nanocores for c in containers),
                        sum(c.memory_bytes for c in containers),
                        containers,
                    )
                )
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        cutoff = now - self.retention
        for table in (self._nodes, self._pods):
            for key in [k for k, s in table.items() if s.latest.timestamp < cutoff]:
                del table[key]  # type: ignore[arg-type]

    def forget_node(self, name: str) -> None:
        with self._lock:
            self._nodes.pop(name, None)

    # --- reading ------------------------------------------------------------------------

    def node_latest(self, name: str) -> Point | None:
        """The node's newest point, if its agent reported within the last two windows."""
        series = self._nodes.get(name)
        if series is None or not self._fresh(series.latest):
            return None
        return series.latest

    def pod_latest(self, namespace: str, name: str) -> Point | None:
        """The pod's newest point, if its node's newest report still had it."""
        series = self._pods.get((namespace, name))
        if series is None:
            return None
        node = self._nodes.get(series.node)
        if node is None or node.latest.timestamp > series.latest.timestamp:
            return None  # the node reported since without this pod: it is gone
        if not self._fresh(series.latest):
            return None
        return series.latest

    def _fresh(self, point: Point) -> bool:
        # metrics-server drops a node it failed to scrape; two missed reports here.
        stale_after = max(3 * point.window, 30.0)
        return self.wall_clock() - point.timestamp <= stale_after

    def node_names(self) -> list[str]:
        return sorted(self._nodes)

    def pod_keys(self, namespace: str | None = None) -> list[tuple[str, str]]:
        return sorted(k for k in self._pods if namespace is None or k[0] == namespace)

    def node_series(self, name: str) -> list[Point]:
        series = self._nodes.get(name)
        return list(series.points) if series is not None else []

    def pod_series(self, namespace: str, name: str) -> list[Point]:
        series = self._pods.get((namespace, name))
        return list(series.points) if series is not None else []

    def nodes_with_series(self) -> Iterable[tuple[str, list[Point]]]:
        return [(name, list(s.points)) for name, s in sorted(self._nodes.items())]
