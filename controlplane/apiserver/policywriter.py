"""``PolicyWriter`` over the API server's ``Objects``: how the defaults get written.

Several API servers may start at once; whichever writes first wins, and the
others' ``AlreadyExists`` or ``Conflict`` just means the work is done.
"""

from __future__ import annotations

from controlplane.apiserver.objects import Objects
from corral.api.errors import ApiError
from corral.api.rbac import API_VERSION
from corral.api.resources import Registry, ResourceType
from corral.objects import Obj


class ObjectsPolicyWriter:
    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self.registry = registry

    def _rt(self, kind: str) -> ResourceType:
        rt = self.registry.by_kind(API_VERSION, kind)
        if rt is None:
            raise LookupError(f"the registry does not serve {API_VERSION} {kind}")
        return rt

    async def get(self, kind: str, name: str) -> Obj | None:
        try:
            return (await self.objects.get(self._rt(kind), None, name)).obj
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    async def create(self, kind: str, obj: Obj) -> None:
        try:
            await self.objects.create_object(self._rt(kind), obj)
        except ApiError as error:
            if error.code != 409:
                raise

    async def update(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        try:
            await self.objects.update(self._rt(kind), None, name, obj)
        except ApiError as error:
            if error.code != 409:
                raise
