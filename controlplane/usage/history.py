"""The console's usage series: the last 15 minutes of each node and pod, for its charts.

metrics.k8s.io only has the newest point; the console wants the curve, so
these two read-only endpoints return the stored series. They are not
Kubernetes paths, so the gate lets any authenticated user through
(``SELF_AUTHORIZING_PATHS``) and each handler asks the authorizer the same
question the metrics.k8s.io API would: may this user list nodes (or pods in
this namespace) of metrics.k8s.io?
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from controlplane.apiserver import http, requestcontext
from controlplane.auth.attributes import RequestAttributes
from controlplane.auth.authorizer import Authorizer, require
from controlplane.storage.watchcache import WatchCache
from controlplane.usage.api import GROUP, VERSION
from controlplane.usage.paths import NODES_PATH, PATHS, PODS_PATH
from controlplane.usage.store import Point, UsageStore
from corral.api.errors import ApiError
from corral.objects import Obj, meta

__all__ = ["PATHS", "add_routes", "node_series", "pod_series"]


def _points(points: list[Point]) -> list[list[float]]:
    """``[timestamp, cpu cores, memory bytes]``: compact, and what a chart plots."""
    return [[p.timestamp, p.cpu_nanocores / 1e9, p.memory_bytes] for p in points]


def _authorize(authorizer: Authorizer | None, resource: str, namespace: str) -> None:
    if authorizer is None:
        return  # a development server without authentication: everyone is admin
    attrs = requestcontext.current()
    if attrs is None:  # the gate let in no one it could not name
        raise ApiError(401, "Unauthorized", "Unauthorized")
    asked = RequestAttributes(
        attrs.user,
        "list",
        api_group=GROUP,
        api_version=VERSION,
        resource=resource,
        namespace=namespace,
        path=attrs.path,
    )
    require(authorizer, asked)


def node_series(store: UsageStore, cache: WatchCache) -> Obj:
    nodes, _ = cache.snapshot("nodes", None)
    names = {meta(n.obj).get("name", "") for n in nodes}
    return {
        "nodes": [
            {"name": name, "points": _points(points)}
            for name, points in store.nodes_with_series()
            if name in names
        ]
    }


def pod_series(store: UsageStore, cache: WatchCache, namespace: str | None) -> Obj:
    pods, _ = cache.snapshot("pods", namespace)
    out = []
    for cached in pods:
        key = (meta(cached.obj).get("namespace", ""), meta(cached.obj).get("name", ""))
        points = store.pod_series(*key)
        if points:
            out.append({"namespace": key[0], "name": key[1], "points": _points(points)})
    return {"pods": out}


def add_routes(
    app: FastAPI, store: UsageStore, cache: WatchCache, authorizer: Authorizer | None
) -> None:
    @app.get(NODES_PATH, include_in_schema=False)
    async def nodes() -> Response:
        _authorize(authorizer, "nodes", "")
        return http.json_response(node_series(store, cache))

    @app.get(PODS_PATH, include_in_schema=False)
    async def pods(request: Request) -> Response:
        namespace = request.query_params.get("namespace") or None
        _authorize(authorizer, "pods", namespace or "")
        return http.json_response(pod_series(store, cache, namespace))
