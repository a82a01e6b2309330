"""metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics, as metrics-server serves them.

``kubectl top`` and the Horizontal Pod Autoscaler read these. The objects
are built on each request from the usage store and the watch cache (for the
nodes' and pods' labels, which selectors match): nothing is stored, so only
get and list exist, and a watch is refused as metrics-server refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from controlplane.apiserver import http
from controlplane.apiserver.params import ListOptions
from controlplane.apiserver.routes import Target
from controlplane.query import request_query
from controlplane.storage.watchcache import WatchCache
from controlplane.usage.store import Point, UsageStore
from corral.api import errors
from corral.clock import rfc3339
from corral.objects import Obj, labels_of, meta

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"


def cpu_quantity(nanocores: int) -> str:
    """metrics-server's CPU form: nanocores (``250000000n`` is 250m)."""
    return f"{max(nanocores, 0)}n"


def memory_quantity(size: int) -> str:
    """metrics-server's memory form: whole KiB (``2048Ki``)."""
    return f"{max(size, 0) // 1024}Ki"


def duration(seconds: float) -> str:
    """A Go duration as metav1.Duration writes it: ``10.5s``, ``1m0s``."""
    millis = round(seconds * 1000)
    minutes, rest = divmod(millis, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


def _timestamp(unix: float) -> str:
    return rfc3339(datetime.fromtimestamp(unix, UTC))


def _usage(cpu: int, memory: int) -> Obj:
    return {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}


def _metadata(obj: Obj, now: str) -> Obj:
    out: Obj = {"name": meta(obj).get("name", ""), "creationTimestamp": now}
    namespace = meta(obj).get("namespace")
    if namespace:
        out["namespace"] = namespace
    labels = labels_of(obj)
    if labels:
        out["labels"] = dict(labels)
    return out


def node_metrics(node: Obj, point: Point, now: str) -> Obj:
    return {
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": _metadata(node, now),
        "timestamp": _timestamp(point.timestamp),
        "window": duration(point.window),
        "usage": _usage(point.cpu_nanocores, point.memory_bytes),
    }


def pod_metrics(pod: Obj, point: Point, now: str) -> Obj:
    return {
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": _metadata(pod, now),
        "timestamp": _timestamp(point.timestamp),
        "window": duration(point.window),
        "containers": [
            {"name": c.name, "usage": _usage(c.cpu_nanocores, c.memory_bytes)}
            for c in point.containers
        ],
    }


class MetricsApi:
    """The handler ApiFront hands every metrics.k8s.io resource request to."""

    def __init__(self, store: UsageStore, cache: WatchCache, now: Callable[[], datetime]) -> None:
        self.store = store
        self.cache = cache
        self.now = now

    async def serve(self, request: Request, target: Target) -> Response:
        if request.method not in ("GET", "HEAD") or target.subresource is not None:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource "
                f"({request.method})"
            )
        options = ListOptions.parse(request_query(request.scope))
        if target.name is None and options.watch:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource (watch)"
            )
        if target.rt.plural == "nodes":
            return self._nodes(target, options)
        return self._pods(target, options)

    def _nodes(self, target: Target, options: ListOptions) -> Response:
        now = rfc3339(self.now())
        if target.name is not None:
            node = self._node(target.name)
            point = self.store.node_latest(target.name)
            if node is None or point is None:
                raise errors.not_found("nodemetrics", target.name, GROUP)
            return http.json_response(node_metrics(node, point, now))
        nodes, _ = self.cache.snapshot("nodes", None)
        items = []
        for cached in nodes:
            if not _selected(cached.obj, options):
                continue
            point = self.store.node_latest(meta(cached.obj).get("name", ""))
            if point is not None:
                items.append(node_metrics(cached.obj, point, now))
        return http.json_response(_list("NodeMetricsList", items))

    def _node(self, name: str) -> Obj | None:
        nodes, _ = self.cache.snapshot("nodes", None)
        for cached in nodes:
            if meta(cached.obj).get("name") == name:
                return cached.obj
        return None

    def _pods(self, target: Target, options: ListOptions) -> Response:
        now = rfc3339(self.now())
        pods, _ = self.cache.snapshot("pods", target.namespace)
        if target.name is not None:
            namespace = target.namespace or ""
            for cached in pods:
                if meta(cached.obj).get("name") == target.name:
                    point = self.store.pod_latest(namespace, target.name)
                    if point is not None:
                        return http.json_response(pod_metrics(cached.obj, point, now))
            raise errors.not_found("podmetrics", f"{namespace}/{target.name}", GROUP)
        items = []
        for cached in pods:
            if not _selected(cached.obj, options):
                continue
            point = self.store.pod_latest(
                meta(cached.obj).get("namespace", ""), meta(cached.obj).get("name", "")
            )
            if point is not None:
                items.append(pod_metrics(cached.obj, point, now))
        return http.json_response(_list("PodMetricsList", items))


def _selected(obj: Obj, options: ListOptions) -> bool:
    if options.labels is not None and not options.labels.matches(labels_of(obj)):
        return False
    if options.fields is not None:
        fields = {
            "metadata.name": meta(obj).get("name", ""),
            "metadata.namespace": meta(obj).get("namespace", ""),
        }
        return options.fields.matches(fields)
    return True


def _list(kind: str, items: list[Obj]) -> Obj:
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}
