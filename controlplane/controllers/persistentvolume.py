"""The PersistentVolume controller: binds claims to volumes, provisions local ones, reclaims.

Kubernetes' ``persistentvolume-binder`` loop, for corral's one provisioner:

- a claim naming a volume (``spec.volumeName``) is bound to that volume if
  it is free and fits; an unnamed one to the smallest free volume that
  fits (class, size, access modes, volume mode, selector), or to a volume
  whose ``claimRef`` already names it;
- a claim of a ``WaitForFirstConsumer`` class is left alone until the
  scheduler has placed a pod using it and written
  ``volume.kubernetes.io/selected-node`` on it; then it is bound to a
  fitting volume that node can reach, or, for the ``corral.io/local``
  provisioner, a new volume is made there: ``pvc-<claim uid>``, a
  directory under that node agent's volumes directory, pinned to the node;
- a bound volume whose claim is gone is ``Released``; under ``Delete``
  the controller deletes it, and the node agent that holds the directory
  removes it and then lifts the ``corral.io/local-volume-cleanup``
  finalizer; under ``Retain`` it stays Released with its data.

Binding writes four objects in Kubernetes' order (volume claimRef, volume
status, claim volumeName, claim status); each step is idempotent and the
next sync finishes whatever a crash left half done. The volume's write
carries its resourceVersion, so two claims can never take the same volume.
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane.controllers.base import Context, Controller
from corral import volumebinding as vb
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.api.storage import (
    BIND_COMPLETED_ANNOTATION,
    BOUND_BY_CONTROLLER_ANNOTATION,
    LOCAL_CLEANUP_FINALIZER,
    LOCAL_PROVISIONER,
    PROVISIONED_BY_ANNOTATION,
    SELECTED_NODE_ANNOTATION,
    STORAGE_PROVISIONER_ANNOTATION,
)
from corral.clock import rfc3339
from corral.informer import object_key
from corral.objects import Obj, annotations_of, labels_of, meta, spec, status, uid_of

log = logging.getLogger(__name__)

PVS = REGISTRY.by_kind("v1", "PersistentVolume")
PVCS = REGISTRY.by_kind("v1", "PersistentVolumeClaim")
CLASSES = REGISTRY.by_kind("storage.k8s.io/v1", "StorageClass")
NODES = REGISTRY.by_kind("v1", "Node")
assert PVS is not None and PVCS is not None and CLASSES is not None and NODES is not None

_CLAIM = "claim:"
_VOLUME = "volume:"


def provisioned_volume_name(claim: Obj) -> str:
    return f"pvc-{uid_of(claim)}"


def local_volume(claim: Obj, storage_class: Obj, node: str) -> Obj:
    """The volume corral's local provisioner makes for ``claim`` on ``node``.

    ``local.path`` is relative: the agent resolves it under its own volumes
    directory and refuses anything else (docs/storage.md).
    """
    name = provisioned_volume_name(claim)
    spec = claim.get("spec") or {}
    requests = (spec.get("resources") or {}).get("requests") or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {PROVISIONED_BY_ANNOTATION: LOCAL_PROVISIONER},
            "finalizers": [LOCAL_CLEANUP_FINALIZER],
        },
        "spec": {
            "capacity": {vb.STORAGE: requests.get(vb.STORAGE, "0")},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": vb.class_of(claim),
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": claim_ref(claim),
            "local": {"path": name},
            "nodeAffinity": vb.pinned_to(node),
        },
    }


def claim_ref(claim: Obj) -> Obj:
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": meta(claim).get("namespace", ""),
        "name": meta(claim).get("name", ""),
        "uid": uid_of(claim),
        "resourceVersion": meta(claim).get("resourceVersion", ""),
    }


def _phase(obj: Obj) -> str:
    return str(status(obj).get("phase") or "")


def _terminating(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


class PersistentVolumeController(Controller):
    name = "persistentvolume-binder"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        assert PVS is not None and PVCS is not None and CLASSES is not None and NODES is not None
        self.volumes = ctx.informer(PVS)
        self.claims = ctx.informer(PVCS)
        self.classes = ctx.informer(CLASSES)
        self.nodes = ctx.informer(NODES)
        # Events said once per object, not on every sync.
        self._said: set[tuple[str, str]] = set()
        self.claims.add_handlers(
            on_add=self._claim_changed,
            on_update=lambda old, new: self._claim_changed(new),
            on_delete=self._claim_deleted,
        )
        self.volumes.add_handlers(
            on_add=self._volume_changed,
            on_update=lambda old, new: self._volume_changed(new),
            on_delete=self._volume_changed,
        )
        self.classes.add_handlers(
            on_add=self._class_changed, on_update=lambda old, new: self._class_changed(new)
        )

    def informers(self) -> list[Any]:
        return [self.volumes, self.claims, self.classes, self.nodes]

    # --- event handlers -----------------------------------------------------------------

    def _claim_changed(self, claim: Obj) -> None:
        self.enqueue(_CLAIM + object_key(claim))
        volume = spec(claim).get("volumeName")
        if volume:
            self.enqueue(_VOLUME + volume)

    def _claim_deleted(self, claim: Obj) -> None:
        uid = uid_of(claim)
        self._said = {said for said in self._said if said[0] != uid}
        volume = spec(claim).get("volumeName")
        if volume:
            self.enqueue(_VOLUME + volume)
        # A volume reserved for the claim but not yet named by it.
        for candidate in self.volumes.items():
            if vb.claim_ref_names(candidate, claim):
                self.enqueue(_VOLUME + object_key(candidate))

    def _volume_changed(self, volume: Obj) -> None:
        self.enqueue(_VOLUME + object_key(volume))
        ref = spec(volume).get("claimRef") or {}
        if ref.get("name"):
            self.enqueue(f"{_CLAIM}{ref.get('namespace', '')}/{ref['name']}")
        elif not _terminating(volume):
            # A volume came free: claims still waiting may now bind.
            for claim in self.claims.items():
                if not spec(claim).get("volumeName"):
                    self.enqueue(_CLAIM + object_key(claim))

    def _class_changed(self, storage_class: Obj) -> None:
        name = meta(storage_class).get("name")
        for claim in self.claims.items():
            if vb.class_of(claim) == name and _phase(claim) != "Bound":
                self.enqueue(_CLAIM + object_key(claim))

    # --- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        if key.startswith(_CLAIM):
            await self.sync_claim(key[len(_CLAIM) :])
        elif key.startswith(_VOLUME):
            await self.sync_volume(key[len(_VOLUME) :])

    async def sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or _terminating(claim):
            return
        wanted = spec(claim).get("volumeName")
        if wanted:
            await self._sync_named_claim(claim, wanted)
            return
        class_name = vb.class_of(claim)
        storage_class = self.classes.get(class_name) if class_name else None
        waits = (storage_class or {}).get("volumeBindingMode") == "WaitForFirstConsumer"
        node = annotations_of(claim).get(SELECTED_NODE_ANNOTATION)
        if waits and not node:
            await self._say_once(
                claim,
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            )
            return
        labels = self._node_labels(node) if waits and node else None
        volume = vb.best_fit(
            self.volumes.items(), claim, node=node if waits else None, labels=labels
        )
        if volume is not None:
            await self._bind(dict(volume), claim)
            return
        if storage_class is None:
            message = (
                f'storageclass.storage.k8s.io "{class_name}" not found'
                if class_name
                else "no persistent volumes available for this claim and no storage class is set"
            )
            await self._say_once(claim, "Warning", "FailedBinding", message)
            return
        provisioner = storage_class.get("provisioner") or ""
        if provisioner != LOCAL_PROVISIONER:
            await self._say_once(
                claim,
                "Normal",
                "ExternalProvisioning",
                f"Waiting for a volume to be created by the external provisioner '{provisioner}'",
            )
            return
        if not waits:
            await self._say_once(
                claim,
                "Warning",
                "ProvisioningFailed",
                f"{LOCAL_PROVISIONER} makes volumes on a node's disk, so its classes must use "
                "volumeBindingMode WaitForFirstConsumer",
            )
            return
        assert node is not None
        await self._provision(claim, storage_class, node)

    def _node_labels(self, node: str) -> dict[str, str]:
        found = self.nodes.get(node)
        labels: dict[str, str] = dict(labels_of(found)) if found else {}
        # A node the cache has not seen yet still answers to its own name.
        labels.setdefault(vb.HOSTNAME_LABEL, node)
        return labels

    async def _sync_named_claim(self, claim: Obj, wanted: str) -> None:
        volume = self.volumes.get(wanted)
        if volume is None:
            if _phase(claim) == "Bound":
                await self._claim_status(claim, {"phase": "Lost"})
                await self._say_once(
                    claim,
                    "Warning",
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
            return
        ref = spec(volume).get("claimRef") or {}
        if vb.claim_ref_names(volume, claim) or not ref.get("name"):
            if not ref.get("name") and not vb.fits(volume, claim):
                await self._say_once(
                    claim,
                    "Warning",
                    "VolumeMismatch",
                    f'volume "{wanted}" does not fit the claim (class, size, access modes or '
                    "volume mode)",
                )
                return
            await self._bind(volume, claim)
            return
        await self._say_once(
            claim,
            "Warning",
            "FailedBinding",
            f'volume "{wanted}" already bound to a different claim.',
        )

    # --- binding ------------------------------------------------------------------------------

    async def _bind(self, volume: Obj, claim: Obj) -> None:
        name = str(meta(volume).get("name"))
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if ref.get("uid") != uid_of(claim):
            patch: Obj = {
                "metadata": {"resourceVersion": meta(volume).get("resourceVersion")},
                "spec": {"claimRef": claim_ref(claim)},
            }
            if not ref.get("name"):
                patch["metadata"]["annotations"] = {BOUND_BY_CONTROLLER_ANNOTATION: "yes"}
            assert PVS is not None
            volume = await self.client.patch(PVS, name, patch)
        if _phase(volume) != "Bound":
            await self._volume_status(volume, {"phase": "Bound"})
        spec = claim.get("spec") or {}
        annotations = annotations_of(claim)
        if spec.get("volumeName") != name or annotations.get(BIND_COMPLETED_ANNOTATION) != "yes":
            claim_patch: Obj = {
                "metadata": {
                    "uid": uid_of(claim),
                    "annotations": {BIND_COMPLETED_ANNOTATION: "yes"},
                },
                "spec": {"volumeName": name},
            }
            if not spec.get("volumeName"):
                claim_patch["metadata"]["annotations"][BOUND_BY_CONTROLLER_ANNOTATION] = "yes"
            assert PVCS is not None
            claim = await self.client.patch(
                PVCS, str(meta(claim)["name"]), claim_patch, str(meta(claim)["namespace"])
            )
        volume_spec = volume.get("spec") or {}
        desired = {
            "phase": "Bound",
            "accessModes": volume_spec.get("accessModes") or [],
            "capacity": volume_spec.get("capacity") or {},
        }
        current = status(claim)
        if any(current.get(k) != v for k, v in desired.items()):
            await self._claim_status(claim, desired)
            await self._event(
                claim, "Normal", "Bound", f'Successfully bound to volume "{name}"', once=False
            )

    async def _provision(self, claim: Obj, storage_class: Obj, node: str) -> None:
        assert PVS is not None and PVCS is not None
        annotations = annotations_of(claim)
        if annotations.get(STORAGE_PROVISIONER_ANNOTATION) != LOCAL_PROVISIONER:
            claim = await self.client.patch(
                PVCS,
                str(meta(claim)["name"]),
                {
                    "metadata": {
                        "uid": uid_of(claim),
                        "annotations": {STORAGE_PROVISIONER_ANNOTATION: LOCAL_PROVISIONER},
                    }
                },
                str(meta(claim)["namespace"]),
            )
        body = local_volume(claim, storage_class, node)
        try:
            await self.client.create(PVS, body)
        except ApiError as error:
            if error.reason == "AlreadyExists":
                return  # made by an earlier sync; binding follows once the cache shows it
            await self._event(
                claim, "Warning", "ProvisioningFailed", f"creating the volume: {error.message}"
            )
            raise
        await self._event(
            claim,
            "Normal",
            "ProvisioningSucceeded",
            f'Successfully provisioned volume {body["metadata"]["name"]} on node "{node}"',
            once=False,
        )

    # --- volumes --------------------------------------------------------------------------------

    async def sync_volume(self, name: str) -> None:
        volume = self.volumes.get(name)
        if volume is None or _terminating(volume):
            return
        ref = spec(volume).get("claimRef") or {}
        if not ref.get("name"):
            if _phase(volume) != "Available":
                await self._volume_status(volume, {"phase": "Available"})
            return
        claim = self.claims.get(f"{ref.get('namespace', '')}/{ref['name']}")
        if claim is not None and (not ref.get("uid") or ref.get("uid") == uid_of(claim)):
            if spec(claim).get("volumeName") == name and _phase(volume) != "Bound":
                await self._volume_status(volume, {"phase": "Bound"})
            elif not ref.get("uid") and _phase(volume) != "Available":
                # Reserved for a claim by name, not yet bound to it.
                await self._volume_status(volume, {"phase": "Available"})
            return
        if not ref.get("uid"):
            # Reserved for a claim that does not exist yet.
            if _phase(volume) != "Available":
                await self._volume_status(volume, {"phase": "Available"})
            return
        if claim is None and not await self._claim_really_gone(ref):
            return
        await self._reclaim(volume)

    async def _claim_really_gone(self, ref: Obj) -> bool:
        """Ask the API server, not the cache: releasing a volume on a stale cache loses data."""
        assert PVCS is not None
        try:
            found = await self.client.get(PVCS, str(ref.get("name")), str(ref.get("namespace")))
        except ApiError as error:
            if error.code == 404:
                return True
            raise
        return uid_of(found) != ref.get("uid")

    async def _reclaim(self, volume: Obj) -> None:
        assert PVS is not None
        name = str(meta(volume).get("name"))
        policy = spec(volume).get("persistentVolumeReclaimPolicy") or "Retain"
        if _phase(volume) not in ("Released", "Failed"):
            await self._volume_status(volume, {"phase": "Released"})
        if policy != "Delete":
            return
        provisioner = annotations_of(volume).get(PROVISIONED_BY_ANNOTATION)
        if provisioner != LOCAL_PROVISIONER:
            message = (
                f"corral deletes only volumes its {LOCAL_PROVISIONER} provisioner made; "
                "delete this one by hand"
            )
            if _phase(volume) != "Failed":
                await self._volume_status(volume, {"phase": "Failed", "message": message})
                await self._event(volume, "Warning", "VolumeFailedDelete", message)
            return
        try:
            await self.client.delete(PVS, name)
        except ApiError as error:
            if error.code != 404:
                raise
        await self._event(
            volume,
            "Normal",
            "VolumeDelete",
            "claim is gone and the reclaim policy is Delete; "
            "the node agent removes the data, then the volume",
            once=False,
        )

    # --- writes and events ------------------------------------------------------------------------

    async def _volume_status(self, volume: Obj, status: Obj) -> None:
        assert PVS is not None
        status = {**status, "lastPhaseTransitionTime": rfc3339(self.clock.now())}
        if "message" not in status:
            status["message"] = None
        try:
            await self.client.patch(
                PVS,
                str(meta(volume)["name"]),
                {"metadata": {"uid": uid_of(volume)}, "status": status},
                subresource="status",
            )
        except ApiError as error:
            if error.code != 404:
                raise

    async def _claim_status(self, claim: Obj, status: Obj) -> None:
        assert PVCS is not None
        try:
            await self.client.patch(
                PVCS,
                str(meta(claim)["name"]),
                {"metadata": {"uid": uid_of(claim)}, "status": status},
                str(meta(claim)["namespace"]),
                subresource="status",
            )
        except ApiError as error:
            if error.code != 404:
                raise

    async def _say_once(self, obj: Obj, kind: str, reason: str, message: str) -> None:
        await self._event(obj, kind, reason, message, once=True)

    async def _event(
        self, obj: Obj, kind: str, reason: str, message: str, *, once: bool = True
    ) -> None:
        if once:
            said = (uid_of(obj), reason)
            if said in self._said:
                return
            self._said.add(said)
        if self.ctx.events is not None:
            await self.ctx.events.record(obj, kind, reason, message)
