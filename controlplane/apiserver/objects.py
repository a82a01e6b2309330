"""Create, read, update and delete objects: the API's write path.

Handlers decode requests; this module turns them into storage operations
with Kubernetes' rules: server-owned metadata, strategies per kind,
validation, resourceVersion preconditions, finalizers and graceful deletion.
Every write is one etcd transaction; read-modify-write operations retry on
conflict only when the client did not ask for a specific resourceVersion.
"""

from __future__ import annotations

import copy
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.registry.strategy import Strategy, deletion_timestamp, strategy_for
from controlplane.storage import store as storage
from controlplane.storage.store import Requirement, Store, Stored
from controlplane.storage.watchcache import WatchCache
from corral.api import errors
from corral.api.base import ApiModel
from corral.api.decode import FieldValidation, decode
from corral.api.errors import ApiError, Cause
from corral.api.meta import meta_of
from corral.api.resources import Registry, ResourceType
from corral.api.validate import validate_object
from corral.clock import Clock, rfc3339
from corral.objects import Obj
from corral.uids import new_uid

log = logging.getLogger(__name__)

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GENERATE_NAME_ATTEMPTS = 8
_UPDATE_ATTEMPTS = 16

# Subresources whose changes the server computes itself (a binding sets
# spec.nodeName and the PodScheduled condition together): they bypass the
# rules that keep clients from touching those fields.
_TRUSTED_SUBRESOURCES = ("binding", "finalize")

# metadata a client may not set or change: the server owns it.
_SERVER_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class WriteResult:
    obj: Obj
    created: bool = False
    warnings: tuple[str, ...] = ()


Mutation = Callable[[Stored], Obj | None]
Undo = Callable[[], Awaitable[None]]


class WriteHooks(Protocol):
    """Work around one kind's writes that the store's transaction cannot hold."""

    async def before_create(self, obj: Obj) -> Undo: ...

    async def before_update(self, new: Obj, old: Obj) -> Undo: ...

    async def after_update(self, new: Obj, old: Obj) -> None: ...

    async def after_delete(self, obj: Obj) -> None: ...


"""Given the current stored object, the object to write (None: leave it as it is)."""


class Admission(Protocol):
    def admit(
        self, rt: ResourceType, obj: Obj, old: Obj | None, subresource: str | None
    ) -> None: ...

    def admit_delete(self, rt: ResourceType, obj: Obj) -> None: ...


class Objects:
    def __init__(
        self,
        store: Store,
        cache: WatchCache,
        registry: Registry,
        clock: Clock,
        *,
        max_object_bytes: int = 1_500_000,
        hooks: dict[str, WriteHooks] | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.registry = registry
        self.clock = clock
        self.max_object_bytes = max_object_bytes
        self._strategies = {rt.kind: strategy_for(rt) for rt in registry}
        self._custom_strategies: dict[str, Strategy] = {}
        # Per kind: work that must happen around its writes (allocating addresses).
        self.hooks: dict[str, WriteHooks] = dict(hooks or {})
        self.admission = admission

    def strategy(self, rt: ResourceType) -> Strategy:
        if rt.custom is not None:
            # Custom kinds come and go: their strategy is built per version and kept.
            key = f"{rt.api_version}/{rt.kind}"
            found = self._custom_strategies.get(key)
            if found is None or found.rt is not rt:
                found = self._custom_strategies[key] = strategy_for(rt)
            return found
        return self._strategies[rt.kind]

    def _hook(self, rt: ResourceType) -> WriteHooks | None:
        # Hooks belong to built-in kinds: a custom kind named Service allocates no address.
        return self.hooks.get(rt.kind) if rt.custom is None else None

    def key(self, rt: ResourceType, namespace: str | None, name: str) -> bytes:
        return self.store.key(rt.storage_resource, namespace if rt.namespaced else None, name)

    # --- reads --------------------------------------------------------------------------

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Stored:
        found = await self.store.get(self.key(rt, namespace, name))
        if found is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return found

    def get_cached(self, rt: ResourceType, namespace: str | None, name: str) -> Stored | None:
        cached = self.cache.get(rt.storage_resource, self.key(rt, namespace, name).decode())
        return Stored(cached.obj, cached.revision) if cached is not None else None

    # --- create ----------------------------------------------------------------------

    async def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        field_validation: FieldValidation = "Strict",
        dry_run: bool = False,
    ) -> WriteResult:
        body = check_type_meta(rt, body)
        decoded = decode(rt, body, field_validation)
        model = decoded.model
        obj = model.to_dict()
        obj["apiVersion"] = rt.storage_api_version
        metadata = obj.setdefault("metadata", {})
        self._check_namespace(rt, namespace, metadata)
        for field in (*_SERVER_METADATA, "resourceVersion", "selfLink", "generation"):
            metadata.pop(field, None)
        generate = not metadata.get("name") and bool(metadata.get("generateName"))
        if not metadata.get("name") and not generate:
            raise errors.invalid(
                rt.kind,
                "",
                [Cause("FieldValueRequired", "name or generateName is required", "metadata.name")],
                rt.group,
            )
        now = self.clock.now()
        metadata["creationTimestamp"] = rfc3339(now)
        self.strategy(rt).prepare_create(obj, now)
        for attempt in range(_GENERATE_NAME_ATTEMPTS):
            metadata["uid"] = new_uid()
            if generate:
                metadata["name"] = metadata["generateName"] + random_suffix()
            model_meta = meta_of(model)
            model_meta.name = metadata["name"]
            model_meta.namespace = metadata.get("namespace")
            if attempt == 0:
                self._validate(rt, model, None, obj)
                if self.admission is not None:
                    self.admission.admit(rt, obj, None, None)
            hook = self._hook(rt)
            undo = await hook.before_create(obj) if hook is not None else None
            if dry_run:
                if undo is not None:
                    await undo()
                return WriteResult(obj, True, tuple(decoded.warnings))
            try:
                stored = await self._create(rt, obj)
            except storage.KeyExists:
                if undo is not None:
                    await undo()
                if generate:
                    continue
                raise errors.already_exists(rt.plural, metadata["name"], rt.group) from None
            except BaseException:
                if undo is not None:
                    await undo()
                raise
            return WriteResult(stored.obj, True, tuple(decoded.warnings))
        raise errors.already_exists(rt.plural, metadata["name"], rt.group)

    async def create_object(self, rt: ResourceType, obj: Obj) -> Stored:
        """Create an object the server itself built (bootstrap, controllers in-process)."""
        result = await self.create(rt, obj.get("metadata", {}).get("namespace"), obj)
        return Stored(result.obj, int(result.obj["metadata"]["resourceVersion"]))

    async def _create(self, rt: ResourceType, obj: Obj) -> Stored:
        metadata = obj["metadata"]
        namespace = metadata.get("namespace")
        encoded = self._encode_within_limit(rt, obj)
        requirements: list[Requirement] = []
        if rt.namespaced:
            requirements.append(await self._namespace_requirement(namespace or ""))
        key = self.key(rt, namespace, metadata["name"])
        try:
            return await self.store.create(key, obj, requirements, encoded=encoded)
        except storage.PreconditionFailed:
            # The namespace went away or changed between our read and the write.
            requirements = [await self._namespace_requirement(namespace or "", fresh=True)]
            try:
                return await self.store.create(key, obj, requirements, encoded=encoded)
            except storage.PreconditionFailed:
                raise errors.not_found("namespaces", namespace or "") from None
        except storage.Conflict:
            raise errors.conflict(
                rt.plural, metadata["name"], errors.STALE_OBJECT, rt.group
            ) from None

    async def _namespace_requirement(self, namespace: str, *, fresh: bool = False) -> Requirement:
        ns_rt = self.registry.by_kind("v1", "Namespace")
        assert ns_rt is not None  # the registry always serves namespaces
        found = None if fresh else self.get_cached(ns_rt, None, namespace)
        if found is None:
            found = await self.store.get(self.key(ns_rt, None, namespace))
        if found is None:
            raise errors.not_found("namespaces", namespace)
        if found.obj.get("metadata", {}).get("deletionTimestamp"):
            refusal = errors.forbidden(
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
                "namespaces",
                namespace,
            )
            refusal.causes.append(
                Cause("NamespaceTerminating", refusal.message, "metadata.namespace")
            )
            raise refusal
        return Requirement(self.key(ns_rt, None, namespace), found.revision)

    # --- update -------------------------------------------------------------------------

    async def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        field_validation: FieldValidation = "Strict",
        dry_run: bool = False,
        track: Callable[[Obj, Obj], Obj] | None = None,
    ) -> WriteResult:
        """Replace an object; ``track(current, new)`` may amend what is written
        (the API server records the writer in managedFields with it)."""
        body = check_type_meta(rt, body)
        decoded = decode(rt, body, field_validation)
        obj = decoded.model.to_dict()
        metadata = obj.setdefault("metadata", {})
        if metadata.get("name") and metadata["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({metadata['name']}) does not match the name on the "
                f"URL ({name})"
            )
        self._check_namespace(rt, namespace, metadata)
        metadata["name"] = name
        precondition = metadata.get("resourceVersion") or ""

        def mutate(current: Stored) -> Obj:
            if precondition and precondition != str(current.revision):
                raise errors.conflict(rt.plural, name, errors.STALE_OBJECT, rt.group)
            new = copy.deepcopy(obj)
            return track(current.obj, new) if track is not None else new

        return await self.guaranteed_update(
            rt,
            namespace,
            name,
            mutate,
            subresource=subresource,
            dry_run=dry_run,
            warnings=decoded.warnings,
            from_cache=bool(precondition),
        )

    async def guaranteed_update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        mutate: Mutation,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        warnings: list[str] | None = None,
        from_cache: bool = True,
        revalidate: Callable[[Obj], Obj] | None = None,
    ) -> WriteResult:
        """Read, change and write back one object, retrying when another writer won.

        The first read may come from the watch cache: when it is stale, the
        transaction's revision compare fails and the loop re-reads from etcd.
        """
        key = self.key(rt, namespace, name)
        current = self.get_cached(rt, namespace, name) if from_cache else None
        if current is None:
            current = await self._must_get(rt, key, name)
        strategy = self.strategy(rt)
        for _ in range(_UPDATE_ATTEMPTS):
            new = mutate(current)
            if new is None:
                return WriteResult(current.obj)
            if revalidate is not None:
                new = revalidate(new)
            new = self._merge_server_fields(rt, strategy, new, current.obj, subresource)
            if _same(new, current.obj):
                return WriteResult(current.obj, warnings=tuple(warnings or ()))
            hook = self._hook(rt) if subresource is None else None
            undo = await hook.before_update(new, current.obj) if hook is not None else None
            try:
                if subresource not in ("status", *_TRUSTED_SUBRESOURCES):
                    self._validate(rt, None, current.obj, new)
                if self.admission is not None:
                    self.admission.admit(rt, new, current.obj, subresource)
                if dry_run:
                    if undo is not None:
                        await undo()
                    return WriteResult(new, warnings=tuple(warnings or ()))
                encoded = self._encode_within_limit(rt, new)
                if new["metadata"].get("deletionTimestamp") and strategy.can_remove(new):
                    revision = await self.store.delete(key, current.revision)
                    await self._after_delete(rt, current.obj)
                    return WriteResult(storage.with_revision(new, revision))
                stored = await self.store.update(key, new, current.revision, encoded=encoded)
            except storage.Conflict as conflict:
                if undo is not None:
                    await undo()
                current = conflict.current or await self._must_get(rt, key, name)
                continue
            except storage.NotFound:
                if undo is not None:
                    await undo()
                raise errors.not_found(rt.plural, name, rt.group) from None
            except BaseException:
                if undo is not None:
                    await undo()
                raise
            if hook is not None:
                await hook.after_update(stored.obj, current.obj)
            return WriteResult(stored.obj, warnings=tuple(warnings or ()))
        raise errors.conflict(rt.plural, name, errors.STALE_OBJECT, rt.group)

    def _merge_server_fields(
        self,
        rt: ResourceType,
        strategy: Strategy,
        new: Obj,
        old: Obj,
        subresource: str | None,
    ) -> Obj:
        metadata = new.setdefault("metadata", {})
        old_metadata = old.get("metadata", {})
        if metadata.get("uid") and metadata["uid"] != old_metadata.get("uid"):
            raise errors.conflict(
                rt.plural,
                old_metadata.get("name", ""),
                f"Precondition failed: UID in precondition: {metadata['uid']}, "
                f"UID in object meta: {old_metadata.get('uid')}",
                rt.group,
            )
        for field in (*_SERVER_METADATA, "name", "namespace", "generateName"):
            if field in old_metadata:
                metadata[field] = old_metadata[field]
            else:
                metadata.pop(field, None)
        metadata.pop("resourceVersion", None)
        metadata.pop("selfLink", None)
        if "generation" in old_metadata:
            metadata["generation"] = old_metadata["generation"]
        new["apiVersion"] = rt.storage_api_version
        new["kind"] = rt.kind
        if subresource == "status":
            strategy.prepare_status_update(new, old)
            new["metadata"].pop("resourceVersion", None)
        elif subresource not in _TRUSTED_SUBRESOURCES:
            strategy.prepare_update(new, old)
        return new

    async def _must_get(self, rt: ResourceType, key: bytes, name: str) -> Stored:
        found = await self.store.get(key)
        if found is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return found

    # --- delete -------------------------------------------------------------------------

    async def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        precondition_uid: str | None = None,
        precondition_revision: str | None = None,
        dry_run: bool = False,
    ) -> WriteResult:
        key = self.key(rt, namespace, name)
        strategy = self.strategy(rt)
        for _ in range(_UPDATE_ATTEMPTS):
            current = await self._must_get(rt, key, name)
            metadata = current.obj.get("metadata", {})
            if precondition_uid and precondition_uid != metadata.get("uid"):
                raise errors.conflict(
                    rt.plural,
                    name,
                    f"Precondition failed: UID in precondition: {precondition_uid}, "
                    f"UID in object meta: {metadata.get('uid')}",
                    rt.group,
                )
            if precondition_revision and precondition_revision != str(current.revision):
                raise errors.conflict(
                    rt.plural,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{precondition_revision}, ResourceVersion in object meta: {current.revision}",
                    rt.group,
                )
            if self.admission is not None:
                self.admission.admit_delete(rt, current.obj)
            new = self._deletion_state(
                rt, strategy, current.obj, grace_period_seconds, propagation_policy
            )
            if dry_run:
                return WriteResult(new if new is not None else current.obj)
            try:
                if new is None:
                    revision = await self.store.delete(key, current.revision)
                    await self._after_delete(rt, current.obj)
                    return WriteResult(storage.with_revision(current.obj, revision))
                if _same(new, current.obj):
                    return WriteResult(current.obj)
                stored = await self.store.update(key, new, current.revision)
                return WriteResult(stored.obj)
            except storage.Conflict:
                continue  # written meanwhile: read it again and retry
            except storage.NotFound:
                raise errors.not_found(rt.plural, name, rt.group) from None
        raise errors.conflict(rt.plural, name, errors.STALE_OBJECT, rt.group)

    async def _after_delete(self, rt: ResourceType, obj: Obj) -> None:
        hook = self._hook(rt)
        if hook is not None:
            await hook.after_delete(obj)

    def _deletion_state(
        self,
        rt: ResourceType,
        strategy: Strategy,
        obj: Obj,
        grace_period_seconds: int | None,
        propagation_policy: str | None,
    ) -> Obj | None:
        """The object as it should be stored while terminating; None to remove it now."""
        metadata = obj.get("metadata", {})
        finalizers = list(metadata.get("finalizers") or [])
        if propagation_policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if metadata.get("deletionTimestamp"):
            # Already terminating: only a shorter grace period changes anything.
            current_grace = metadata.get("deletionGracePeriodSeconds")
            if (
                grace_period_seconds is not None
                and current_grace is not None
                and (grace_period_seconds < current_grace)
            ):
                new = copy.deepcopy(obj)
                new["metadata"]["deletionGracePeriodSeconds"] = grace_period_seconds
                new["metadata"]["deletionTimestamp"] = deletion_timestamp(
                    self.clock.now(), grace_period_seconds
                )
                if strategy.can_remove(new):
                    return None
                return new
            return obj
        grace = strategy.graceful_seconds(obj, grace_period_seconds)
        is_namespace = rt.kind == "Namespace" and rt.custom is None
        namespace_pending = is_namespace and obj.get("spec", {}).get("finalizers")
        if grace <= 0 and not finalizers and not namespace_pending:
            return None
        new = copy.deepcopy(obj)
        new_metadata = new["metadata"]
        new_metadata["deletionTimestamp"] = deletion_timestamp(self.clock.now(), grace)
        new_metadata["deletionGracePeriodSeconds"] = grace if grace > 0 else 0
        if grace <= 0:
            new_metadata.pop("deletionGracePeriodSeconds", None)
        if finalizers:
            new_metadata["finalizers"] = finalizers
        if rt.has_spec_generation and "generation" in new_metadata:
            new_metadata["generation"] += 1
        if is_namespace:
            new.setdefault("status", {})["phase"] = "Terminating"
        new_metadata.pop("resourceVersion", None)
        return new

    # --- checks ---------------------------------------------------------------------------

    def _check_namespace(
        self, rt: ResourceType, namespace: str | None, metadata: dict[str, Any]
    ) -> None:
        if not rt.namespaced:
            metadata.pop("namespace", None)
            return
        given = metadata.get("namespace")
        if given and namespace and given != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        if namespace:
            metadata["namespace"] = namespace
        elif not given:
            raise errors.bad_request(f"a namespace is required to create {rt.plural}")

    def _validate(
        self, rt: ResourceType, model: ApiModel | None, old: Obj | None, obj: Obj
    ) -> None:
        if model is None:
            # Decoding again types the object and reports a bad field as a 400,
            # which matters when the object came from applying a patch.
            model = decode(rt, obj, "Ignore").model
        old_model = _model_of(rt, old) if old is not None else None
        causes = validate_object(rt, model, old_model)
        causes.extend(self.strategy(rt).validate_create(obj) if old is None else [])
        if causes:
            raise errors.invalid(rt.kind, obj.get("metadata", {}).get("name", ""), causes, rt.group)

    def _encode_within_limit(self, rt: ResourceType, obj: Obj) -> bytes:
        """The stored encoding of ``obj``, or a 413 when it is over the limit: the
        store writes these very bytes, so an object is encoded once per write."""
        encoded = storage.encode(obj)
        size = len(encoded)
        if size > self.max_object_bytes:
            raise ApiError(
                413,
                "RequestEntityTooLarge",
                f"{rt.kind} is {size} bytes, over the storage limit of "
                f"{self.max_object_bytes} bytes",
                kind=rt.plural,
                name=obj.get("metadata", {}).get("name", ""),
            )
        return encoded


def check_type_meta(rt: ResourceType, body: Any) -> Any:
    """apiVersion and kind, when given, must be this resource's; when absent they are filled in."""
    if not isinstance(body, dict):
        return body
    api_version = body.get("apiVersion")
    kind = body.get("kind")
    if api_version is not None and api_version != rt.api_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})",
            [Cause("FieldValueInvalid", f'Unsupported value: "{api_version}"', "apiVersion")],
        )
    if kind is not None and kind != rt.kind:
        raise errors.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})",
            [Cause("FieldValueInvalid", f'Unsupported value: "{kind}"', "kind")],
        )
    if api_version is None or kind is None:
        body = {**body, "apiVersion": rt.api_version, "kind": rt.kind}
    return body


def _model_of(rt: ResourceType, obj: Obj) -> ApiModel:
    """Re-type an object already in wire form; it passed decoding, so this cannot fail."""
    try:
        return rt.model.model_validate(obj, extra="ignore")
    except ValueError as error:
        raise errors.internal(f"stored {rt.kind} does not decode: {error}") from None


def _same(new: Obj, old: Obj) -> bool:
    """Equal apart from resourceVersion; key order does not matter."""
    old_metadata = {k: v for k, v in old.get("metadata", {}).items() if k != "resourceVersion"}
    new_metadata = {k: v for k, v in new.get("metadata", {}).items() if k != "resourceVersion"}
    return new_metadata == old_metadata and {**new, "metadata": None} == {**old, "metadata": None}
