"""Server-side apply over HTTP, and the managedFields every write records.

PATCH with ``application/apply-patch+yaml`` merges the body into the live
object for the manager named by ``fieldManager`` (required), creating the
object when it does not exist; conflicts with other managers are a 409
unless ``force=true``. Every other write (create, PUT, PATCH) records an
Update entry for its manager: the ``fieldManager`` parameter, or as
kube-apiserver does, the User-Agent up to its first "/".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson

from controlplane.apiserver import http
from controlplane.apiserver.objects import Objects, WriteResult, check_type_meta
from controlplane.query import Query
from controlplane.storage.store import Stored
from corral.api import errors
from corral.api.decode import FieldValidation, decode
from corral.api.errors import Cause
from corral.api.patchmeta import model_schema
from corral.api.resources import ResourceType
from corral.clock import rfc3339
from corral.objects import Obj
from corral.patch import apply as ssa
from corral.patch import fieldpath
from corral.patch.fieldpath import Path, describe

APPLY_PATCH = "application/apply-patch+yaml"
_MAX_MANAGER_LENGTH = 128
# Metadata an applied configuration may carry but never merges: the server's.
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "resourceVersion",
)


def _patch_options_invalid(field: str, reason: str, detail: str) -> errors.ApiError:
    """422 on PatchOptions, worded as kube-apiserver words it."""
    return errors.ApiError(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: {field}: {detail}',
        kind="PatchOptions",
        group="meta.k8s.io",
        causes=[Cause(reason, detail, field)],
    )


def manager_of(query: Query, user_agent: str, *, apply: bool) -> str:
    """The field manager a request names: its fieldManager, else its client's name."""
    given = query.get("fieldManager")
    if given is None or given == "":
        if apply:
            raise _patch_options_invalid(
                "fieldManager", "FieldValueRequired", "Required value: is required for apply patch"
            )
        return user_agent.split("/", 1)[0][:_MAX_MANAGER_LENGTH]
    if len(given.encode()) > _MAX_MANAGER_LENGTH:
        raise _patch_options_invalid(
            "fieldManager",
            "FieldValueTooLong",
            f"Too long: may not be more than {_MAX_MANAGER_LENGTH} bytes",
        )
    for position, character in enumerate(given):
        if not character.isprintable():
            raise _patch_options_invalid(
                "fieldManager",
                "FieldValueInvalid",
                f"Invalid value: {orjson.dumps(given).decode()}: invalid character "
                f"U+{ord(character):04X} (at position {position})",
            )
    return given


def force_of(query: Query, *, apply: bool) -> bool:
    value = query.get("force")
    if value is None:
        return False
    if not apply:
        raise _patch_options_invalid(
            "force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch"
        )
    if value not in ("true", "false"):
        raise errors.bad_request(f'invalid value for "force": "{value}" (want true or false)')
    return value == "true"


def ignored_paths(rt: ResourceType) -> tuple[Path, ...]:
    """What no manager owns in a write to the main resource: server fields, and the
    status when a subresource of its own writes it (kube-apiserver resets it)."""
    ignored = ssa.SERVER_FIELDS
    if rt.has("status"):
        ignored = (*ignored, ("f:status",))
    if rt.kind == "Secret" and not rt.group:
        # Write-only: folded into data and never stored, so nobody can hold it
        # (and a client-side apply that re-sends it changes nothing).
        ignored = (*ignored, ("f:stringData",))
    return ignored


@dataclass(frozen=True, slots=True)
class Tracker:
    """Records an Update entry for one request's manager on the objects it writes."""

    rt: ResourceType
    manager: str
    now: str
    # "scale" or "status" for writes through those: kube-apiserver keeps their
    # entries apart. A status write is compared on its status alone: the rest
    # of what it sends is not written.
    subresource: str = ""

    def record(self, old: Obj, new: Obj) -> Obj:
        """``new`` with its managedFields brought up to date; ``new`` is changed in place."""
        schema = model_schema(self.rt.model)
        if self.subresource == "status":
            updater = ssa.Applier(
                self.manager, self.rt.api_version, self.now, ssa.SERVER_FIELDS, "status"
            )
            entries = ssa.track_update(
                _status_view(old, old), _status_view(new, old), schema, updater
            )
        else:
            updater = ssa.Applier(
                self.manager,
                self.rt.api_version,
                self.now,
                ignored_paths(self.rt),
                self.subresource,
            )
            entries = ssa.track_update(old, new, schema, updater)
        # A patch may share untouched parts with the stored (cached) object:
        # its metadata is copied before it is changed.
        metadata = dict(new.get("metadata") or {})
        new["metadata"] = metadata
        if entries:
            metadata["managedFields"] = ssa.write_entries(entries)
        else:
            metadata.pop("managedFields", None)
        return new

    def record_body(self, body: Any) -> Any:
        """A create's body with the creator's entry: it owns every field it sent."""
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            return body  # the write refuses it, naming what is wrong
        if not body.get("metadata", {}).get("managedFields"):
            return self._record_creator(body)
        entries = ssa.write_entries(
            ssa.track_update(
                {},
                body,
                model_schema(self.rt.model),
                ssa.Applier(self.manager, self.rt.api_version, self.now, ignored_paths(self.rt)),
            )
        )
        metadata = dict(body.get("metadata") or {})
        if entries:
            metadata["managedFields"] = entries
        else:
            metadata.pop("managedFields", None)
        return {**body, "metadata": metadata}

    def _record_creator(self, body: Obj) -> Obj:
        """The common create, sending no managedFields: its one entry built in one pass."""
        fields = fieldpath.tree_of(body, model_schema(self.rt.model), ignored_paths(self.rt))
        metadata = dict(body.get("metadata") or {})
        metadata.pop("managedFields", None)
        if fields:
            metadata["managedFields"] = [
                {
                    "manager": self.manager,
                    "operation": ssa.UPDATE,
                    "apiVersion": self.rt.api_version,
                    "time": self.now,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields,
                }
            ]
        return {**body, "metadata": metadata}


def _status_view(obj: Obj, live: Obj) -> Obj:
    """Just ``obj``'s status, with the live object's managedFields (a write to a
    subresource never sets them, as in kube-apiserver)."""
    view: Obj = {"metadata": {"managedFields": live.get("metadata", {}).get("managedFields")}}
    if "status" in obj:
        view["status"] = obj["status"]
    return view


def tracker_for(
    objects: Objects, rt: ResourceType, query: Query, user_agent: str, subresource: str = ""
) -> Tracker:
    manager = manager_of(query, user_agent, apply=False)
    return Tracker(rt, manager, rfc3339(objects.clock.now()), subresource)


# --- apply ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplyRequest:
    rt: ResourceType
    namespace: str | None
    name: str
    manager: str
    force: bool
    field_validation: FieldValidation
    dry_run: bool


def applied_configuration(request: ApplyRequest, document: Any) -> tuple[Obj, str]:
    """The configuration to merge, and the resourceVersion it requires (or "")."""
    rt = request.rt
    if not isinstance(document, dict):
        raise errors.bad_request("an apply patch must be an object")
    missing = [field for field in ("apiVersion", "kind") if not document.get(field)]
    if missing:
        raise errors.bad_request(
            f"the applied configuration is missing {' and '.join(missing)}",
            [Cause("FieldValueRequired", "Required value", field) for field in missing],
        )
    config = copy.deepcopy(check_type_meta(rt, document))
    metadata = config.get("metadata")
    if metadata is None:
        metadata = config["metadata"] = {}
    if not isinstance(metadata, dict):
        raise errors.bad_request("metadata must be an object")
    if metadata.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    if metadata.get("name", request.name) != request.name:
        raise errors.bad_request(
            f"the name of the object ({metadata['name']}) does not match the name on the URL "
            f"({request.name})"
        )
    if rt.namespaced:
        given = metadata.get("namespace")
        if given and request.namespace and given != request.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        metadata["namespace"] = request.namespace
    else:
        metadata.pop("namespace", None)
    metadata["name"] = request.name
    precondition = metadata.get("resourceVersion")
    for field in _SERVER_METADATA:
        metadata.pop(field, None)
    if rt.has("status"):
        config.pop("status", None)
    return config, precondition if isinstance(precondition, str) else ""


def _conflict_error(error: ssa.ApplyConflicts) -> errors.ApiError:
    causes = [
        Cause("FieldManagerConflict", f"conflict with {c.owner.describe()}", describe(c.path))
        for c in error.conflicts
    ]
    return errors.ApiError(409, "Conflict", str(error), causes=causes)


def applied(request: ApplyRequest, live: Obj, config: Obj, now: str) -> Obj:
    """``config`` applied to ``live`` (``{}`` when creating), managedFields included."""
    applier = ssa.Applier(request.manager, request.rt.api_version, now, ignored_paths(request.rt))
    try:
        merged, entries = ssa.apply(
            live, config, model_schema(request.rt.model), applier, force=request.force
        )
    except ssa.ApplyConflicts as error:
        raise _conflict_error(error) from None
    out: Obj = merged
    metadata = out["metadata"] = dict(out.get("metadata") or {})
    if entries:
        metadata["managedFields"] = ssa.write_entries(entries)
    else:
        metadata.pop("managedFields", None)
    return out


async def serve_apply(
    objects: Objects, request: ApplyRequest, body: bytes, limit: int
) -> WriteResult:
    """Apply one configuration: update the object, or create it when it does not exist."""
    document = await http.decode_document(body, "application/yaml", limit)
    config, precondition = applied_configuration(request, document)
    rt = request.rt
    for _ in range(2):  # a create that lost a race becomes an update
        now = rfc3339(objects.clock.now())
        try:
            return await _apply_update(objects, request, config, precondition, now)
        except errors.ApiError as error:
            if error.code != 404 or error.reason != "NotFound" or precondition:
                raise
        created = applied(request, {}, config, now)
        try:
            return await objects.create(
                rt,
                request.namespace,
                created,
                field_validation=request.field_validation,
                dry_run=request.dry_run,
            )
        except errors.ApiError as error:
            if error.code != 409 or error.reason != "AlreadyExists":
                raise
    raise errors.conflict(rt.plural, request.name, errors.STALE_OBJECT, rt.group)


async def _apply_update(
    objects: Objects, request: ApplyRequest, config: Obj, precondition: str, now: str
) -> WriteResult:
    rt = request.rt
    warnings: list[str] = []

    def mutate(current: Stored) -> Obj:
        if precondition and precondition != str(current.revision):
            raise errors.conflict(rt.plural, request.name, errors.STALE_OBJECT, rt.group)
        return applied(request, current.obj, config, now)

    def revalidate(obj: Obj) -> Obj:
        decoded = decode(rt, obj, request.field_validation)
        warnings[:] = decoded.warnings
        return decoded.data

    return await objects.guaranteed_update(
        rt,
        request.namespace,
        request.name,
        mutate,
        dry_run=request.dry_run,
        warnings=warnings,
        revalidate=revalidate,
        from_cache=not precondition,
    )
