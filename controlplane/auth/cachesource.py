"""The authorizers' view of the cluster, served from the API server's watch cache.

Authorization runs on every request, so it reads memory only: the RBAC
objects and pods the watch cache already holds. Until the cache has listed
etcd once it holds nothing, so RBAC refuses everyone but ``system:masters``:
authorization fails closed while the server starts.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from controlplane.auth.rbac import PolicySource
from controlplane.storage.watchcache import WatchCache
from corral.objects import spec

RBAC_RESOURCES = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")


def _objects(cache: WatchCache, resource: str) -> Iterable[Mapping[str, Any]]:
    return [c.obj for c in cache.resource(resource).snapshot(None)]


def _version(cache: WatchCache) -> Hashable:
    # Per resource: where its event window starts (moves on a re-list) and
    # its newest event. Both are O(1), and they change whenever an RBAC
    # object does, but not when a pod does.
    out: list[int] = []
    for resource in RBAC_RESOURCES:
        rc = cache.resource(resource)
        out.append(rc.window_start)
        out.append(rc.history[-1].revision if rc.history else 0)
    return tuple(out)


def policy_source(cache: WatchCache) -> PolicySource:
    return PolicySource(
        roles=lambda: _objects(cache, "roles"),
        cluster_roles=lambda: _objects(cache, "clusterroles"),
        role_bindings=lambda: _objects(cache, "rolebindings"),
        cluster_role_bindings=lambda: _objects(cache, "clusterrolebindings"),
        version=lambda: _version(cache),
    )


class CachedPods:
    """``pod_lookup`` and ``pods_on_node`` for the node authorizer."""

    def __init__(self, cache: WatchCache, prefix: str = "/registry") -> None:
        self.cache = cache
        self.prefix = prefix.rstrip("/")

    def pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        found = self.cache.get("pods", f"{self.prefix}/pods/{namespace}/{name}")
        return found.obj if found is not None else None

    def on_node(self, node: str, namespace: str) -> list[Mapping[str, Any]]:
        return [
            c.obj
            for c in self.cache.resource("pods").snapshot(namespace)
            if spec(c.obj).get("nodeName") == node
        ]
