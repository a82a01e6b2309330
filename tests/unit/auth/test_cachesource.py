"""Authorizers fed from the watch cache (filled by hand here: no etcd)."""

from __future__ import annotations

from typing import Any

from controlplane.auth.cachesource import CachedPods, policy_source
from controlplane.auth.rbac import RBACAuthorizer
from controlplane.storage.watchcache import CachedObject, CacheEvent, WatchCache
from corral.objects import Obj

from .helpers import attrs, role, role_binding, rule, subject, user


def put(cache: WatchCache, resource: str, obj: Obj, revision: int) -> None:
    meta = obj["metadata"]
    namespace = meta.get("namespace", "")
    key = (
        f"/registry/{resource}/{namespace}/{meta['name']}"
        if namespace
        else f"/registry/{resource}/{meta['name']}"
    )
    cached = CachedObject(key, namespace, meta["name"], revision, obj)
    rc = cache.resource(resource)
    prev = rc.put(cached)
    rc.record(CacheEvent("ADDED" if prev is None else "MODIFIED", revision, cached, prev))


def new_cache() -> WatchCache:
    client: Any = None  # never used: nothing here talks to etcd
    return WatchCache(client)


def test_rbac_follows_the_cache() -> None:
    cache = new_cache()
    auth = RBACAuthorizer(policy_source(cache))
    request = attrs(user("ci"), "get", "pods", namespace="prod", name="p")
    assert not auth.authorize(request).allowed
    put(cache, "roles", role("r", "prod", rule(["get"], [""], ["pods"])), 2)
    put(cache, "rolebindings", role_binding("b", "prod", "Role", "r", subject("User", "ci")), 3)
    assert auth.authorize(request).allowed


def test_a_deleted_binding_refuses_the_next_request() -> None:
    """The compiled policy is a cache: a binding's deletion must leave no stale allow."""
    cache = new_cache()
    auth = RBACAuthorizer(policy_source(cache))
    request = attrs(user("ci"), "create", "pods", namespace="prod")
    put(cache, "roles", role("r", "prod", rule(["create"], [""], ["pods"])), 2)
    put(cache, "rolebindings", role_binding("b", "prod", "Role", "r", subject("User", "ci")), 3)
    assert auth.authorize(request).allowed
    rc = cache.resource("rolebindings")
    gone = rc.remove("/registry/rolebindings/prod/b")
    assert gone is not None
    rc.record(CacheEvent("DELETED", 4, gone, gone))
    assert not auth.authorize(request).allowed
    # Deleting the role (the binding back) refuses too.
    put(cache, "rolebindings", role_binding("b", "prod", "Role", "r", subject("User", "ci")), 5)
    assert auth.authorize(request).allowed
    roles = cache.resource("roles")
    removed = roles.remove("/registry/roles/prod/r")
    assert removed is not None
    roles.record(CacheEvent("DELETED", 6, removed, removed))
    assert not auth.authorize(request).allowed


def test_pod_writes_do_not_rebuild_the_policy() -> None:
    cache = new_cache()
    source = policy_source(cache)
    assert source.version is not None
    before = source.version()
    put(cache, "pods", {"metadata": {"name": "p", "namespace": "prod"}, "spec": {}}, 7)
    assert source.version() == before
    put(cache, "clusterroles", {"metadata": {"name": "c"}, "rules": []}, 8)
    assert source.version() != before


def test_cached_pods() -> None:
    cache = new_cache()
    put(
        cache,
        "pods",
        {"metadata": {"name": "a", "namespace": "prod"}, "spec": {"nodeName": "n1"}},
        2,
    )
    put(
        cache,
        "pods",
        {"metadata": {"name": "b", "namespace": "prod"}, "spec": {"nodeName": "n2"}},
        3,
    )
    put(
        cache,
        "pods",
        {"metadata": {"name": "c", "namespace": "dev"}, "spec": {"nodeName": "n1"}},
        4,
    )
    pods = CachedPods(cache)
    found = pods.pod("prod", "a")
    assert found is not None and found["spec"]["nodeName"] == "n1"
    assert pods.pod("prod", "zzz") is None
    assert [p["metadata"]["name"] for p in pods.on_node("n1", "prod")] == ["a"]
