"""Serving custom kinds: the registry's overlay follows the CustomResourceDefinitions stored.

The watch cache already holds every CRD, so the overlay is rebuilt from it
whenever its CRDs change (a check that costs a few attribute reads per
request). A request that names a kind the overlay does not know yet, and
every discovery request, first lets the cache catch up with etcd: a client
that has just created a CRD sees its kind at once, from any API server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from controlplane.storage.etcd import EtcdClient, EtcdError
from controlplane.storage.store import Store
from controlplane.storage.watchcache import WatchCache
from corral.api.crd import is_established, names_conflict, resource_types
from corral.api.resources import Registry, ResourceType
from corral.objects import Obj, meta

log = logging.getLogger(__name__)

Undo = Callable[[], Awaitable[None]]


class CustomResources:
    """Keeps ``registry``'s custom kinds equal to the established CRDs in the watch cache."""

    def __init__(self, registry: Registry, cache: WatchCache) -> None:
        self.registry = registry
        self.cache = cache
        crds = registry.by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        assert crds is not None  # a built-in kind
        self.crds = crds
        self._signature: tuple[int, int, int, int] | None = None
        # At most one catch-up with etcd runs at a time, and requests that arrive
        # meanwhile share the next one: a flood of requests for unknown paths
        # (which may come before authentication) costs etcd one read at a time.
        self._running: asyncio.Task[None] | None = None
        self._queued: asyncio.Task[None] | None = None

    def _current_signature(self) -> tuple[int, int, int, int]:
        resource = self.cache.resource(self.crds.storage_resource)
        last = resource.history[-1].revision if resource.history else 0
        return (id(resource.objects), resource.window_start, last, len(resource.objects))

    def sync(self) -> None:
        """Rebuild the overlay if the cached CRDs changed since the last look."""
        signature = self._current_signature()
        if signature == self._signature:
            return
        self._signature = signature
        cached, _ = self.cache.snapshot(self.crds.storage_resource, None)
        served: list[ResourceType] = []
        for entry in cached:
            crd = entry.obj
            if not is_established(crd) or crd.get("metadata", {}).get("deletionTimestamp"):
                continue
            served.extend(resource_types(crd))
        self.registry.set_custom(served)

    async def ensure_fresh(self) -> None:
        """Catch up with etcd first: what a client has just written is then served.

        The catch-up a request joins has not read etcd's revision yet when the
        request arrives, so it covers every write the client saw complete.
        """
        if self._queued is None:
            self._queued = asyncio.create_task(self._refresh_after(self._running))
        # Shielded: a request that goes away does not cancel the others' catch-up.
        await asyncio.shield(self._queued)

    async def _refresh_after(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # its waiters saw its errors
        self._running, self._queued = self._queued, None
        try:
            await self.cache.fresh()
        except EtcdError as error:
            # The overlay stays as the cache has it; the request is answered from that.
            log.warning("could not refresh the watch cache for custom kinds: %s", error)
        finally:
            self.sync()
            if self._running is asyncio.current_task():
                self._running = None


class CustomResourceSync:
    """ASGI middleware: every API request sees the registry as the stored CRDs define it."""

    def __init__(self, app: ASGIApp, custom: CustomResources) -> None:
        self.app = app
        self.custom = custom

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope.get("path", "")
            if path.startswith(("/apis", "/openapi")):
                self.custom.sync()
                if self._needs_fresh(path):
                    await self.custom.ensure_fresh()
        await self.app(scope, receive, send)

    def _needs_fresh(self, path: str) -> bool:
        parts = [p for p in path.split("/") if p]
        if parts[0] == "openapi" or len(parts) <= 3:
            return True  # discovery and OpenAPI documents
        group, version = parts[1], parts[2]
        rest = parts[3:]
        if rest[0] == "namespaces" and len(rest) >= 3:
            rest = rest[2:]
        return self.custom.registry.by_plural(group, version, rest[0]) is None


class CustomResourceCleanup:
    """Write hooks of CustomResourceDefinition: deleting one deletes its objects."""

    def __init__(self, store: Store, etcd: EtcdClient) -> None:
        self.store = store
        self.etcd = etcd

    async def before_create(self, obj: Obj) -> Undo:
        await self._check_names(obj)
        return _nothing

    async def before_update(self, new: Obj, old: Obj) -> Undo:
        await self._check_names(new)
        return _nothing

    async def _check_names(self, crd: Obj) -> None:
        """Refuse to establish a CRD whose names another CRD of its group already uses.

        As kube-apiserver's naming controller does, the CRD is stored all the
        same, with NamesAccepted and Established False and the reason, and
        its kind is not served.
        """
        page = await self.store.page(self.store.resource_prefix("customresourcedefinitions"))
        others = [s.obj for s in page.items if meta(s.obj).get("name") != meta(crd).get("name")]
        conflict = names_conflict(crd, others)
        if conflict is None:
            return
        status = crd.setdefault("status", {})
        for condition in status.get("conditions") or []:
            if condition.get("type") == "NamesAccepted":
                condition.update(status="False", reason=conflict[0], message=conflict[1])
            elif condition.get("type") == "Established":
                condition.update(
                    status="False", reason="NotAccepted", message="not all names are accepted"
                )

    async def after_update(self, new: Obj, old: Obj) -> None:
        return None

    async def after_delete(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        plural = (spec.get("names") or {}).get("plural", "")
        group = spec.get("group", "")
        if not plural or not group:
            return
        # Every version shares one storage location, plural.group (ResourceType.storage_resource).
        prefix = self.store.resource_prefix(f"{plural}.{group}")
        deleted = await self.etcd.delete_prefix(prefix)
        log.info("deleted %d objects of %s.%s with their definition", deleted, plural, group)


async def _nothing() -> None:
    """Nothing to undo."""
