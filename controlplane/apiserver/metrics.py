"""The API server's metrics, under kube-apiserver's names.

``RequestMetrics`` is an ASGI middleware put outermost (so a 429 from the
in-flight limiter is counted too). Per request it costs one parse of the
path, one counter increment and one histogram observation; label values
come from the registry's kinds and a fixed set of verbs, so a request for a
made-up resource is counted with empty group, version and resource rather
than adding a series. ``StorageCollector`` reads object and watcher counts
from the watch cache at scrape time, so nothing is counted on the write
path. ``etcd_request_duration_seconds`` is observed by the store
(controlplane.storage.metrics).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY as PROMETHEUS
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.apiserver.inflight import LONG_RUNNING_SUBRESOURCES, InflightLimiter
from controlplane.apiserver.requestattributes import request_attributes
from controlplane.storage.watchcache import WatchCache
from corral.api.resources import Registry

# kube-apiserver's request latency buckets (seconds).
LATENCY_BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0,
    6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
)  # fmt: skip
REQUEST_LABELS = ["verb", "group", "version", "resource", "subresource", "scope", "component"]
COMPONENT = "apiserver"

REQUESTS = Counter(
    "apiserver_request",
    "Counter of apiserver requests broken out for each verb, group, version, resource, "
    "scope, component, and HTTP response code.",
    [*REQUEST_LABELS, "code"],
)
REQUEST_DURATION = Histogram(
    "apiserver_request_duration_seconds",
    "Response latency distribution in seconds for each verb, group, version, resource, "
    "subresource, scope and component (long-running requests are not observed).",
    REQUEST_LABELS,
    buckets=LATENCY_BUCKETS,
)
LONG_RUNNING = Gauge(
    "apiserver_longrunning_requests",
    "Gauge of all active long-running apiserver requests broken out by verb, group, "
    "version, resource, scope and component.",
    REQUEST_LABELS,
)
INFLIGHT = Gauge(
    "apiserver_current_inflight_requests",
    "Maximal number of currently used inflight request limit of this apiserver per "
    "request kind in last second.",
    ["request_kind"],
)
_VERBS = {
    "get": "GET",
    "list": "LIST",
    "watch": "WATCH",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETE",
    "proxy": "CONNECT",
}
_APPLY_PATCH = b"application/apply-patch"


def _content_type(scope: Scope) -> bytes:
    for key, value in scope.get("headers") or ():
        if key == b"content-type":
            return bytes(value)
    return b""


def labels_for(scope: Scope, registry: Registry) -> tuple[tuple[str, ...], bool]:
    """The request's label values (in REQUEST_LABELS order), and whether it is long-running."""
    websocket = scope["type"] == "websocket"
    method: str = "GET" if websocket else scope["method"]
    attrs = request_attributes(scope, registry)
    if not attrs.resource_request:
        return (method, "", "", "", "", "", COMPONENT), False
    rt = registry.by_plural(attrs.api_group, attrs.api_version, attrs.resource)
    verb = _VERBS.get(attrs.verb, attrs.verb.upper())
    if rt is None:
        # Not a kind this server has: no series of its own for a made-up name.
        return (verb, "", "", "", "", "", COMPONENT), False
    subresource = attrs.subresource if rt.has(attrs.subresource) else ""
    if websocket or subresource in LONG_RUNNING_SUBRESOURCES:
        verb = "CONNECT"
    elif verb == "PATCH" and _content_type(scope).startswith(_APPLY_PATCH):
        verb = "APPLY"
    scope_label = "resource" if attrs.name else "namespace" if attrs.namespace else "cluster"
    long_running = verb in ("WATCH", "CONNECT")
    return (
        verb,
        attrs.api_group,
        attrs.api_version,
        attrs.resource,
        subresource,
        scope_label,
        COMPONENT,
    ), long_running


class RequestMetrics:
    """ASGI middleware: request counts by code, latencies, and long-running requests."""

    def __init__(
        self,
        app: ASGIApp,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.registry = registry
        self.clock = clock
        # Children by label values, so a request skips prometheus_client's
        # labels() (a tuple, a lock and a lookup per metric). Bounded as the
        # label values are.
        self._durations: dict[tuple[str, ...], Any] = {}
        self._counts: dict[tuple[tuple[str, ...], int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = self.clock()
        labels, long_running = labels_for(scope, self.registry)
        code = 0

        async def observed(message: Message) -> None:
            nonlocal code
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                code = message["status"]
            elif kind == "websocket.accept":
                code = 101
            await send(message)

        gauge = LONG_RUNNING.labels(*labels) if long_running else None
        if gauge is not None:
            gauge.inc()
        try:
            await self.app(scope, receive, observed)
        finally:
            if gauge is not None:
                gauge.dec()
            else:
                duration = self._durations.get(labels)
                if duration is None:
                    duration = self._durations[labels] = REQUEST_DURATION.labels(*labels)
                duration.observe(self.clock() - started)
            key = (labels, code or 500)
            count = self._counts.get(key)
            if count is None:
                count = self._counts[key] = REQUESTS.labels(*labels, str(key[1]))
            count.inc()


def watch_inflight(limiter: InflightLimiter) -> None:
    """apiserver_current_inflight_requests reads this limiter's pools when scraped."""
    INFLIGHT.labels("readOnly").set_function(lambda: limiter.read_only.in_use)
    INFLIGHT.labels("mutating").set_function(lambda: limiter.mutating.in_use)


class StorageCollector(Collector):
    """apiserver_storage_objects and apiserver_registered_watchers, from watch caches."""

    def __init__(self) -> None:
        self._sources: weakref.WeakKeyDictionary[WatchCache, Registry] = weakref.WeakKeyDictionary()

    def add(self, cache: WatchCache, registry: Registry) -> None:
        self._sources[cache] = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        objects = GaugeMetricFamily(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind.",
            labels=["resource"],
        )
        watchers = GaugeMetricFamily(
            "apiserver_registered_watchers",
            "Number of currently registered watchers for a given resource",
            labels=["group", "version", "kind"],
        )
        for cache, registry in list(self._sources.items()):
            kinds = {rt.storage_resource: rt for rt in registry}
            for stored, (count, watching) in sorted(cache.sizes().items()):
                rt = kinds.get(stored)
                objects.add_metric([rt.qualified if rt else stored], count)
                if rt is not None:
                    watchers.add_metric([rt.group, rt.version, rt.kind], watching)
        yield objects
        yield watchers

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # collected lazily: no scrape at registration


STORAGE = StorageCollector()
PROMETHEUS.register(STORAGE)
