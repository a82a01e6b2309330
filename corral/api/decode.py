"""Turning a request body into a typed, defaulted object, or into a clear error.

Kubernetes draws a line that clients rely on: a body that does not *decode*
(wrong JSON types, unknown fields under fieldValidation=Strict) is a 400
BadRequest, while a body that decodes but breaks a rule (a missing field, an
unsupported value) is a 422 Invalid. Both name the field path.
"""

from __future__ import annotations

import copy
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from corral.api import errors
from corral.api.apiextensions import CustomObject, CustomObjectHead
from corral.api.base import ApiModel
from corral.api.errors import ApiError, Cause
from corral.api.resources import ResourceType

FieldValidation = Literal["Strict", "Warn", "Ignore"]
FIELD_VALIDATION_MODES: tuple[FieldValidation, ...] = ("Strict", "Warn", "Ignore")

# Pydantic error types that mean "the JSON has the wrong shape here".
_DECODE_ERRORS = {
    "model_type",
    "model_attributes_type",
    "dict_type",
    "list_type",
    "string_type",
    "int_type",
    "int_from_float",
    "int_parsing",
    "float_type",
    "bool_type",
    "bool_parsing",
    "none_required",
    "union_tag_invalid",
    "is_instance_of",
}

_TYPE_NAMES = {
    "string_type": "string",
    "int_type": "integer",
    "int_from_float": "integer",
    "int_parsing": "integer",
    "float_type": "number",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
}


@dataclass(frozen=True, slots=True)
class Decoded:
    model: ApiModel
    warnings: list[str]

    @property
    def data(self) -> dict[str, Any]:
        return self.model.to_dict()


def decode(
    rt: ResourceType | None,
    data: Any,
    field_validation: FieldValidation = "Strict",
    *,
    model: type[ApiModel] | None = None,
) -> Decoded:
    """Validate ``data`` as a ``rt`` object (or as ``model`` for subresources)."""
    if model is None and rt is None:
        raise TypeError("decode needs a resource type or a model")
    if model is None and rt is not None and rt.custom is not None:
        return _decode_custom(rt, data, field_validation)
    target = model or rt.model  # type: ignore[union-attr]
    kind = _model_kind(target) or (rt.kind if rt else target.__name__)
    if not isinstance(data, dict):
        raise errors.bad_request(
            f"the request body must be a JSON object describing a {kind}, not {_json_type(data)}"
        )
    try:
        return Decoded(target.model_validate(data, extra="forbid"), [])
    except ValidationError as error:
        problems = error.errors(include_url=False)
    unknown = [p for p in problems if p["type"] == "extra_forbidden"]
    if unknown and field_validation != "Strict" and len(unknown) == len(problems):
        try:
            cleaned = target.model_validate(data, extra="ignore")
        except ValidationError as error:
            problems = error.errors(include_url=False)
        else:
            warnings = (
                [f'unknown field "{field_path(target, p["loc"])}"' for p in unknown]
                if field_validation == "Warn"
                else []
            )
            return Decoded(cleaned, warnings)
    if field_validation != "Strict":
        problems = [p for p in problems if p["type"] != "extra_forbidden"]
    raise _to_api_error(rt, target, kind, data, problems)


def _decode_custom(rt: ResourceType, data: Any, field_validation: FieldValidation) -> Decoded:
    """A custom kind's object: metadata typed as any kind's, the rest by its CRD's schema."""
    assert rt.custom is not None
    if not isinstance(data, dict):
        raise errors.bad_request(
            f"the request body must be a JSON object describing a {rt.kind}, not {_json_type(data)}"
        )
    body = copy.deepcopy(data)
    head = {k: body[k] for k in ("apiVersion", "kind", "metadata") if k in body}
    decode(None, head, field_validation, model=CustomObjectHead)
    pruned: list[str] = []
    causes = rt.custom.process(body, pruned)
    warnings: list[str] = []
    if pruned and field_validation == "Strict":
        unknown = [Cause("FieldValueInvalid", f'unknown field "{p}"', p) for p in pruned]
        raise errors.bad_request(
            "strict decoding error: " + ", ".join(c.message for c in unknown), unknown
        )
    if pruned and field_validation == "Warn":
        warnings = [f'unknown field "{p}"' for p in pruned]
    if causes:
        refusal = errors.invalid(rt.kind, _name_of(body), causes, rt.group)
        # kube-apiserver names a custom kind with its group: Widget.example.com "w" is invalid
        refusal.message = f"{rt.kind}.{rt.group}{refusal.message[len(rt.kind) :]}"
        raise refusal
    return Decoded(CustomObject.model_validate(body, extra="allow", strict=False), warnings)


def _to_api_error(
    rt: ResourceType | None,
    target: type[ApiModel],
    kind: str,
    data: dict[str, Any],
    problems: list[ErrorDetails],
) -> ApiError:
    name = _name_of(data)
    decode_causes: list[Cause] = []
    invalid_causes: list[Cause] = []
    seen_union_paths: set[str] = set()
    for problem in problems:
        loc = problem["loc"]
        path = field_path(target, loc)
        kind_of_error = problem["type"]
        if kind_of_error == "extra_forbidden":
            decode_causes.append(Cause("FieldValueInvalid", f'unknown field "{path}"', path))
        elif kind_of_error in _DECODE_ERRORS:
            if _is_union_member(target, loc):
                if path in seen_union_paths:
                    continue
                seen_union_paths.add(path)
                expected = "an integer or a string"
            else:
                expected = f"a {_TYPE_NAMES.get(kind_of_error, 'different type')}"
                if expected == "a integer":
                    expected = "an integer"
                if expected == "a array":
                    expected = "an array"
                if expected == "a object":
                    expected = "an object"
            decode_causes.append(
                Cause(
                    "FieldValueTypeInvalid",
                    f"expected {expected}, got {_json_type(problem['input'])}",
                    path,
                )
            )
        elif kind_of_error == "missing":
            invalid_causes.append(Cause("FieldValueRequired", "Required value", path))
        elif kind_of_error == "literal_error":
            expected = (problem.get("ctx") or {}).get("expected", "")
            supported = ", ".join(
                f'"{v.strip()[1:-1]}"' if v.strip().startswith("'") else v.strip()
                for v in expected.replace(" or ", ", ").split(",")
                if v.strip()
            )
            invalid_causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f"Unsupported value: {_render(problem['input'])}: "
                    f"supported values: {supported}",
                    path,
                )
            )
        elif kind_of_error.startswith("FieldValue"):
            invalid_causes.append(Cause(kind_of_error, problem["msg"], path))
        else:
            invalid_causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {_render(problem['input'])}: {problem['msg']}",
                    path,
                )
            )
    if decode_causes:
        unknown = [c for c in decode_causes if c.message.startswith("unknown field")]
        if unknown and len(unknown) == len(decode_causes):
            message = "strict decoding error: " + ", ".join(c.message for c in unknown)
        else:
            details = "; ".join(
                c.message if c.message.startswith("unknown field") else f"{c.field}: {c.message}"
                for c in decode_causes
            )
            version = _model_api_version(target) or (rt.api_version if rt else "v1")
            message = f'{kind} in version "{version}" cannot be handled as a {kind}: {details}'

        return errors.bad_request(message, decode_causes + invalid_causes)
    return errors.invalid(kind, name, invalid_causes, group=rt.group if rt else "")


def _model_api_version(model: type[ApiModel]) -> str | None:
    field = model.model_fields.get("api_version")
    if field is None or field.default is None:
        return None
    return str(field.default)


def _model_kind(model: type[ApiModel]) -> str | None:
    field = model.model_fields.get("kind")
    if field is None or field.default is None:
        return None
    return str(field.default)


def _name_of(data: dict[str, Any]) -> str:
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        name = metadata.get("name") or metadata.get("generateName") or ""
        return name if isinstance(name, str) else ""
    return ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return f'string "{value}"' if len(value) <= 64 else "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _render(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# --- field paths ------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional from a type."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _field_by_alias(model: type[BaseModel], alias: str) -> Any:
    for name, info in model.model_fields.items():
        if info.alias == alias or name == alias:
            return info.annotation
    return None


def _walk(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[tuple[str, Any]]:
    """Pair each loc element with how it renders: ``.name``, ``[0]`` or ``[key]``."""
    steps: list[tuple[str, Any]] = []
    current: Any = model
    for element in loc:
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            steps.append((f".{element}", current))
            current = _field_by_alias(current, str(element))
        elif origin is list:
            steps.append((f"[{element}]", current))
            current = get_args(current)[0]
        elif origin is dict:
            steps.append((f"[{element}]", current))
            current = get_args(current)[1]
        elif origin in (typing.Union, types.UnionType):
            # A union member tag (for example "int" of int | str): not part of the path.
            steps.append(("", current))
        else:
            steps.append((f".{element}" if isinstance(element, str) else f"[{element}]", None))
            current = None
    return steps


def field_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    return "".join(text for text, _ in _walk(model, loc)).lstrip(".")


def _is_union_member(model: type[BaseModel], loc: tuple[int | str, ...]) -> bool:
    return any(text == "" for text, _ in _walk(model, loc))
