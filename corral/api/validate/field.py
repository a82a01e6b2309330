"""Field paths and the causes Kubernetes' ``field`` package builds.

A cause's message is what ``field.Error.ErrorBody`` prints: the error type's
words, the bad value where Kubernetes shows one, then the detail. Values are
printed as Go prints them (strings quoted, numbers and booleans bare), since
clients and users match on these texts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from corral.api.base import ApiModel
from corral.api.errors import Cause

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
NOT_FOUND = "FieldValueNotFound"

IS_NEGATIVE = "must be greater than or equal to 0"
IMMUTABLE = "field is immutable"


class Raw(str):
    """A value printed as is, without quotes.

    Kubernetes prints an IntOrString through its ``String()`` method, so
    ``maxSurge: "25%"`` shows as ``Invalid value: 25%``.
    """

    __slots__ = ()


def go_value(value: Any) -> str:
    """``value`` as ``fmt`` prints it in a field error."""
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        # Go swaps a nil for the string "null" before quoting it.
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Mapping):
        if all(isinstance(v, str) for v in value.values()):
            items = ", ".join(f"{quote(str(k))}:{quote(v)}" for k, v in sorted(value.items()))
            return f"map[string]string{{{items}}}"
        return _json(value)
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value):
            return "[]string{" + ", ".join(quote(v) for v in value) + "}"
        return _json(value)
    if isinstance(value, ApiModel):
        return _json(value.to_dict())
    return quote(str(value))


def quote(value: str) -> str:
    """Go's ``%q`` for the strings that occur in practice."""
    return json.dumps(value, ensure_ascii=False)


def _json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, ApiModel):
            return obj.to_dict()
        return str(obj)

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)


# --- paths ---------------------------------------------------------------------


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


# --- causes --------------------------------------------------------------------


def required(path: str, detail: str = "") -> Cause:
    return Cause(REQUIRED, f"Required value: {detail}" if detail else "Required value", path)


def invalid(path: str, value: Any, detail: str = "") -> Cause:
    body = f"Invalid value: {go_value(value)}"
    return Cause(INVALID, f"{body}: {detail}" if detail else body, path)


def not_supported(path: str, value: Any, supported: Iterable[str]) -> Cause:
    body = f"Unsupported value: {go_value(value)}"
    quoted = ", ".join(quote(v) for v in supported)
    return Cause(NOT_SUPPORTED, f"{body}: supported values: {quoted}" if quoted else body, path)


def duplicate(path: str, value: Any, detail: str = "") -> Cause:
    body = f"Duplicate value: {go_value(value)}"
    return Cause(DUPLICATE, f"{body}: {detail}" if detail else body, path)


def forbidden(path: str, detail: str) -> Cause:
    return Cause(FORBIDDEN, f"Forbidden: {detail}" if detail else "Forbidden", path)


def too_long(path: str, max_bytes: int) -> Cause:
    return Cause(TOO_LONG, f"Too long: must have at most {max_bytes} bytes", path)


def not_found(path: str, value: Any) -> Cause:
    return Cause(NOT_FOUND, f"Not found: {go_value(value)}", path)


def invalid_each(path: str, value: Any, messages: Sequence[str]) -> list[Cause]:
    """One Invalid cause per message a ``corral.api.validation`` check returned."""
    if not messages:
        # The common case, on a path run for every write: skip building a list.
        return []
    return [invalid(path, value, msg) for msg in messages]
