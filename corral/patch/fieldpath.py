"""Field sets: which fields of an object a manager owns, in Kubernetes' FieldsV1 form.

Server-side apply records, per manager, the set of paths it set. A path is a
tuple of elements, each already written the way FieldsV1 spells it:

- ``f:name``: a field of a struct or a key of a map;
- ``k:{"name":"web"}``: an item of a list merged by key (containers by name),
  the key fields as compact JSON with sorted keys;
- ``v:"foregroundDeletion"``: an item of a list merged as a set (finalizers).

What counts as one field follows sigs.k8s.io/structured-merge-diff: scalars,
atomic lists and atomic structs (label selectors) are leaves; an item of a
keyed or set list is itself a member and may have children; a struct or map
is only the sum of its children (an empty one counts as a leaf, so that
``emptyDir: {}`` can be owned and pruned).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import orjson

from corral.patch.schema import EMPTY, PatchSchema

Path = tuple[str, ...]
FieldSet = frozenset[Path]

# Kubernetes keys these lists by more than their strategic merge key
# (+listMapKey=containerPort,protocol), and defaults the protocol.
_EXTRA_KEYS = {"containerPort": ("protocol",), "port": ("protocol",)}
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}
# A value no JSON document holds: stands for "a keyed item is here".
_PRESENT = object()


def is_atomic_struct(schema: PatchSchema) -> bool:
    """LabelSelector is +structType=atomic in Kubernetes: owned and replaced whole."""
    return "matchLabels" in schema.fields and "matchExpressions" in schema.fields


def list_keys(schema: PatchSchema) -> tuple[str, ...]:
    if schema.merge_key is None:
        return ()
    return (schema.merge_key, *_EXTRA_KEYS.get(schema.merge_key, ()))


def item_element(item: Any, schema: PatchSchema) -> str | None:
    """The path element naming one item of a merged list; None when it has no key."""
    keys = list_keys(schema)
    if not keys:
        if isinstance(item, dict | list):
            return None
        return "v:" + _compact(item)
    if not isinstance(item, dict) or keys[0] not in item:
        return None
    fields = {}
    for key in keys:
        if key in item:
            fields[key] = item[key]
        elif key in _KEY_DEFAULTS:
            fields[key] = _KEY_DEFAULTS[key]
    return "k:" + _compact(fields)


def _compact(value: Any) -> str:
    """Compact JSON with sorted keys, as structured-merge-diff writes keys and values."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # what orjson cannot hold (integers past 64 bits) json can
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def is_keyed_list(value: Any, schema: PatchSchema) -> bool:
    """A list merged item by item, every item of which can be named."""
    if not isinstance(value, list) or schema.list_strategy != "merge":
        return False
    return all(item_element(item, schema) is not None for item in value)


def leaves(value: Any, schema: PatchSchema) -> dict[Path, Any]:
    """Every member path of ``value`` with what sits there (keyed items: a marker)."""
    out: dict[Path, Any] = {}
    _collect(value, schema, (), out)
    return out


def _collect(value: Any, schema: PatchSchema, path: Path, out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and not (path and is_atomic_struct(schema)):
        if not value and path:
            out[path] = value
        for key, child in value.items():
            _collect(child, schema.child(key) or EMPTY, (*path, "f:" + key), out)
        return
    if is_keyed_list(value, schema):
        items_schema = schema.items or EMPTY
        for item in value:
            item_path = (*path, item_element(item, schema) or "")
            out[item_path] = _PRESENT
            if isinstance(item, dict):
                _collect(item, items_schema, item_path, out)
        return
    if path:
        out[path] = value


def field_set(value: Any, schema: PatchSchema, ignored: Iterable[Path] = ()) -> FieldSet:
    return without(leaves(value, schema), ignored)


def without(fields: Iterable[Path], ignored: Iterable[Path]) -> FieldSet:
    """``fields`` less every path at or under one of ``ignored``."""
    prefixes = frozenset(ignored)
    lengths = sorted({len(p) for p in prefixes})
    return frozenset(p for p in fields if not any(p[:n] in prefixes for n in lengths))


def compare(old: Any, new: Any, schema: PatchSchema) -> tuple[FieldSet, FieldSet, FieldSet]:
    """Paths added, modified and removed going from ``old`` to ``new``."""
    before = leaves(old, schema)
    after = leaves(new, schema)
    added = frozenset(after.keys() - before.keys())
    removed = frozenset(before.keys() - after.keys())
    modified = frozenset(
        p
        for p in after.keys() & before.keys()
        if after[p] is not _PRESENT and not _equal(after[p], before[p])
    )
    return added, modified, removed


def _equal(a: Any, b: Any) -> bool:
    # 1 and 1.0 and True are different values in a Kubernetes object.
    return type(a) is type(b) and a == b


# --- FieldsV1 --------------------------------------------------------------------------


def encode(fields: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 tree, keys sorted: members with children carry a "." entry."""
    root: dict[str, Any] = {}
    for path in fields:
        node = root
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}
    return _finish(root)


def tree_of(value: Any, schema: PatchSchema, ignored: Iterable[Path] = ()) -> dict[str, Any]:
    """``encode(field_set(value, schema, ignored))`` in one pass, for the hot path:
    every create records its creator as the owner of all it sent."""
    return _tree(value, schema, _ignore_tree(tuple(ignored)), True) or {}


# Marks a whole subtree as ignored in the tree ``_ignore_tree`` builds.
_ALL: dict[str, Any] = {}


@lru_cache(maxsize=64)
def _ignore_tree(ignored: tuple[Path, ...]) -> dict[str, Any]:
    """``ignored`` as a tree to walk beside the object (shared: never changed)."""
    root: dict[str, Any] = {}
    for path in sorted(ignored, key=len):
        node = root
        for element in path[:-1]:
            node = node.setdefault(element, {})
            if node is _ALL:  # under a path ignored whole already
                break
        else:
            node[path[-1]] = _ALL
    return root


def _tree(
    value: Any, schema: PatchSchema, ignored: dict[str, Any] | None, root: bool = False
) -> dict[str, Any] | None:
    """The FieldsV1 node of the member holding ``value``; None where it holds
    nothing (a struct whose every field is ignored)."""
    if isinstance(value, dict) and (root or not is_atomic_struct(schema)):
        if not value:
            return None if root else {}
        out: dict[str, Any] = {}
        for key in sorted(value):
            element = "f:" + key
            below = ignored.get(element) if ignored else None
            if below is _ALL:
                continue
            child = _tree(value[key], schema.child(key) or EMPTY, below)
            if child is not None:
                out[element] = child
        return out or None
    if isinstance(value, list) and is_keyed_list(value, schema):
        items_schema = schema.items or EMPTY
        items: dict[str, Any] = {}
        for item in value:
            children = _tree(item, items_schema, None) if isinstance(item, dict) else None
            element = item_element(item, schema) or ""
            items[element] = {".": {}, **children} if children else {}
        return dict(sorted(items.items())) or None
    return {}


def _finish(node: dict[str, Any]) -> dict[str, Any]:
    """Drop the "." of leaves (a member without children is just {}) and sort."""
    out: dict[str, Any] = {}
    if "." in node and len(node) > 1:
        out["."] = {}
    for key in sorted(node):
        if key != ".":
            out[key] = _finish(node[key])
    return out


def decode(tree: Any, prefix: Path = ()) -> FieldSet:
    """The set of paths a FieldsV1 tree holds; anything malformed holds nothing."""
    if not isinstance(tree, dict):
        return frozenset()
    out: set[Path] = set()
    for key, child in tree.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            continue
        path = (*prefix, key)
        if isinstance(child, dict) and child:
            out |= decode(child, path)
        else:
            out.add(path)
    return frozenset(out)


def describe(path: Path) -> str:
    """A path the way structured-merge-diff prints it: .spec.containers[name="web"].image."""
    parts = []
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f":
            parts.append("." + text)
        elif kind == "k":
            try:
                keys = json.loads(text)
            except ValueError:
                keys = {}
            if not isinstance(keys, dict):
                keys = {}
            parts.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in keys.items()) + "]")
        else:
            parts.append("[=" + text + "]")
    return "".join(parts)


# --- changing objects by path ------------------------------------------------------------


def remove(obj: Any, path: Path, schema: PatchSchema) -> None:
    """Remove what ``path`` names from ``obj`` in place; a path already gone is fine.

    A list or map left empty by the removal goes too, as structured-merge-diff
    drops it: pruning the last env var leaves no ``env: []`` behind.
    """
    chain: list[tuple[Any, str, PatchSchema]] = []  # (container, element, its schema)
    node: Any = obj
    node_schema = schema
    for element in path:
        chain.append((node, element, node_schema))
        node, node_schema = _step(node, element, node_schema)
        if node is None:
            return
    for depth in range(len(chain) - 1, -1, -1):
        container, element, container_schema = chain[depth]
        if element.startswith("f:") and isinstance(container, dict):
            container.pop(element[2:], None)
        elif isinstance(container, list):
            container[:] = [
                item for item in container if item_element(item, container_schema) != element
            ]
        if depth == 0 or container:
            return


def _step(node: Any, element: str, schema: PatchSchema) -> tuple[Any, PatchSchema]:
    if element.startswith("f:"):
        if not isinstance(node, dict):
            return None, EMPTY
        key = element[2:]
        return node.get(key), schema.child(key) or EMPTY
    if not isinstance(node, list):
        return None, EMPTY
    for item in node:
        if item_element(item, schema) == element:
            return item, schema.items or EMPTY
    return None, EMPTY
