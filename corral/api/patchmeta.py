"""Strategic merge patch metadata, read off the API models' annotations.

A list annotated ``MergeKey("name")`` merges by name; ``MergeSet()`` marks a
list of primitives merged as a set; ``RetainKeys()`` a struct patched with
``$retainKeys``. Everything else is atomic, as in Kubernetes.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from corral.api.base import MergeKey, MergeSet, RetainKeys
from corral.patch.schema import EMPTY, PatchSchema


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    """The bare type under Annotated/Optional, and the markers found on the way."""
    markers: list[Any] = []
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            args = get_args(annotation)
            annotation = args[0]
            markers.extend(args[1:])
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, markers


def _schema_for(annotation: Any, markers: list[Any], depth: int) -> PatchSchema:
    if depth > 40:
        return EMPTY
    bare, more = _split(annotation)
    markers = [*markers, *more]
    origin = get_origin(bare)
    retain = any(isinstance(m, RetainKeys) for m in markers)
    if origin is list:
        (item,) = get_args(bare)
        merge_key = next((m.key for m in markers if isinstance(m, MergeKey)), None)
        is_set = any(isinstance(m, MergeSet) for m in markers)
        item_schema = _schema_for(item, [], depth + 1)
        if retain:
            item_schema = PatchSchema(
                fields=item_schema.fields,
                values=item_schema.values,
                items=item_schema.items,
                retain_keys=True,
            )
        if merge_key is not None or is_set:
            return PatchSchema(items=item_schema, list_strategy="merge", merge_key=merge_key)
        return PatchSchema(items=item_schema)
    if origin is dict:
        _, value = get_args(bare)
        return PatchSchema(values=_schema_for(value, [], depth + 1))
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        schema = model_schema(bare)
        if retain:
            return PatchSchema(fields=schema.fields, retain_keys=True)
        return schema
    return EMPTY


@cache
def model_schema(model: type[BaseModel]) -> PatchSchema:
    fields: dict[str, PatchSchema] = {}
    for name, info in model.model_fields.items():
        wire = info.alias or name
        fields[wire] = _schema_for(info.annotation, list(info.metadata), 0)
    return PatchSchema(fields=fields)
