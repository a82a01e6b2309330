"""Storage object in-use protection: a claim or volume in use is not removed under its pod.

The API server puts ``kubernetes.io/pvc-protection`` on every claim and
``kubernetes.io/pv-protection`` on every volume when they are created (the
StorageObjectInUseProtection admission plugin's job). Deleting either only
marks it; this controller lifts the finalizer once nothing uses the object:

- a claim, once no pod in its namespace that has not terminated (Succeeded
  or Failed) names it. The pods are listed from the API server, not the
  cache, before the finalizer goes, as Kubernetes does: a pod created a
  moment ago must not lose its claim to a stale cache;
- a volume, once it is not Bound to a claim.
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane.controllers.base import Context, Controller
from controlplane.controllers.podutil import NAMESPACE_INDEX, by_namespace
from corral import volumebinding as vb
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.api.storage import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER
from corral.informer import object_key
from corral.objects import Obj, meta, namespace_of, status, uid_of

log = logging.getLogger(__name__)

PODS = REGISTRY.by_kind("v1", "Pod")
PVS = REGISTRY.by_kind("v1", "PersistentVolume")
PVCS = REGISTRY.by_kind("v1", "PersistentVolumeClaim")
assert PODS is not None and PVS is not None and PVCS is not None

_CLAIM = "claim:"
_VOLUME = "volume:"


def pod_uses(pod: Obj, claim: str) -> bool:
    return not vb.pod_is_terminated(pod) and claim in vb.claim_names(pod)


class VolumeProtectionController(Controller):
    name = "volume-protection"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        assert PODS is not None and PVS is not None and PVCS is not None
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, by_namespace)
        self.claims = ctx.informer(PVCS)
        self.volumes = ctx.informer(PVS)
        self.claims.add_handlers(
            on_add=self._claim_changed, on_update=lambda old, new: self._claim_changed(new)
        )
        self.volumes.add_handlers(
            on_add=self._volume_changed, on_update=lambda old, new: self._volume_changed(new)
        )
        self.pods.add_handlers(
            on_update=lambda old, new: self._pod_changed(new), on_delete=self._pod_changed
        )

    def informers(self) -> list[Any]:
        return [self.pods, self.claims, self.volumes]

    def _claim_changed(self, claim: Obj) -> None:
        if meta(claim).get("deletionTimestamp"):
            self.enqueue(_CLAIM + object_key(claim))

    def _volume_changed(self, volume: Obj) -> None:
        if meta(volume).get("deletionTimestamp"):
            self.enqueue(_VOLUME + object_key(volume))

    def _pod_changed(self, pod: Obj) -> None:
        namespace = namespace_of(pod)
        for claim in vb.claim_names(pod):
            self.enqueue(f"{_CLAIM}{namespace}/{claim}")

    async def sync(self, key: str) -> None:
        if key.startswith(_CLAIM):
            await self._sync_claim(key[len(_CLAIM) :])
        elif key.startswith(_VOLUME):
            await self._sync_volume(key[len(_VOLUME) :])

    async def _sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or not meta(claim).get("deletionTimestamp"):
            return
        if PVC_PROTECTION_FINALIZER not in (meta(claim).get("finalizers") or []):
            return
        namespace, name = vb.claim_key(claim)
        if any(pod_uses(p, name) for p in self.pods.by_index(NAMESPACE_INDEX, namespace)):
            return
        assert PODS is not None and PVCS is not None
        listed = await self.client.list(PODS, namespace)
        if any(pod_uses(p, name) for p in listed.get("items") or []):
            return
        await self._lift(PVCS, claim, PVC_PROTECTION_FINALIZER)

    async def _sync_volume(self, name: str) -> None:
        volume = self.volumes.get(name)
        if volume is None or not meta(volume).get("deletionTimestamp"):
            return
        if PV_PROTECTION_FINALIZER not in (meta(volume).get("finalizers") or []):
            return
        if (status(volume).get("phase")) == "Bound":
            return
        assert PVS is not None
        await self._lift(PVS, volume, PV_PROTECTION_FINALIZER)

    async def _lift(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
        remaining = [f for f in meta(obj).get("finalizers") or [] if f != finalizer]
        patch = {
            "metadata": {
                "uid": uid_of(obj),
                # Other finalizers may be changing too: write over exactly what was read.
                "resourceVersion": meta(obj).get("resourceVersion"),
                "finalizers": remaining,
            }
        }
        try:
            await self.client.patch(rt, str(meta(obj)["name"]), patch, meta(obj).get("namespace"))
        except ApiError as error:
            if error.code != 404:
                raise
