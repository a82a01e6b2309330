"""A recording stand-in for the REST client, and contexts whose informers are filled by hand."""

from __future__ import annotations

import copy
from typing import Any, cast

from controlplane.controllers.base import Context, Controller
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.rest import Client
from corral.clock import ManualClock
from corral.objects import Obj


def rt(kind: str, api_version: str = "v1") -> ResourceType:
    found = REGISTRY.by_kind(api_version, kind)
    assert found is not None
    return found


class FakeClient:
    """Records every write; reads answer from ``objects`` (by plural and key) or 404."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.objects: dict[tuple[str, str], Obj] = {}

    def _key(self, rt: ResourceType, name: str, namespace: str | None) -> tuple[str, str]:
        return rt.plural, f"{namespace}/{name}" if rt.namespaced else name

    async def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj:
        found = self.objects.get(self._key(rt, name, namespace))
        if found is None:
            raise ApiError(404, "NotFound", f'{rt.plural} "{name}" not found')
        return copy.deepcopy(found)

    async def patch(
        self, rt: ResourceType, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Obj:
        self.calls.append(("patch", f"{rt.plural}/{name}", {"patch": patch, **kw}))
        return {"metadata": {"name": name, "namespace": namespace}}

    async def create(
        self, rt: ResourceType, obj: Obj, namespace: str | None = None, **kw: Any
    ) -> Obj:
        self.calls.append(("create", rt.plural, obj))
        created = copy.deepcopy(obj)
        created["metadata"].setdefault(
            "name", created["metadata"].get("generateName", "") + "abcde"
        )
        return created

    async def replace(
        self, rt: ResourceType, obj: Obj, namespace: str | None = None, **kw: Any
    ) -> Obj:
        self.calls.append(("replace", f"{rt.plural}/{obj['metadata']['name']}", {"obj": obj, **kw}))
        return obj

    async def delete(
        self, rt: ResourceType, name: str, namespace: str | None = None, **kw: Any
    ) -> Obj:
        self.calls.append(("delete", f"{rt.plural}/{name}", kw))
        return {}

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.calls.append((method, path, kw.get("body")))
        return {}

    def writes(self, verb: str) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] == verb]


def context(clock: ManualClock | None = None) -> tuple[Context, FakeClient]:
    fake = FakeClient()
    return Context(client=cast(Client, fake), clock=clock or ManualClock()), fake


def fill(ctx: Context, resource: ResourceType, *objects: Obj) -> None:
    """Put objects in the shared informer for ``resource``, as a first list would."""
    items = []
    for obj in objects:
        item = copy.deepcopy(obj)
        item.setdefault("apiVersion", resource.api_version)
        item.setdefault("kind", resource.kind)
        item.setdefault("metadata", {}).setdefault("resourceVersion", "1")
        items.append(item)
    ctx.informer(resource).replace(items, "1")


async def queued(controller: Controller) -> set[str]:
    """Take every key waiting in a controller's queue."""
    keys = set()
    while len(controller.queue):
        key = await controller.queue.get()
        controller.queue.done(key)
        keys.add(key)
    return keys
