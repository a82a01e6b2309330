"""Small helpers on decoded JSON values (dict, list, str, int, float, bool, None)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# A location inside a document: object keys and list indices, outermost first.
JSONPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


def deep_copy(value: Any) -> Any:
    """Copy a JSON value.

    An orjson round trip is about four times faster than walking the value
    in Python (and eight times faster than copy.deepcopy), which matters on
    the API server's patch path. Anything orjson would not give back as the
    same value (datetimes, subclasses such as str enums, integers beyond 64
    bits, non-string keys) takes the slow path instead. Non-finite floats,
    which JSON cannot hold, come back as None.
    """
    if not isinstance(value, dict | list):
        return value
    try:
        return orjson.loads(orjson.dumps(value, default=_refuse, option=_PASSTHROUGH))
    except orjson.JSONEncodeError:
        return _walk_copy(value)


_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _walk_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _walk_copy(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_walk_copy(v) if isinstance(v, dict | list) else v for v in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1``, but ``1`` is ``1.0``."""
    if a is b:
        return True
    # Python's own == is coarser than JSON equality, so a mismatch is final and
    # usually found in C; only an apparent match needs the strict walk.
    if a != b:
        return False
    return _strict_equal(a, b)


def _strict_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for key, value in a.items():
            if key not in b or not _strict_equal(value, b[key]):
                return False
        return True
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        return all(_strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, dict | list):
        return False
    return bool(a == b)


def identity(value: Any) -> tuple[str, Any]:
    """A hashable stand-in for a value, equal exactly when the values are JSON-equal.

    Used to compare list items and merge-key values as Kubernetes does, while
    keeping ``true`` apart from ``1`` (Python would treat them as one key).
    """
    if isinstance(value, dict | list):
        return ("json", json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr))
    if isinstance(value, bool):
        return ("bool", value)
    return ("", value)


def go_string(value: Any) -> str:
    """The text Go's ``%v`` gives a scalar; Kubernetes sorts some lists by it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def kind_of(value: Any) -> str:
    """The JSON type name of a value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def format_path(path: JSONPath) -> str | None:
    """Render a path the way Kubernetes field errors do: ``spec.containers[0].image``."""
    if not path:
        return None
    parts: list[str] = []
    for part in path:
        if not isinstance(part, str):
            parts.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            parts.append(f".{part}" if parts else part)
        else:
            parts.append(f"[{part}]")
    return "".join(parts)
