"""JSON merge patch (RFC 7386): ``application/merge-patch+json``."""

from __future__ import annotations

from typing import Any

from corral.patch._json import deep_copy, json_equal, kind_of
from corral.patch.errors import PatchError


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch and return the result.

    Objects merge key by key, ``null`` removes a key, and anything else
    (arrays included) replaces the target value whole. Neither input is
    modified and the result shares no containers with them.
    """
    if not isinstance(patch, dict):
        return deep_copy(patch)
    base = deep_copy(target) if isinstance(target, dict) else {}
    return _merge_into(base, patch)


def _merge_into(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    # ``target`` is already a private copy, so it is updated in place.
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            target[key] = _merge_into(current if isinstance(current, dict) else {}, value)
        else:
            target[key] = deep_copy(value)
    return target


def create_merge_patch(original: Any, modified: Any) -> dict[str, Any]:
    """The RFC 7386 patch that turns ``original`` into ``modified``.

    ``modified`` must be an object. A merge patch cannot set a key to
    ``null``, so ``null`` values in ``modified`` count as absent keys. An
    original that is not an object is diffed as if it were ``{}``.
    """
    if not isinstance(modified, dict):
        raise PatchError(f"a merge patch can only be built for an object, got {kind_of(modified)}")
    return _diff(original if isinstance(original, dict) else {}, modified)


def _diff(original: dict[str, Any], modified: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, old in original.items():
        if key not in modified or (old is not None and modified[key] is None):
            patch[key] = None
    for key, new in modified.items():
        if new is None:
            continue
        old = original.get(key)
        if isinstance(new, dict):
            if isinstance(old, dict):
                sub = _diff(old, new)
                if sub:
                    patch[key] = sub
            else:
                patch[key] = _strip_nulls(new)
        elif old is None or not json_equal(old, new):
            patch[key] = deep_copy(new)
    return patch


def _strip_nulls(value: dict[str, Any]) -> dict[str, Any]:
    # A new object in a merge patch loses its null members when applied, so
    # they are left out rather than sent as (meaningless) deletions.
    return {
        k: _strip_nulls(v) if isinstance(v, dict) else deep_copy(v)
        for k, v in value.items()
        if v is not None
    }
