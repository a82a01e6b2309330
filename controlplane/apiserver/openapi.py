"""OpenAPI v3 documents built from the resource registry and the API models.

kubectl reads ``/openapi/v3`` to learn that the server validates fields
itself (the ``fieldValidation`` parameter on each kind's PATCH), and people
scripting against corral read the combined document through ``/docs``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import orjson
from pydantic.json_schema import models_json_schema

from controlplane.apiserver.schemadocs import explainable
from corral import version
from corral.api.authentication import TokenRequest
from corral.api.autoscaling import Scale
from corral.api.core import Binding
from corral.api.meta import DeleteOptions
from corral.api.policy import Eviction
from corral.api.resources import RESOURCES, Registry, ResourceType
from corral.objects import Obj

_REF = "#/components/schemas/{model}"


def _query(name: str, description: str, schema_type: str = "string") -> Obj:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": schema_type},
        "required": False,
    }


_DRY_RUN = _query("dryRun", "When All, validate the request fully without persisting it.")
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "Strict (the default) rejects unknown or duplicate fields; Warn drops them with a "
    "warning; Ignore drops them silently.",
)
_FIELD_MANAGER = _query(
    "fieldManager",
    "The name of the actor making the change, recorded in metadata.managedFields; "
    "required for apply patches.",
)
_FORCE = _query(
    "force",
    "Apply patches only: take over fields other managers own instead of failing with a conflict.",
    "boolean",
)
_PRETTY = _query("pretty", "Accepted for compatibility; responses are compact JSON.")
_LIST_PARAMS = [
    _query("labelSelector", "Select by labels: a=b, a!=b, a in (x,y), a notin (x), a, !a."),
    _query("fieldSelector", "Select by fields such as metadata.name or spec.nodeName."),
    _query("resourceVersion", "List or watch from this version (see Kubernetes semantics)."),
    _query("resourceVersionMatch", "Exact or NotOlderThan."),
    _query("limit", "Page size for a paginated list.", "integer"),
    _query("continue", "The continue token from the previous page."),
    _query("watch", "Stream changes as newline-delimited JSON events.", "boolean"),
    _query("allowWatchBookmarks", "Send BOOKMARK events carrying the latest version.", "boolean"),
    _query("timeoutSeconds", "End a watch after this many seconds.", "integer"),
    _query("sendInitialEvents", "Begin a watch with the current objects.", "boolean"),
]
_DELETE_PARAMS = [
    _query("gracePeriodSeconds", "Seconds before the object is removed.", "integer"),
    _query("propagationPolicy", "Orphan, Background or Foreground."),
    _DRY_RUN,
]


def _ref(model: type) -> Obj:
    return {"$ref": _REF.format(model=model.__name__)}


def _json_body(schema: Obj) -> Obj:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _responses(schema: Obj, code: str = "200") -> Obj:
    return {
        code: {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "401": {"description": "Unauthorized"},
        "4XX": {"description": "A Status object naming the problem"},
    }


def _gvk(rt: ResourceType) -> Obj:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _operation(rt: ResourceType, action: str, summary: str, params: list[Obj], **extra: Any) -> Obj:
    op: Obj = {
        "tags": [rt.api_version],
        "summary": summary,
        "operationId": f"{action}{rt.kind}{rt.version.capitalize()}",
        "parameters": params,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt),
    }
    op.update(extra)
    return op


_NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_NAMESPACE_PARAM = {
    "name": "namespace",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_WRITE_PARAMS = [_DRY_RUN, _FIELD_VALIDATION, _FIELD_MANAGER, _PRETTY]
_PATCH_BODY = {
    "required": True,
    "content": {
        media: {"schema": {"type": "object"}}
        for media in ("application/json-patch+json", "application/merge-patch+json")
    },
}
# The object itself also takes server-side apply; its subresources do not.
_OBJECT_PATCH_BODY = {
    "required": True,
    "content": {
        media: {"schema": {"type": "object"}}
        for media in (
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        )
    },
}
# Subresources that take one POST: (summary, the body's model, whether the
# answer is that model too rather than a plain object).
_POSTED: dict[str, tuple[str, type, bool]] = {
    "binding": ("Bind a Pod to a Node", Binding, False),
    "eviction": ("Evict a Pod, if its disruption budgets allow", Eviction, False),
    "token": ("Request a bound token for a ServiceAccount", TokenRequest, True),
}


@dataclass(frozen=True)
class _Shape:
    """What every operation on one resource type shares."""

    rt: ResourceType
    scope: list[Obj]  # the namespace parameter of a namespaced type

    @property
    def item_ref(self) -> Obj:
        if self.rt.custom is not None:
            return {"$ref": _REF.format(model=custom_schema_name(self.rt))}
        return _ref(self.rt.model)

    @property
    def list_schema(self) -> Obj:
        return {
            "type": "object",
            "properties": {"items": {"type": "array", "items": self.item_ref}},
        }

    @property
    def named(self) -> list[Obj]:
        return [*self.scope, _NAME_PARAM]

    @property
    def written(self) -> list[Obj]:
        return [*self.scope, _NAME_PARAM, *_WRITE_PARAMS]


def _paths_for(rt: ResourceType) -> dict[str, Obj]:
    root = f"/apis/{rt.group}/{rt.version}" if rt.group else "/api/v1"
    shape = _Shape(rt, [_NAMESPACE_PARAM] if rt.namespaced else [])
    collection = (
        f"{root}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else (f"{root}/{rt.plural}")
    )
    item = f"{collection}/{{name}}"
    paths: dict[str, Obj] = {
        collection: _collection_operations(shape),
        item: _item_operations(shape),
    }
    if rt.namespaced:
        paths[f"{root}/{rt.plural}"] = {
            "get": _operation(
                rt,
                "list",
                f"List or watch {rt.plural} in all namespaces",
                _LIST_PARAMS,
                responses=_responses(shape.list_schema),
            ),
        }
    for sub in rt.subresources:
        operations = _subresource_operations(shape, sub)
        if operations is not None:
            paths[f"{item}/{sub}"] = operations
    return paths


def _collection_operations(shape: _Shape) -> Obj:
    rt = shape.rt
    return {
        "get": _operation(
            rt,
            "list",
            f"List or watch {rt.plural}",
            shape.scope + _LIST_PARAMS,
            responses=_responses(shape.list_schema),
        ),
        "post": _operation(
            rt,
            "post",
            f"Create a {rt.kind}",
            shape.scope + _WRITE_PARAMS,
            requestBody=_json_body(shape.item_ref),
            responses=_responses(shape.item_ref, "201"),
        ),
        "delete": _operation(
            rt,
            "deletecollection",
            f"Delete a collection of {rt.plural}",
            shape.scope + _LIST_PARAMS + _DELETE_PARAMS,
            responses=_responses(shape.list_schema),
        ),
    }


def _item_operations(shape: _Shape) -> Obj:
    rt = shape.rt
    return {
        "get": _operation(
            rt, "get", f"Read a {rt.kind}", shape.named, responses=_responses(shape.item_ref)
        ),
        "put": _operation(
            rt,
            "put",
            f"Replace a {rt.kind}",
            shape.written,
            requestBody=_json_body(shape.item_ref),
            responses=_responses(shape.item_ref),
        ),
        # No strategic-merge-patch body is declared: kubectl then builds
        # its apply patches from its compiled-in types, which carry the
        # merge keys Kubernetes users expect.
        "patch": _operation(
            rt,
            "patch",
            f"Patch a {rt.kind}",
            [*shape.written, _FORCE],
            requestBody=_OBJECT_PATCH_BODY,
            responses=_responses(shape.item_ref),
        ),
        "delete": _operation(
            rt,
            "delete",
            f"Delete a {rt.kind}",
            [*shape.named, *_DELETE_PARAMS],
            requestBody={
                "required": False,
                "content": {"application/json": {"schema": _ref(DeleteOptions)}},
            },
            responses=_responses(shape.item_ref),
        ),
    }


def _subresource_operations(shape: _Shape, sub: str) -> Obj | None:
    """The operations of one subresource; None for one the document leaves out."""
    rt = shape.rt
    if sub == "status":
        return _read_replace_patch(shape, "status", shape.item_ref)
    if sub == "scale":
        return _read_replace_patch(shape, "scale", _ref(Scale))
    if sub == "finalize":
        return {
            "put": _operation(
                rt,
                "put",
                "Replace the finalizers of a Namespace",
                [_NAME_PARAM],
                requestBody=_json_body(shape.item_ref),
                responses=_responses(shape.item_ref),
            ),
        }
    if sub not in _POSTED:
        return None
    summary, model, answers_model = _POSTED[sub]
    answer = _ref(model) if answers_model else {"type": "object"}
    return {
        "post": _operation(
            rt,
            "post",
            summary,
            shape.named,
            requestBody=_json_body(_ref(model)),
            responses=_responses(answer, "201"),
        ),
    }


def _read_replace_patch(shape: _Shape, part: str, schema: Obj) -> Obj:
    """get, put and patch of a part of an object (its status, its scale)."""
    rt = shape.rt
    return {
        "get": _operation(
            rt,
            "get",
            f"Read the {part} of a {rt.kind}",
            shape.named,
            responses=_responses(schema),
        ),
        "put": _operation(
            rt,
            "put",
            f"Replace the {part} of a {rt.kind}",
            shape.written,
            requestBody=_json_body(schema),
            responses=_responses(schema),
        ),
        "patch": _operation(
            rt,
            "patch",
            f"Patch the {part} of a {rt.kind}",
            shape.written,
            requestBody=_PATCH_BODY,
            responses=_responses(schema),
        ),
    }


@cache
def model_schemas() -> Obj:
    """The API models' JSON schemas as pydantic writes them, by model name."""
    extra: list[type] = [Scale, Binding, DeleteOptions, Eviction, TokenRequest]
    models = [rt.model for rt in RESOURCES] + extra
    _, schema = models_json_schema(
        [(m, "validation") for m in models], by_alias=True, ref_template=_REF
    )
    return dict(schema.get("$defs", {}))


@cache
def _components() -> Obj:
    # Built once: the models do not change while the server runs.
    return explainable(model_schemas(), RESOURCES)


def document(registry: Registry, group: str | None = None, version_name: str | None = None) -> Obj:
    """One group-version's document, or (no arguments) every group in one."""
    paths: dict[str, Obj] = {}
    for rt in registry:
        if group is not None and (rt.group != group or rt.version != version_name):
            continue
        paths.update(_paths_for(rt))
    return {
        "openapi": "3.0.0",
        "info": {
            "title": "corral",
            "version": version.server_version()["gitVersion"],
            "description": (
                "The corral API: Kubernetes-compatible paths, objects and Status errors. "
                "Authenticate with a bearer token; errors are Status objects whose "
                "details.causes name the offending field."
            ),
        },
        "paths": paths,
        "components": {"schemas": {**_components(), **_custom_components(registry, group)}},
    }


def custom_schema_name(rt: ResourceType) -> str:
    """How Kubernetes names a custom kind's schema: the reversed group, version, kind."""
    reversed_group = ".".join(reversed(rt.group.split(".")))
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def _custom_components(registry: Registry, group: str | None) -> Obj:
    """The schemas of the custom kinds in the document, as their CRDs give them."""
    out: Obj = {}
    for rt in registry.custom:
        if rt.custom is None or (group is not None and rt.group != group):
            continue
        schema: Obj = dict(rt.custom.schema or {"type": "object"})
        schema["x-kubernetes-group-version-kind"] = [
            {"group": rt.group, "version": rt.version, "kind": rt.kind}
        ]
        out[custom_schema_name(rt)] = schema
    return out


def group_key(group: str, version_name: str) -> str:
    return f"apis/{group}/{version_name}" if group else f"api/{version_name}"


@lru_cache(maxsize=256)
def _serialized(registry: Registry, key: str, generation: int = 0) -> bytes:
    # ``generation`` changes with the registry's custom kinds, so a CRD's
    # arrival or departure never serves a stale document.
    for group, versions in registry.groups().items():
        for version_name in versions:
            if group_key(group, version_name) == key:
                return orjson.dumps(document(registry, group, version_name))
    return b""


def group_document(registry: Registry, key: str) -> bytes | None:
    body = _serialized(registry, key, registry.generation)
    return body or None


def index(registry: Registry) -> Obj:
    paths = {}
    for group, versions in registry.groups().items():
        for version_name in versions:
            key = group_key(group, version_name)
            body = _serialized(registry, key, registry.generation)
            digest = hashlib.sha256(body).hexdigest()[:32].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}
