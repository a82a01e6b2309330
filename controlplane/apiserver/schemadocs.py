"""The model schemas made readable by ``kubectl explain``: kinds tagged, fields described.

kubectl explain finds a kind's schema by its ``x-kubernetes-group-version-kind``
and walks fields through ``properties``, ``items``, ``additionalProperties``
and ``allOf``, printing each ``description``. Pydantic writes an optional
field as ``anyOf: [T, {type: null}]`` with a generated title, which explain
cannot walk; Kubernetes writes the type itself. This rewrites the schemas
into that shape and adds Kubernetes 1.32's descriptions
(openapi_descriptions.json, made by tools/openapi_descriptions.py). A
reference keeps its description beside the ``$ref``, where kubectl reads it:
Kubernetes wraps it in ``allOf`` instead, but a wrapper per field nests the
schemas a level deeper for the generators that walk them (schemathesis,
already near Python's recursion limit on the CRD schema) for no difference
kubectl shows.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from corral.api.resources import ResourceType
from corral.objects import Obj

DESCRIPTIONS_FILE = Path(__file__).with_name("openapi_descriptions.json")
GVK = "x-kubernetes-group-version-kind"
_NULL = {"type": "null"}


@cache
def descriptions() -> Obj:
    """Kubernetes' descriptions by schema name; none if the data file is absent."""
    try:
        loaded: Obj = json.loads(DESCRIPTIONS_FILE.read_text())
    except FileNotFoundError:
        return {}
    return loaded


def _collapse_optional(schema: Obj) -> Obj:
    """``anyOf: [T, null]`` (pydantic's optional) as T itself, as Kubernetes writes it."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or _NULL not in options:
        return schema
    rest = [o for o in options if o != _NULL]
    if len(rest) != 1:
        return schema
    out = {k: v for k, v in schema.items() if k != "anyOf"}
    if out.get("default", 0) is None:
        del out["default"]
    return {**rest[0], **out}


def _field(schema: Obj, description: str | None) -> Obj:
    out = _collapse_optional({k: v for k, v in schema.items() if k != "title"})
    if description and "description" not in out:
        out["description"] = description
    return out


def _described(name: str, schema: Obj) -> Obj:
    words = descriptions().get(name, {})
    out = {k: v for k, v in schema.items() if k != "title"}
    if words.get("description") and "description" not in out:
        out["description"] = words["description"]
    properties = out.get("properties")
    if isinstance(properties, dict):
        field_words = words.get("properties", {})
        out["properties"] = {
            field: _field(sub, field_words.get(field)) if isinstance(sub, dict) else sub
            for field, sub in properties.items()
        }
    return out


def explainable(schemas: Obj, resources: Iterable[ResourceType]) -> Obj:
    """``schemas`` (by model name) described, optional fields collapsed, kinds tagged."""
    out = {name: _described(name, copy.deepcopy(schema)) for name, schema in schemas.items()}
    for rt in resources:
        schema = out.get(rt.model.__name__)
        if schema is None:
            continue
        tag = {"group": rt.group, "kind": rt.kind, "version": rt.version}
        tags = schema.setdefault(GVK, [])
        if tag not in tags:
            tags.append(tag)
    return out
