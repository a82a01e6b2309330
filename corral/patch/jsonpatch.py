"""JSON Patch (RFC 6902): ``application/json-patch+json``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from corral.patch._json import deep_copy, json_equal, kind_of
from corral.patch.errors import PatchError

_INDEX = re.compile(r"(0|[1-9][0-9]*)\Z")
_BAD_ESCAPE = re.compile(r"~(?![01])")

# The members each operation needs besides "op" and "path".
_REQUIRED: dict[str, tuple[str, ...]] = {
    "add": ("value",),
    "remove": (),
    "replace": ("value",),
    "move": ("from",),
    "copy": ("from",),
    "test": ("value",),
}


def apply_json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 operation list and return the new document.

    The operations run in order on one private copy of ``target``; the first
    failing operation raises PatchError and ``target`` is left untouched.
    """
    if not isinstance(operations, list):
        raise PatchError(f"a JSON patch must be an array of operations, got {kind_of(operations)}")
    checked = [_check_operation(index, op) for index, op in enumerate(operations)]
    doc = deep_copy(target)
    for op in checked:
        doc = _OPERATIONS[op["op"]](doc, op)
    return doc


def _check_operation(index: int, op: Any) -> dict[str, Any]:
    # Shape errors point into the patch document itself, e.g. "/2/op".
    if not isinstance(op, dict):
        raise PatchError(f"operation must be an object, got {kind_of(op)}", f"/{index}")
    name = op.get("op")
    if not isinstance(name, str):
        raise PatchError("operation has no string member 'op'", f"/{index}/op")
    if name not in _REQUIRED:
        raise PatchError(f"unknown operation {name!r}", f"/{index}/op")
    if not isinstance(op.get("path"), str):
        raise PatchError(f"{name} operation has no string member 'path'", f"/{index}/path")
    for member in _REQUIRED[name]:
        if member not in op:
            raise PatchError(f"{name} operation has no member {member!r}", f"/{index}/{member}")
    if "from" in _REQUIRED[name] and not isinstance(op["from"], str):
        raise PatchError(f"{name} operation member 'from' must be a string", f"/{index}/from")
    return op


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError("a JSON pointer must be empty or start with '/'", pointer)
    tokens = pointer[1:].split("/")
    for i, token in enumerate(tokens):
        if "~" in token:
            if _BAD_ESCAPE.search(token):
                raise PatchError("invalid '~' escape in JSON pointer", pointer)
            # ~1 first: "~01" must decode to "~1", not "/".
            tokens[i] = token.replace("~1", "/").replace("~0", "~")
    return tokens


def _list_index(container: list[Any], token: str, pointer: str, *, insert: bool) -> int:
    if insert and token == "-":
        return len(container)
    if not _INDEX.match(token):
        raise PatchError(f"{token!r} is not a valid array index", pointer)
    index = int(token)
    limit = len(container) if insert else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} is out of bounds (length {len(container)})", pointer)
    return index


def _walk(doc: Any, tokens: list[str], pointer: str) -> Any:
    """The value the tokens lead to; every step must exist."""
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError("path does not exist", pointer)
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(node, token, pointer, insert=False)]
        else:
            raise PatchError(f"cannot descend into a {kind_of(node)}", pointer)
    return node


def _get(doc: Any, pointer: str) -> Any:
    return _walk(doc, _parse_pointer(pointer), pointer)


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = _parse_pointer(pointer)
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, pointer, insert=True), value)
    else:
        raise PatchError(f"cannot add a member to a {kind_of(parent)}", pointer)
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    """Remove the value at ``pointer``; return the new document and the value."""
    tokens = _parse_pointer(pointer)
    if not tokens:
        raise PatchError("cannot remove the whole document", pointer)
    parent = _walk(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("path does not exist", pointer)
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(parent, last, pointer, insert=False))
    raise PatchError(f"cannot remove a member of a {kind_of(parent)}", pointer)


def _op_add(doc: Any, op: dict[str, Any]) -> Any:
    return _add(doc, op["path"], deep_copy(op["value"]))


def _op_remove(doc: Any, op: dict[str, Any]) -> Any:
    return _remove(doc, op["path"])[0]


def _op_replace(doc: Any, op: dict[str, Any]) -> Any:
    pointer: str = op["path"]
    tokens = _parse_pointer(pointer)
    value = deep_copy(op["value"])
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("path does not exist", pointer)
        parent[last] = value
    elif isinstance(parent, list):
        parent[_list_index(parent, last, pointer, insert=False)] = value
    else:
        raise PatchError(f"cannot replace a member of a {kind_of(parent)}", pointer)
    return doc


def _op_move(doc: Any, op: dict[str, Any]) -> Any:
    source: str = op["from"]
    pointer: str = op["path"]
    if pointer.startswith(source + "/"):
        raise PatchError(f"cannot move {source!r} into one of its own children", pointer)
    if source == pointer:
        _get(doc, source)
        return doc
    doc, value = _remove(doc, source)
    return _add(doc, pointer, value)


def _op_copy(doc: Any, op: dict[str, Any]) -> Any:
    return _add(doc, op["path"], deep_copy(_get(doc, op["from"])))


def _op_test(doc: Any, op: dict[str, Any]) -> Any:
    pointer: str = op["path"]
    if not json_equal(_get(doc, pointer), op["value"]):
        raise PatchError("test operation failed: value differs", pointer)
    return doc


_OPERATIONS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "copy": _op_copy,
    "test": _op_test,
}
