"""Building strategic merge patches: ``CreateThreeWayMergePatch`` and ``CreateTwoWayMergePatch``.

What ``kubectl apply`` and ``kubectl edit`` send, built as
k8s.io/apimachinery/pkg/util/strategicpatch builds it; applying one is
corral.patch.strategic's.
"""

from __future__ import annotations

from typing import Any

from corral.patch._json import (
    JSONPath,
    deep_copy,
    format_path,
    go_string,
    identity,
    json_equal,
    kind_of,
)
from corral.patch.errors import PatchError
from corral.patch.schema import EMPTY, PatchSchema
from corral.patch.strategic import (
    DELETE_FROM_PRIMITIVE_LIST,
    MISSING,
    PARALLEL_PREFIXES,
    PATCH,
    RETAIN_KEYS,
    SET_ELEMENT_ORDER,
    Key,
    key_of,
)


def create_two_way_merge_patch(
    original: dict[str, Any], modified: dict[str, Any], schema: PatchSchema = EMPTY
) -> dict[str, Any]:
    """The strategic merge patch that turns ``original`` into ``modified``.

    This is what ``kubectl edit`` sends. An empty dict means no change.
    """
    _require_object("original", original)
    _require_object("modified", modified)
    return _diff_maps(
        original, modified, schema, (), changes=True, deletions=True, retain=schema.retain_keys
    )


def create_three_way_merge_patch(
    original: dict[str, Any] | None,
    modified: dict[str, Any],
    current: dict[str, Any],
    schema: PatchSchema = EMPTY,
) -> dict[str, Any]:
    """The patch client-side ``kubectl apply`` sends.

    ``original`` is the last-applied configuration (None if there is none),
    ``modified`` the new configuration and ``current`` the live object. The
    patch sets everything in ``modified`` that ``current`` lacks or holds
    differently, and deletes what ``original`` had but ``modified`` dropped;
    fields only ``current`` has (set by the server or other clients) are
    left alone. An empty dict means no change.
    """
    if original is None:
        original = {}
    _require_object("original", original)
    _require_object("modified", modified)
    _require_object("current", current)
    retain = schema.retain_keys
    # As in Kubernetes: additions and changes come from current -> modified,
    # deletions from original -> modified, and the two patches are combined.
    delta = _diff_maps(current, modified, schema, (), changes=True, deletions=False, retain=retain)
    deletions = _diff_maps(
        original, modified, schema, (), changes=False, deletions=True, retain=retain
    )
    return _combine(deletions, delta, schema)


def _require_object(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise PatchError(f"{name} must be a JSON object, got {kind_of(value)}")


def _diff_maps(
    original: dict[str, Any],
    modified: dict[str, Any],
    schema: PatchSchema,
    path: JSONPath,
    *,
    changes: bool,
    deletions: bool,
    retain: bool,
) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, new in modified.items():
        if key not in original:
            if changes:
                patch[key] = deep_copy(new)
            continue
        old = original[key]
        if isinstance(old, dict) and isinstance(new, dict):
            child = schema.child(key) or EMPTY
            sub = _diff_maps(
                old,
                new,
                child,
                (*path, key),
                changes=changes,
                deletions=deletions,
                retain=child.retain_keys,
            )
            if sub:
                patch[key] = sub
        elif isinstance(old, list) and isinstance(new, list):
            child = schema.child(key) or EMPTY
            if child.list_strategy == "merge":
                _diff_lists(patch, key, old, new, child, (*path, key), changes, deletions)
            elif changes and not json_equal(old, new):
                patch[key] = deep_copy(new)
        elif changes and not json_equal(old, new):
            patch[key] = deep_copy(new)

    if deletions:
        for key in original:
            if key not in modified:
                patch[key] = None

    if retain:
        kept = sorted(key for key, value in modified.items() if value is not None)
        if kept and (patch or _has_extra_field(original, modified)):
            patch[RETAIN_KEYS] = kept
    return patch


def _has_extra_field(original: dict[str, Any], modified: dict[str, Any]) -> bool:
    return any(value is not None and key not in modified for key, value in original.items())


def _diff_lists(
    patch: dict[str, Any],
    key: str,
    old: list[Any],
    new: list[Any],
    schema: PatchSchema,
    path: JSONPath,
    changes: bool,
    deletions: bool,
) -> None:
    """Add the patch entries for a merged list: the list, its deletions and its order."""
    if not old:
        # Kubernetes sends a list that starts out empty whole, without an order.
        if new and changes:
            patch[key] = deep_copy(new)
        return
    if schema.merge_key is None:
        _diff_primitive_lists(patch, key, old, new, path, changes, deletions)
    else:
        _diff_keyed_lists(patch, key, old, new, schema, schema.merge_key, path, changes, deletions)


def _diff_keyed_lists(
    patch: dict[str, Any],
    key: str,
    old: list[Any],
    new: list[Any],
    schema: PatchSchema,
    merge_key: str,
    path: JSONPath,
    changes: bool,
    deletions: bool,
) -> None:
    items = schema.items or EMPTY
    retain = schema.retain_keys or items.retain_keys
    old_keys = [_require_merge_key(el, merge_key, (*path, i)) for i, el in enumerate(old)]
    new_keys = [_require_merge_key(el, merge_key, (*path, i)) for i, el in enumerate(new)]
    # Duplicate keys pair up by occurrence, as Kubernetes' sorted walk does.
    old_by_key: dict[Key, list[dict[str, Any]]] = {}
    for item_key, element in zip(old_keys, old, strict=True):
        old_by_key.setdefault(item_key, []).append(element)
    seen: dict[Key, int] = {}

    entries: list[Any] = []
    for i, (item_key, element) in enumerate(zip(new_keys, new, strict=True)):
        occurrence = seen.get(item_key, 0)
        seen[item_key] = occurrence + 1
        matches = old_by_key.get(item_key, ())
        before = matches[occurrence] if occurrence < len(matches) else None
        if before is None:
            if changes:
                entries.append(deep_copy(element))
            continue
        sub = _diff_maps(
            before,
            element,
            items,
            (*path, i),
            changes=changes,
            deletions=deletions,
            retain=retain,
        )
        if sub:
            sub[merge_key] = deep_copy(element[merge_key])
            entries.append(sub)

    if deletions:
        kept = set(new_keys)
        removed: dict[Key, Any] = {}
        for item_key, element in zip(old_keys, old, strict=True):
            if item_key not in kept and item_key not in removed:
                removed[item_key] = element[merge_key]
        for value in sorted(removed.values(), key=go_string):
            entries.append({merge_key: deep_copy(value), PATCH: "delete"})

    if entries:
        patch[key] = entries
    reordered = old_keys != new_keys
    if new and ((changes and (entries or reordered)) or (deletions and entries)):
        patch[f"{SET_ELEMENT_ORDER}/{key}"] = [
            {merge_key: deep_copy(element[merge_key])} for element in new
        ]


def _require_merge_key(element: Any, merge_key: str, path: JSONPath) -> Key:
    if not isinstance(element, dict):
        raise PatchError(
            f"expected an object in a list merged by {merge_key!r}, got {kind_of(element)}",
            format_path(path),
        )
    if merge_key not in element:
        raise PatchError(f"list element has no merge key {merge_key!r}", format_path(path))
    return identity(element[merge_key])


def _diff_primitive_lists(
    patch: dict[str, Any],
    key: str,
    old: list[Any],
    new: list[Any],
    path: JSONPath,
    changes: bool,
    deletions: bool,
) -> None:
    for i, element in enumerate((*old, *new)):
        if isinstance(element, dict | list):
            raise PatchError(
                f"a list merged without a merge key must hold primitives, got {kind_of(element)}",
                format_path((*path, i if i < len(old) else i - len(old))),
            )
    old_ids = {identity(v) for v in old}
    new_ids = {identity(v) for v in new}
    if changes:
        added: dict[Key, Any] = {}
        for value in new:
            value_id = identity(value)
            if value_id not in old_ids:
                added.setdefault(value_id, value)
        if added:
            patch[key] = list(added.values())
    removed: dict[Key, Any] = {}
    if deletions:
        for value in old:
            value_id = identity(value)
            if value_id not in new_ids:
                removed.setdefault(value_id, value)
        if removed:
            patch[f"{DELETE_FROM_PRIMITIVE_LIST}/{key}"] = sorted(removed.values(), key=go_string)
    if new and ((deletions and removed) or (changes and not json_equal(old, new))):
        patch[f"{SET_ELEMENT_ORDER}/{key}"] = list(new)


def _combine(base: dict[str, Any], extra: dict[str, Any], schema: PatchSchema) -> dict[str, Any]:
    """Fold the change patch ``extra`` into the deletion patch ``base``.

    Both were just built by _diff_maps, so ``base`` is edited in place. The
    parallel lists ($setElementOrder, $deleteFromPrimitiveList, $retainKeys)
    are derived from the same ``modified`` on both sides and are simply kept.
    """
    for key, value in extra.items():
        if _is_directive_key(key):
            base[key] = value
            continue
        current = base.get(key, MISSING)
        if value is None or current is MISSING:
            base[key] = value
        elif isinstance(current, dict) and isinstance(value, dict):
            base[key] = _combine(current, value, schema.child(key) or EMPTY)
        elif isinstance(current, list) and isinstance(value, list):
            child = schema.child(key) or EMPTY
            if child.list_strategy == "merge":
                base[key] = _combine_lists(current, value, child)
            else:
                base[key] = value
        else:
            base[key] = value

    for key, order in base.items():
        if isinstance(key, str) and key.startswith(SET_ELEMENT_ORDER + "/"):
            field = key[len(SET_ELEMENT_ORDER) + 1 :]
            child = schema.child(field) or EMPTY
            listed = base.get(field)
            if isinstance(listed, list) and child.list_strategy == "merge":
                base[field] = _order_patch_list(listed, order, child.merge_key)
    return base


def _is_directive_key(key: Any) -> bool:
    return isinstance(key, str) and (key == RETAIN_KEYS or key.startswith(PARALLEL_PREFIXES))


def _combine_lists(base: list[Any], extra: list[Any], schema: PatchSchema) -> list[Any]:
    merge_key = schema.merge_key
    if merge_key is None:
        seen = {identity(v) for v in base}
        out = list(base)
        for value in extra:
            value_id = identity(value)
            if value_id not in seen:
                seen.add(value_id)
                out.append(value)
        return out
    items = schema.items or EMPTY
    out = list(base)
    index: dict[Key, int] = {}
    for pos, element in enumerate(out):
        if isinstance(element, dict) and merge_key in element and PATCH not in element:
            index.setdefault(identity(element[merge_key]), pos)
    for element in extra:
        key = key_of(element, merge_key)
        at = index.get(key) if key is not None else None
        if at is None:
            out.append(element)
        else:
            out[at] = _combine(out[at], element, items)
    return out


def _order_patch_list(listed: list[Any], order: list[Any], merge_key: str | None) -> list[Any]:
    # The applying side checks that patch items follow $setElementOrder, so
    # sort them by it; '$patch' directives are not ordered and go last.
    rank: dict[Key, int] = {}
    for i, element in enumerate(order):
        key = key_of(element, merge_key)
        if key is not None:
            rank.setdefault(key, i)
    directives = [el for el in listed if isinstance(el, dict) and PATCH in el]
    items = [el for el in listed if not (isinstance(el, dict) and PATCH in el)]

    def position(element: Any) -> int:
        key = key_of(element, merge_key)
        return rank.get(key, len(rank)) if key is not None else len(rank)

    items.sort(key=position)
    return items + directives
