"""Strategic merge patch: ``application/strategic-merge-patch+json``.

Applying follows Kubernetes' ``StrategicMergeMapPatch`` and building follows
``CreateThreeWayMergePatch`` / ``CreateTwoWayMergePatch``
(k8s.io/apimachinery/pkg/util/strategicpatch), so patches from kubectl and
client-go land exactly as they would on a Kubernetes API server. Where a
field's patch metadata matters it comes from a PatchSchema; nothing here
knows about any particular kind.
"""

from __future__ import annotations

from typing import Any

from corral.patch._json import (
    JSONPath,
    deep_copy,
    format_path,
    identity,
    kind_of,
)
from corral.patch.errors import PatchError
from corral.patch.schema import EMPTY, PatchSchema

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"
PARALLEL_PREFIXES = (DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)

MISSING: Any = object()

Key = tuple[str, Any]


# --------------------------------------------------------------------------
# Applying a patch


def apply_strategic_merge_patch(
    original: dict[str, Any], patch: dict[str, Any], schema: PatchSchema = EMPTY
) -> dict[str, Any]:
    """Apply a strategic merge patch to ``original`` and return the result.

    Neither argument is modified. Raises PatchError for a malformed patch.
    """
    if not isinstance(original, dict):
        raise PatchError(f"the object to patch must be a JSON object, got {kind_of(original)}")
    if not isinstance(patch, dict):
        raise PatchError(f"a strategic merge patch must be a JSON object, got {kind_of(patch)}")
    # The one deep copy per call; everything below edits this copy in place
    # and copies patch values only where they are inserted.
    return _merge_map(deep_copy(original), patch, schema, ())


class _Entry:
    """A list item during a merge, with its merge identity and live positions.

    ``pos`` is the item's index in the live list once ``$patch: delete``
    items are gone (None for items the patch adds). ``order_pos`` is the
    position ``$setElementOrder`` compares by. In Kubernetes that is read
    from the live slice after the merge edited it in place: deletions
    compact it, and the first added items land in the slots they freed.
    Results for lists with both deletions and additions depend on this, so
    it is reproduced rather than "fixed".
    """

    __slots__ = ("item", "key", "order_pos", "pos")

    def __init__(
        self, item: Any, key: Key | None, pos: int | None, order_pos: int | None = None
    ) -> None:
        self.item = item
        self.key = key
        self.pos = pos
        self.order_pos = pos if order_pos is None else order_pos


def _merge_map(
    target: dict[str, Any], patch: dict[str, Any], schema: PatchSchema, path: JSONPath
) -> dict[str, Any]:
    """Merge ``patch`` into ``target`` (a private copy, edited in place)."""
    if PATCH in patch:
        directive = patch[PATCH]
        if directive == "delete":
            # Kubernetes leaves an empty map, not a missing key.
            return {}
        if directive == "replace":
            target = {}
        elif directive != "merge":
            raise _bad_directive(directive, (*path, PATCH))
        patch = {k: v for k, v in patch.items() if k != PATCH}

    orders: list[tuple[str, Any]] = []
    deletions: list[tuple[str, str, Any]] = []
    for key, value in patch.items():
        if not isinstance(key, str):
            raise PatchError(f"object keys must be strings, got {key!r}", format_path(path))
        if key.startswith(SET_ELEMENT_ORDER):
            orders.append((_directive_field(key, SET_ELEMENT_ORDER, path), value))
        elif key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            deletions.append((key, _directive_field(key, DELETE_FROM_PRIMITIVE_LIST, path), value))

    if RETAIN_KEYS in patch:
        _apply_retain_keys(target, patch, path)

    # Order directives go first because they also merge the list they name;
    # primitive deletions go last so that they win over additions.
    ordered: set[str] = set()
    for field, order in orders:
        if _apply_element_order(target, patch, field, order, schema, path):
            ordered.add(field)

    for key, value in patch.items():
        if key in ordered or key == RETAIN_KEYS or key.startswith(PARALLEL_PREFIXES):
            continue
        if value is None:
            target.pop(key, None)
            continue
        if isinstance(value, dict):
            child = schema.child(key) or EMPTY
            current = target.get(key)
            base = current if isinstance(current, dict) else {}
            target[key] = _merge_map(base, value, child, (*path, key))
        elif isinstance(value, list):
            child = schema.child(key) or EMPTY
            current = target.get(key)
            if isinstance(current, list) and child.list_strategy == "merge":
                merged = _merge_list(current, value, child, (*path, key))
                target[key] = [entry.item for entry in merged]
            else:
                target[key] = _fresh_list(value, child, (*path, key))
        else:
            target[key] = value

    for key, field, values in deletions:
        _delete_from_primitive_list(target, field, values, (*path, key))
    return target


def _bad_directive(directive: Any, path: JSONPath) -> PatchError:
    return PatchError(
        f"unknown patch directive {directive!r}: expected 'replace', 'delete' or 'merge'",
        format_path(path),
    )


def _directive_field(key: str, prefix: str, path: JSONPath) -> str:
    head, slash, field = key.partition("/")
    if head != prefix or not slash or not field:
        raise PatchError(
            f"malformed directive {key!r}: expected '{prefix}/<field>'", format_path((*path, key))
        )
    return field


def _apply_retain_keys(target: dict[str, Any], patch: dict[str, Any], path: JSONPath) -> None:
    names = patch[RETAIN_KEYS]
    if not isinstance(names, list):
        raise PatchError(
            f"$retainKeys must be a list of field names, got {kind_of(names)}",
            format_path((*path, RETAIN_KEYS)),
        )
    retained = {name for name in names if isinstance(name, str)}
    for key, value in patch.items():
        if value is None or key == RETAIN_KEYS or key.startswith(PARALLEL_PREFIXES):
            continue
        if key not in retained:
            raise PatchError(
                f"field {key!r} is set by the patch but missing from $retainKeys",
                format_path((*path, key)),
            )
    for key in [k for k in target if k not in retained]:
        del target[key]


def key_of(item: Any, merge_key: str | None) -> Key | None:
    if merge_key is None:
        return identity(item)
    if isinstance(item, dict) and merge_key in item:
        return identity(item[merge_key])
    return None


def _merge_list(
    current: list[Any], patch: list[Any], schema: PatchSchema, path: JSONPath
) -> list[_Entry]:
    if schema.merge_key is None:
        return _merge_primitives(current, patch, path)
    return _merge_keyed(current, patch, schema.merge_key, schema.items or EMPTY, path)


def _merge_keyed(
    current: list[Any], patch: list[Any], merge_key: str, items: PatchSchema, path: JSONPath
) -> list[_Entry]:
    plain: list[tuple[int, dict[str, Any]]] = []
    deleted: set[Key] = set()
    replace = False
    for i, element in enumerate(patch):
        if not isinstance(element, dict):
            raise PatchError(
                f"expected an object in a list merged by {merge_key!r}, got {kind_of(element)}",
                format_path((*path, i)),
            )
        if PATCH not in element:
            plain.append((i, element))
            continue
        directive = element[PATCH]
        if directive == "delete":
            if merge_key not in element:
                raise PatchError(
                    f"'$patch: delete' needs the merge key {merge_key!r}", format_path((*path, i))
                )
            deleted.add(identity(element[merge_key]))
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            rest = {k: v for k, v in element.items() if k != PATCH}
            if rest:
                plain.append((i, rest))
        else:
            raise _bad_directive(directive, (*path, i, PATCH))

    if replace:
        fresh = (_merge_map({}, element, items, (*path, i)) for i, element in plain)
        return [_Entry(item, key_of(item, merge_key), None) for item in fresh]

    entries: list[_Entry] = []
    index: dict[Key, int] = {}
    for item in current:
        key = key_of(item, merge_key)
        if key is not None:
            if key in deleted:
                continue
            index.setdefault(key, len(entries))
        entries.append(_Entry(item, key, len(entries)))

    # Added items take the slots deleted items freed, as far as they reach.
    free_slot = len(entries)
    rank: dict[Key, int] = {}
    for i, element in plain:
        if merge_key not in element:
            raise PatchError(
                f"list element has no merge key {merge_key!r}", format_path((*path, i))
            )
        key = identity(element[merge_key])
        rank.setdefault(key, len(rank))
        at = index.get(key)
        if at is None:
            index[key] = len(entries)
            slot = free_slot if free_slot < len(current) else None
            free_slot += 1
            fresh_item = _merge_map({}, element, items, (*path, i))
            entries.append(_Entry(fresh_item, key, None, slot))
        else:
            entry = entries[at]
            entry.item = _merge_map(entry.item, element, items, (*path, i))
    return _order_entries(entries, rank)


def _merge_primitives(current: list[Any], patch: list[Any], path: JSONPath) -> list[_Entry]:
    plain: list[Any] = []
    replace = False
    for i, element in enumerate(patch):
        if isinstance(element, dict):
            if len(element) == 1 and element.get(PATCH) == "replace":
                replace = True
                continue
            raise PatchError(
                "cannot merge an object into a list without a merge key", format_path((*path, i))
            )
        if isinstance(element, list):
            raise PatchError("cannot merge a list of lists", format_path((*path, i)))
        plain.append(element)
    if replace:
        return [_Entry(value, identity(value), None) for value in plain]

    entries: list[_Entry] = []
    seen: set[Key] = set()
    for pos, value in enumerate(current):
        key = identity(value)
        if key not in seen:
            seen.add(key)
            entries.append(_Entry(value, key, pos))
    rank: dict[Key, int] = {}
    for value in plain:
        key = identity(value)
        if key in rank:
            continue
        rank[key] = len(rank)
        if key not in seen:
            seen.add(key)
            entries.append(_Entry(value, key, None))
    return _order_entries(entries, rank)


def _order_entries(
    entries: list[_Entry], rank: dict[Key, int], *, by_order_pos: bool = False
) -> list[_Entry]:
    """Order a merged list the way Kubernetes does.

    Items named by the patch (or by ``$setElementOrder``) take the patch's
    order; the others keep their live order and are slotted in between by
    their live position.
    """
    ranked: list[tuple[int, _Entry]] = []
    others: list[_Entry] = []
    for entry in entries:
        at = rank.get(entry.key) if entry.key is not None else None
        if at is None:
            others.append(entry)
        else:
            ranked.append((at, entry))
    if not ranked:
        return entries
    ranked.sort(key=lambda pair: pair[0])
    return _interleave(others, [entry for _, entry in ranked], by_order_pos)


def _interleave(
    server_only: list[_Entry], patched: list[_Entry], by_order_pos: bool
) -> list[_Entry]:
    # Kubernetes' mergeSortedSlice: a live-only item goes first only when
    # both items have a live position and its position is earlier.
    out: list[_Entry] = []
    i = j = 0
    while i < len(server_only) and j < len(patched):
        left, right = server_only[i], patched[j]
        lpos = left.order_pos if by_order_pos else left.pos
        rpos = right.order_pos if by_order_pos else right.pos
        if lpos is not None and rpos is not None and lpos < rpos:
            out.append(left)
            i += 1
        else:
            out.append(right)
            j += 1
    out.extend(server_only[i:])
    out.extend(patched[j:])
    return out


def _apply_element_order(
    target: dict[str, Any],
    patch: dict[str, Any],
    field: str,
    order: Any,
    schema: PatchSchema,
    path: JSONPath,
) -> bool:
    """Merge and reorder ``field`` per ``$setElementOrder/<field>``.

    Returns False when the list is left to the ordinary merge instead (not a
    merged list, or deleted by the patch).
    """
    directive_path = (*path, f"{SET_ELEMENT_ORDER}/{field}")
    if not isinstance(order, list):
        raise PatchError(
            f"$setElementOrder must be a list, got {kind_of(order)}", format_path(directive_path)
        )
    child = schema.child(field) or EMPTY
    patch_list = patch.get(field, MISSING)
    if child.list_strategy != "merge" or patch_list is None:
        return False
    if patch_list is not MISSING and not isinstance(patch_list, list):
        raise PatchError(
            f"$setElementOrder names a patch field that is a {kind_of(patch_list)}, not a list",
            format_path(directive_path),
        )
    merge_key = child.merge_key
    order_keys = _order_keys(order, merge_key, directive_path)
    if patch_list is not MISSING:
        _check_relative_order(patch_list, order_keys, merge_key, (*path, field), directive_path)

    current = target.get(field)
    if patch_list is MISSING:
        if not isinstance(current, list):
            return True
        entries = [_Entry(item, key_of(item, merge_key), pos) for pos, item in enumerate(current)]
    else:
        base = current if isinstance(current, list) else []
        entries = _merge_list(base, patch_list, child, (*path, field))

    rank: dict[Key, int] = {}
    for i, key in enumerate(order_keys):
        rank.setdefault(key, i)
    ordered = _order_entries(entries, rank, by_order_pos=True)
    target[field] = [entry.item for entry in ordered]
    return True


def _order_keys(order: list[Any], merge_key: str | None, path: JSONPath) -> list[Key]:
    keys: list[Key] = []
    for i, element in enumerate(order):
        if merge_key is None:
            keys.append(identity(element))
        elif isinstance(element, dict) and merge_key in element:
            keys.append(identity(element[merge_key]))
        else:
            raise PatchError(
                f"$setElementOrder entries must hold the merge key {merge_key!r}",
                format_path((*path, i)),
            )
    return keys


def _check_relative_order(
    patch_list: list[Any],
    order_keys: list[Key],
    merge_key: str | None,
    list_path: JSONPath,
    directive_path: JSONPath,
) -> None:
    """The patch's own items must appear in ``$setElementOrder``, in the same order."""
    at = 0
    for i, element in enumerate(patch_list):
        if isinstance(element, dict) and PATCH in element:
            continue
        key = key_of(element, merge_key)
        if key is None:
            raise PatchError(
                f"list element has no merge key {merge_key!r}", format_path((*list_path, i))
            )
        while at < len(order_keys) and order_keys[at] != key:
            at += 1
        if at == len(order_keys):
            raise PatchError(
                "the patch list does not match the order given by $setElementOrder",
                format_path(directive_path),
            )
        at += 1


def _delete_from_primitive_list(
    target: dict[str, Any], field: str, values: Any, path: JSONPath
) -> None:
    if not isinstance(values, list):
        raise PatchError(
            f"$deleteFromPrimitiveList must be a list, got {kind_of(values)}", format_path(path)
        )
    current = target.get(field)
    # Deleting from a missing list is a no-op (Kubernetes once created the list).
    if not isinstance(current, list) or not values:
        return
    drop = {identity(value) for value in values}
    target[field] = [value for value in current if identity(value) not in drop]


def _fresh_list(value: list[Any], schema: PatchSchema, path: JSONPath) -> list[Any]:
    """A patch list taken as a field's new value, cleaned as Kubernetes cleans new values.

    Objects inside it lose their null members (Kubernetes'
    discardNullValuesFromPatch) and have their directives applied; null
    elements of the list itself are kept. Directive-only elements have
    nothing to act on and are dropped.
    """
    items = schema.items or EMPTY
    out: list[Any] = []
    for i, element in enumerate(value):
        if isinstance(element, dict):
            if PATCH in element:
                directive = element[PATCH]
                if directive in ("replace", "delete"):
                    continue
                if directive != "merge":
                    raise _bad_directive(directive, (*path, i, PATCH))
                element = {k: v for k, v in element.items() if k != PATCH}
                if not element:
                    continue
            out.append(_merge_map({}, element, items, (*path, i)))
        elif isinstance(element, list):
            out.append(_fresh_list(element, EMPTY, (*path, i)))
        else:
            out.append(element)
    return out
