"""Garbage collection: cascading deletion by ``metadata.ownerReferences``.

The collector watches every kind the API serves (except Events, which
nothing owns, as Kubernetes also leaves them out) and indexes objects by
UID and by the UIDs of their owners. It acts on three situations:

- Background: an object whose owners are all gone is deleted.
- Foreground: an owner being deleted with the ``foregroundDeletion``
  finalizer has its dependents deleted; once none that block owner
  deletion remain, the finalizer comes off and the owner goes.
- Orphan: an owner being deleted with the ``orphan`` finalizer has the
  references to it removed from its dependents, then the finalizer comes
  off.

Caches can be behind, so nothing is deleted on the cache's word: an owner
missing from the cache is looked up in the API, and a dependent is read
fresh before it is deleted, with its UID as a precondition.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from controlplane.controllers import podutil
from controlplane.controllers.base import Context, Controller
from controlplane.controllers.customkinds import CustomKindInformers
from controlplane.controllers.podutil import is_terminating
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.rest import resource_path
from corral.informer import Informer, object_key
from corral.objects import Obj, meta, owner_references, uid_of

log = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
IGNORED_KINDS = frozenset({"Event"})
UID_INDEX = "gc-uid"
OWNER_INDEX = "gc-owner-uid"
_ABSENT_REMEMBERED = 1024


class Owner(enum.Enum):
    """What a dependent's reference to one owner amounts to."""

    SOLID = "solid"  # exists (or cannot be resolved, so must be assumed to)
    DANGLING = "dangling"  # gone, or replaced by another object of the same name
    WAITING = "waiting"  # being deleted in the foreground: waits for its dependents


def is_deleting_dependents(obj: Obj) -> bool:
    return is_terminating(obj) and FOREGROUND in (meta(obj).get("finalizers") or [])


def owner_uids(obj: Obj) -> list[str]:
    return [str(ref.get("uid")) for ref in owner_references(obj) if ref.get("uid")]


def deletion_policy(obj: Obj, owners: dict[str, Owner], has_dependents: bool) -> str | None:
    """How to delete ``obj`` given its owners' states; None to leave it alone.

    Any solid owner keeps it. With no solid owner, a dependent of a
    foreground deletion that has dependents of its own is deleted in the
    foreground too, so the chain is removed bottom-up; otherwise the
    object's own finalizers choose, and Background is the default.
    """
    states = set(owners.values())
    if not states or Owner.SOLID in states:
        return None
    if Owner.WAITING in states and has_dependents:
        return "Foreground"
    finalizers = meta(obj).get("finalizers") or []
    if ORPHAN in finalizers:
        return "Orphan"
    if FOREGROUND in finalizers:
        return "Foreground"
    return "Background"


def owner_fix_patch(obj: Obj, owners: dict[str, Owner]) -> Obj | None:
    """For an object that keeps a solid owner: drop references to gone owners, and stop
    blocking owners waiting on it (they would otherwise wait for it forever)."""
    refs: list[Obj] = []
    for uid, state in owners.items():
        if state is Owner.DANGLING:
            refs.append({"$patch": "delete", "uid": uid})
        elif state is Owner.WAITING:
            refs.append({"uid": uid, "blockOwnerDeletion": False})
    if not refs:
        return None
    return {"metadata": {"ownerReferences": refs, "uid": uid_of(obj)}}


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 4

    def __init__(self, ctx: Context, resources: Iterable[ResourceType] | None = None) -> None:
        super().__init__(ctx)
        self.watched: dict[str, tuple[ResourceType, Informer]] = {}
        for rt in REGISTRY if resources is None else resources:
            if rt.kind in IGNORED_KINDS or not {"list", "watch"} <= set(rt.verbs):
                continue
            self._follow(rt, ctx.informer(rt))
        # Custom kinds join as their CRDs are established (with the full registry only).
        self.custom_kinds = CustomKindInformers(ctx, self._follow) if resources is None else None
        # UIDs never come back, so an owner once known gone is gone for good.
        self._absent: OrderedDict[str, None] = OrderedDict()

    def _follow(self, rt: ResourceType, informer: Informer) -> None:
        informer.add_index(UID_INDEX, lambda o: [uid_of(o)] if uid_of(o) else [])
        informer.add_index(OWNER_INDEX, owner_uids)
        informer.add_handlers(
            on_add=self._added(rt), on_update=self._updated(rt), on_delete=self._deleted(rt)
        )
        self.watched[rt.qualified] = (rt, informer)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            if self.custom_kinds is not None:
                await self.custom_kinds.stop_all()

    # --- items and lookups -------------------------------------------------------------

    @staticmethod
    def item(rt: ResourceType, obj: Obj) -> str:
        return f"{rt.qualified}|{object_key(obj)}"

    def _enqueue_obj(self, rt: ResourceType, obj: Obj) -> None:
        self.enqueue(self.item(rt, obj))

    def dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        return [
            (rt, obj)
            for rt, informer in self.watched.values()
            for obj in informer.by_index(OWNER_INDEX, uid)
        ]

    def by_uid(self, uid: str) -> tuple[ResourceType, Obj] | None:
        for rt, informer in self.watched.values():
            found = informer.by_index(UID_INDEX, uid)
            if found:
                return rt, found[0]
        return None

    # --- event handlers ------------------------------------------------------------------

    def _added(self, rt: ResourceType) -> Any:
        def handler(obj: Obj) -> None:
            if owner_references(obj) or _gc_finalizer_pending(obj):
                self._enqueue_obj(rt, obj)

        return handler

    def _updated(self, rt: ResourceType) -> Any:
        def handler(old: Obj, new: Obj) -> None:
            old_meta, new_meta = meta(old), meta(new)
            if any(
                old_meta.get(field) != new_meta.get(field)
                for field in ("ownerReferences", "finalizers", "deletionTimestamp", "uid")
            ):
                self._enqueue_obj(rt, new)

        return handler

    def _deleted(self, rt: ResourceType) -> Any:
        def handler(obj: Obj) -> None:
            for dependent_rt, dependent in self.dependents(uid_of(obj)):
                self._enqueue_obj(dependent_rt, dependent)
            # An owner deleting in the foreground may have been waiting for this one.
            for uid in owner_uids(obj):
                found = self.by_uid(uid)
                if found is not None and is_deleting_dependents(found[1]):
                    self._enqueue_obj(*found)

        return handler

    # --- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        qualified, _, object_name = key.partition("|")
        entry = self.watched.get(qualified)
        if entry is None:
            return
        rt, informer = entry
        obj = informer.get(object_name)
        if obj is None:
            return
        if is_terminating(obj):
            finalizers = meta(obj).get("finalizers") or []
            if ORPHAN in finalizers:
                await self._orphan_dependents(rt, obj)
            elif FOREGROUND in finalizers:
                await self._delete_dependents(rt, obj)
            return
        if owner_references(obj):
            await self._collect(rt, obj)

    async def _orphan_dependents(self, rt: ResourceType, owner: Obj) -> None:
        uid = uid_of(owner)
        for dependent_rt, dependent in self.dependents(uid):
            await self._patch(dependent_rt, dependent, podutil.release_patch(uid, dependent))
        log.info("orphaned the dependents of %s %s", rt.kind, object_key(owner))
        await self._remove_finalizer(rt, owner, ORPHAN)

    async def _delete_dependents(self, rt: ResourceType, owner: Obj) -> None:
        uid = uid_of(owner)
        blocking = 0
        for dependent_rt, dependent in self.dependents(uid):
            ref = next((r for r in owner_references(dependent) if r.get("uid") == uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking += 1
            if not is_terminating(dependent) or is_deleting_dependents(dependent):
                self._enqueue_obj(dependent_rt, dependent)
        if blocking == 0:
            log.info("dependents of %s %s are gone", rt.kind, object_key(owner))
            await self._remove_finalizer(rt, owner, FOREGROUND)

    async def _collect(self, rt: ResourceType, obj: Obj) -> None:
        owners = {
            str(ref.get("uid")): await self._owner_state(ref, obj) for ref in owner_references(obj)
        }
        if set(owners.values()) <= {Owner.SOLID}:
            return
        latest = await self._fresh(rt, obj)
        if latest is None or (is_terminating(latest) and not is_deleting_dependents(latest)):
            return
        # The fresh copy's references are the ones that count (an orphaning may
        # have removed some since the cache saw the object).
        owners = {
            str(ref.get("uid")): owners.get(str(ref.get("uid")))
            or await self._owner_state(ref, obj)
            for ref in owner_references(latest)
        }
        policy = deletion_policy(latest, owners, bool(self.dependents(uid_of(latest))))
        if policy is None:
            patch = owner_fix_patch(latest, owners)
            if patch is not None:
                await self._patch(rt, latest, patch)
            return
        log.info("deleting %s %s (%s): its owners are gone", rt.kind, object_key(latest), policy)
        await self._delete(rt, latest, policy)

    async def _owner_state(self, ref: Obj, dependent: Obj) -> Owner:
        api_version, kind = str(ref.get("apiVersion", "")), str(ref.get("kind", ""))
        owner_rt = REGISTRY.by_kind(api_version, kind)
        if owner_rt is None and self.custom_kinds is not None:
            owner_rt = self.custom_kinds.resolve(api_version, kind)
        uid = str(ref.get("uid", ""))
        namespace = meta(dependent).get("namespace")
        if owner_rt is None or (owner_rt.namespaced and not namespace):
            # Unknown kinds, and namespaced owners of cluster-scoped objects, cannot be
            # resolved; as in Kubernetes, such a dependent is never collected.
            return Owner.SOLID
        if uid in self._absent:
            self._absent.move_to_end(uid)
            return Owner.DANGLING
        name = str(ref.get("name", ""))
        key = f"{namespace}/{name}" if owner_rt.namespaced else name
        entry = self.watched.get(owner_rt.qualified)
        found = entry[1].get(key) if entry is not None else None
        if found is None or uid_of(found) != uid:
            try:
                found = await self.client.get(owner_rt, name, namespace)
            except ApiError as error:
                if error.code != 404:
                    raise
                found = None
        if found is None or uid_of(found) != uid:
            self._absent[uid] = None
            if len(self._absent) > _ABSENT_REMEMBERED:
                self._absent.popitem(last=False)
            return Owner.DANGLING
        return Owner.WAITING if is_deleting_dependents(found) else Owner.SOLID

    # --- writes ------------------------------------------------------------------------------

    async def _fresh(self, rt: ResourceType, obj: Obj) -> Obj | None:
        try:
            latest = await self.client.get(rt, meta(obj)["name"], meta(obj).get("namespace"))
        except ApiError as error:
            if error.code == 404:
                return None
            raise
        return latest if uid_of(latest) == uid_of(obj) else None

    async def _delete(self, rt: ResourceType, obj: Obj, policy: str) -> None:
        options = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": policy,
            "preconditions": {"uid": uid_of(obj)},
        }
        path = resource_path(rt, meta(obj).get("namespace"), meta(obj)["name"])
        try:
            await self.client.request("DELETE", path, body=options)
        except ApiError as error:
            if error.code not in (404, 409):  # gone already, or replaced by a namesake
                raise

    async def _patch(self, rt: ResourceType, obj: Obj, patch: Obj) -> None:
        patch_type = "strategic"
        if rt.custom is not None:  # custom kinds take no strategic merge patch
            patch, patch_type = as_merge_patch(obj, patch), "merge"
        try:
            await self.client.patch(
                rt, meta(obj)["name"], patch, meta(obj).get("namespace"), patch_type=patch_type
            )
        except ApiError as error:
            if error.code not in (404, 409):
                raise

    async def _remove_finalizer(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
        patch = {
            "metadata": {"$deleteFromPrimitiveList/finalizers": [finalizer], "uid": uid_of(obj)}
        }
        await self._patch(rt, obj, patch)


def as_merge_patch(obj: Obj, patch: Obj) -> Obj:
    """This module's strategic patches of ``obj`` (dropping an owner reference or a
    finalizer) as JSON merge patches, which replace the whole list."""
    changes = dict(patch.get("metadata") or {})
    out: Obj = {"uid": changes.pop("uid", uid_of(obj))}
    gone = changes.pop("$deleteFromPrimitiveList/finalizers", None)
    if gone is not None:
        out["finalizers"] = [f for f in meta(obj).get("finalizers") or [] if f not in gone]
    references = changes.pop("ownerReferences", None)
    if references is not None:
        dropped = {r.get("uid") for r in references if r.get("$patch") == "delete"}
        out["ownerReferences"] = [r for r in owner_references(obj) if r.get("uid") not in dropped]
    return {"metadata": {**changes, **out}}


def _gc_finalizer_pending(obj: Obj) -> bool:
    finalizers = meta(obj).get("finalizers") or []
    return is_terminating(obj) and (ORPHAN in finalizers or FOREGROUND in finalizers)
