"""PATCH bodies: JSON patch, JSON merge patch and strategic merge patch."""

from __future__ import annotations

from typing import Any

import orjson

from controlplane.apiserver.http import PATCH_TYPES
from corral.api import errors
from corral.api.base import ApiModel
from corral.api.errors import Cause
from corral.api.patchmeta import model_schema
from corral.api.resources import ResourceType
from corral.objects import Obj
from corral.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)


def parse_patch(body: bytes, content_type: str) -> Any:
    if content_type not in PATCH_TYPES:
        raise errors.ApiError(
            415,
            "UnsupportedMediaType",
            f'the content type "{content_type}" is not a supported patch type: supported '
            "types are " + ", ".join(PATCH_TYPES),
        )
    if not body.strip():
        raise errors.bad_request("the patch body is empty")
    try:
        patch = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise errors.bad_request(f"the patch is not valid JSON: {error}") from None
    if content_type == "application/json-patch+json":
        if not isinstance(patch, list):
            raise errors.bad_request("a JSON patch must be an array of operations")
    elif not isinstance(patch, dict):
        raise errors.bad_request("a merge patch must be a JSON object")
    return patch


def refuse_strategic_merge(rt: ResourceType, content_type: str) -> None:
    """Custom kinds carry no patch strategies: kube-apiserver answers 415, so must we."""
    if rt.custom is not None and content_type == "application/strategic-merge-patch+json":
        raise errors.ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml",
        )


def apply_patch(current: Obj, patch: Any, content_type: str, model: type[ApiModel]) -> Obj:
    try:
        if content_type == "application/json-patch+json":
            patched = apply_json_patch(current, patch)
        elif content_type == "application/merge-patch+json":
            patched = apply_merge_patch(current, patch)
        else:
            patched = apply_strategic_merge_patch(current, patch, model_schema(model))
    except PatchError as error:
        raise errors.ApiError(
            422,
            "Invalid",
            f"the patch could not be applied: {error.message}",
            causes=[Cause("FieldValueInvalid", error.message, error.field or "")],
        ) from None
    if not isinstance(patched, dict):
        raise errors.bad_request("the patch replaced the whole object with a non-object")
    return patched


def patch_precondition(patch: Any, content_type: str) -> str:
    """A resourceVersion inside a merge patch is a precondition, as in Kubernetes."""
    if content_type == "application/json-patch+json" or not isinstance(patch, dict):
        return ""
    metadata = patch.get("metadata")
    if isinstance(metadata, dict):
        value = metadata.get("resourceVersion")
        if isinstance(value, str):
            return value
    return ""
