"""The default StorageClass: the one every cluster starts with, and claims that name none.

``corral-local`` is written when the API server starts, beside the default
namespaces and RBAC policy, so a claim made the moment ``corral up`` returns
already finds it, with or without a controller manager running. It is only
ever created, never overwritten: an administrator may take the default
annotation off it, or delete it, and a restart recreates it only if it is
gone (as Kubernetes' addon manager does with ``EnsureExists``).

A claim created without ``storageClassName`` gets the default class, as
Kubernetes' DefaultStorageClass admission plugin does: the newest class
annotated ``storageclass.kubernetes.io/is-default-class: "true"``. An
explicit ``""`` means "no class" and is left alone.
"""

from __future__ import annotations

import logging

from controlplane.apiserver.objects import Objects, Undo
from controlplane.storage.watchcache import WatchCache
from corral.api.errors import ApiError
from corral.api.resources import Registry
from corral.api.storage import (
    BETA_DEFAULT_CLASS_ANNOTATION,
    DEFAULT_CLASS_ANNOTATION,
    DEFAULT_CLASS_NAME,
    LOCAL_PROVISIONER,
)
from corral.objects import Obj, annotations_of, meta, name_of

log = logging.getLogger(__name__)

DEFAULT_CLASS: Obj = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": DEFAULT_CLASS_NAME,
        "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
        "labels": {"corral.io/bootstrapping": "default-storage-class"},
    },
    "provisioner": LOCAL_PROVISIONER,
    # Where the data lands is only known once the pod is placed.
    "volumeBindingMode": "WaitForFirstConsumer",
    "reclaimPolicy": "Delete",
}


async def ensure_default_storage_class(objects: Objects, registry: Registry) -> bool:
    """Create ``corral-local`` unless it exists; True when it was written."""
    rt = registry.by_kind("storage.k8s.io/v1", "StorageClass")
    assert rt is not None
    try:
        await objects.create(rt, None, DEFAULT_CLASS)
    except ApiError as error:
        if error.reason != "AlreadyExists":
            raise
        return False
    log.info("created the default storage class %s", DEFAULT_CLASS_NAME)
    return True


def is_default_class(storage_class: Obj) -> bool:
    annotations = annotations_of(storage_class)
    return "true" in (
        annotations.get(DEFAULT_CLASS_ANNOTATION),
        annotations.get(BETA_DEFAULT_CLASS_ANNOTATION),
    )


def default_class(classes: list[Obj]) -> str | None:
    """The default class's name: the newest marked one, then the first by name."""
    marked = [c for c in classes if is_default_class(c)]
    if not marked:
        return None

    # Stable sorts: newest first, and by name among classes made the same second.
    marked.sort(key=name_of)
    marked.sort(key=lambda c: meta(c).get("creationTimestamp") or "", reverse=True)
    return name_of(marked[0])


async def _nothing() -> None:
    return None


class DefaultStorageClass:
    """Write hooks for PersistentVolumeClaims: fill in the default class on create."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache

    async def before_create(self, obj: Obj) -> Undo:
        spec = obj.setdefault("spec", {})
        if spec.get("storageClassName") is None:
            cached, _ = self.cache.snapshot("storageclasses", None)
            name = default_class([c.obj for c in cached])
            if name is not None:
                spec["storageClassName"] = name
        return _nothing

    async def before_update(self, new: Obj, old: Obj) -> Undo:
        return _nothing

    async def after_update(self, new: Obj, old: Obj) -> None:
        return None

    async def after_delete(self, obj: Obj) -> None:
        return None
