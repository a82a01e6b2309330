"""Structural schemas: check one, and prune, default and validate an object against it.

Kubernetes does not hand a custom resource's ``openAPIV3Schema`` to a
general JSON Schema validator: it requires a *structural* schema (every
node typed, no ``$ref``, ``properties`` only under objects), prunes the
fields the schema does not name unless ``x-kubernetes-preserve-unknown-fields``
says otherwise, fills in ``default`` values, and then validates with messages
of its own ("spec.replicas in body must be of type integer"). The jsonschema
library validates well but prunes and defaults nothing, accepts untyped
nodes, and words its errors differently; the subset Kubernetes allows is
small enough to walk directly, which keeps each step's rules in one place.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from corral.api.errors import Cause

Schema = dict[str, Any]

TYPES = ("object", "array", "string", "integer", "number", "boolean")

# The JSON Schema keys a structural schema may use (JSONSchemaProps' fields).
ALLOWED_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "default",
        "example",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "multipleOf",
        "enum",
        "maxProperties",
        "minProperties",
        "required",
        "items",
        "allOf",
        "oneOf",
        "anyOf",
        "not",
        "properties",
        "additionalProperties",
        "nullable",
        "externalDocs",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)

_NUMERIC_KEYS = ("maximum", "minimum", "multipleOf")
_COUNT_KEYS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties")
_BOOL_KEYS = (
    "exclusiveMaximum",
    "exclusiveMinimum",
    "uniqueItems",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
)


# --- the schema itself ------------------------------------------------------------------


def structural_problems(schema: Any, path: str) -> list[Cause]:
    """What makes ``schema`` (at field path ``path``) not a structural schema."""
    if not isinstance(schema, dict):
        return [Cause("FieldValueInvalid", "Invalid value: must be an object", path)]
    problems = _node_problems(schema, path)
    problems.extend(_root_metadata_problems(schema, path))
    if schema.get("type") != "object":
        problems.insert(
            0, Cause("FieldValueRequired", 'Required value: must be "object"', path + ".type")
        )
    return problems


def _root_metadata_problems(schema: Schema, path: str) -> list[Cause]:
    """At the root, metadata may only restrict name and generateName: the server owns the rest."""
    metadata = (schema.get("properties") or {}).get("metadata")
    if not isinstance(metadata, dict):
        return []
    extra_keys = set(metadata) - {"type", "properties"}
    extra_properties = set(metadata.get("properties") or {}) - {"name", "generateName"}
    if metadata.get("type") not in (None, "object") or extra_keys or extra_properties:
        return [
            Cause(
                "FieldValueForbidden",
                "Forbidden: must not specify anything other than name and generateName, but "
                "metadata is implicitly specified",
                f"{path}.properties[metadata]",
            )
        ]
    return []


def _node_problems(node: Schema, path: str) -> list[Cause]:
    problems: list[Cause] = []
    for key in node:
        if key not in ALLOWED_KEYS:
            problems.append(Cause("FieldValueForbidden", "Forbidden: not allowed", f"{path}.{key}"))
    problems.extend(_scalar_key_problems(node, path))
    kind = node.get("type")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if kind is not None and kind not in TYPES:
        supported = ", ".join(f'"{t}"' for t in TYPES)
        problems.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{kind}": supported values: {supported}',
                path + ".type",
            )
        )
    if not kind and not int_or_string and not preserve:
        problems.append(
            Cause(
                "FieldValueRequired",
                "Required value: must not be empty for specified object fields",
                path + ".type",
            )
        )
    if int_or_string and kind:
        problems.append(
            Cause(
                "FieldValueForbidden",
                "Forbidden: must be empty if x-kubernetes-int-or-string is true",
                path + ".type",
            )
        )
    if "properties" in node and "additionalProperties" in node:
        problems.append(
            Cause(
                "FieldValueForbidden",
                "Forbidden: additionalProperties and properties are mutual exclusive",
                path + ".additionalProperties",
            )
        )
    if "properties" in node and kind not in (None, "object"):
        problems.append(
            Cause(
                "FieldValueForbidden",
                'Forbidden: must be "object" when properties are set',
                path + ".type",
            )
        )
    if kind == "array" and not isinstance(node.get("items"), dict):
        problems.append(
            Cause("FieldValueRequired", "Required value: must be specified", path + ".items")
        )
    problems.extend(_child_problems(node, path))
    if "default" in node and not problems:
        problems.extend(_default_problems(node, path))
    return problems


def _scalar_key_problems(node: Schema, path: str) -> list[Cause]:
    problems: list[Cause] = []
    for key in _NUMERIC_KEYS:
        if key in node and not _is_number(node[key]):
            problems.append(
                Cause("FieldValueTypeInvalid", "Invalid value: must be a number", f"{path}.{key}")
            )
    for key in _COUNT_KEYS:
        value = node.get(key)
        if key in node and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            problems.append(
                Cause(
                    "FieldValueInvalid",
                    "Invalid value: must be a non-negative integer",
                    f"{path}.{key}",
                )
            )
    for key in _BOOL_KEYS:
        if key in node and not isinstance(node[key], bool):
            problems.append(
                Cause("FieldValueTypeInvalid", "Invalid value: must be a boolean", f"{path}.{key}")
            )
    if "pattern" in node and (
        not isinstance(node["pattern"], str) or _compile(node["pattern"]) is None
    ):
        problems.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: must be a valid regular expression",
                path + ".pattern",
            )
        )
    if "required" in node and not (
        isinstance(node["required"], list) and all(isinstance(r, str) for r in node["required"])
    ):
        problems.append(
            Cause(
                "FieldValueTypeInvalid",
                "Invalid value: must be a list of strings",
                path + ".required",
            )
        )
    if "enum" in node and not isinstance(node["enum"], list):
        problems.append(
            Cause("FieldValueTypeInvalid", "Invalid value: must be a list", path + ".enum")
        )
    return problems


def _child_problems(node: Schema, path: str) -> list[Cause]:
    problems: list[Cause] = []
    properties = node.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            problems.append(
                Cause(
                    "FieldValueTypeInvalid",
                    "Invalid value: must be an object",
                    path + ".properties",
                )
            )
        else:
            for name, child in properties.items():
                problems.extend(_child(child, f"{path}.properties[{name}]"))
    items = node.get("items")
    if isinstance(items, dict):
        problems.extend(_child(items, path + ".items"))
    elif items is not None:
        problems.append(
            Cause(
                "FieldValueForbidden", "Forbidden: items must be a schema object", path + ".items"
            )
        )
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        problems.extend(_child(additional, path + ".additionalProperties"))
    elif additional is not None and additional is not True:
        problems.append(
            Cause(
                "FieldValueForbidden",
                "Forbidden: must be a schema object or true",
                path + ".additionalProperties",
            )
        )
    return problems


def _child(child: Any, path: str) -> list[Cause]:
    if not isinstance(child, dict):
        return [Cause("FieldValueTypeInvalid", "Invalid value: must be a schema object", path)]
    return _node_problems(child, path)


def _default_problems(node: Schema, path: str) -> list[Cause]:
    """A default must itself be valid, and survive pruning unchanged, as Kubernetes checks."""
    default = copy.deepcopy(node["default"])
    pruned = prune(copy.deepcopy(default), node)
    if pruned != default:
        return [
            Cause(
                "FieldValueInvalid",
                "Invalid value: must not have unknown fields",
                path + ".default",
            )
        ]
    causes = validate(default, node, "")
    if causes:
        detail = "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
        return [Cause("FieldValueInvalid", f"Invalid value: {detail}", path + ".default")]
    return []


# --- pruning and defaulting -------------------------------------------------------------


def prune(
    value: Any,
    schema: Schema,
    *,
    root: bool = False,
    path: str = "",
    pruned: list[str] | None = None,
) -> Any:
    """Drop the object fields ``schema`` does not name; returns ``value`` (changed in place).

    The paths of what was dropped go to ``pruned``, for fieldValidation's
    Strict (refuse) and Warn (say so).
    """
    if isinstance(value, dict):
        keep = {"apiVersion", "kind", "metadata"} if root else set()
        if schema.get("x-kubernetes-embedded-resource"):
            keep = {"apiVersion", "kind", "metadata"}
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        prefix = f"{path}." if path else ""
        for key in list(value):
            if isinstance(properties, dict) and isinstance(properties.get(key), dict):
                if not (root and key == "metadata"):
                    prune(value[key], properties[key], path=prefix + key, pruned=pruned)
            elif isinstance(additional, dict):
                prune(value[key], additional, path=prefix + key, pruned=pruned)
            elif additional is True or preserve or key in keep:
                continue
            else:
                del value[key]
                if pruned is not None:
                    pruned.append(prefix + key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            prune(item, schema["items"], path=f"{path}[{index}]", pruned=pruned)
    return value


def apply_defaults(value: Any, schema: Schema) -> Any:
    """Fill in missing object fields from their ``default``; returns ``value``, changed in place."""
    if isinstance(value, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for key, child in properties.items():
                if not isinstance(child, dict):
                    continue
                if key not in value and "default" in child:
                    value[key] = copy.deepcopy(child["default"])
                if key in value:
                    apply_defaults(value[key], child)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
    return value


# --- validation -------------------------------------------------------------------------


def validate(value: Any, schema: Schema, path: str) -> list[Cause]:
    """Every way ``value`` breaks ``schema``, worded as kube-apiserver words it."""
    if value is None:
        if schema.get("nullable") is True or not _typed(schema):
            return []
        return [_type_cause(path, value, _expected(schema))]
    if schema.get("x-kubernetes-int-or-string") is True:
        if not (isinstance(value, str) or _is_integer(value)):
            return [_type_cause(path, value, "integer,string")]
    else:
        expected = schema.get("type")
        if expected and not _has_type(value, expected):
            return [_type_cause(path, value, expected)]
    causes: list[Cause] = []
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        supported = ", ".join(_show(v) for v in enum)
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f"Unsupported value: {_show(value)}: supported values: {supported}",
                path,
            )
        )
    for check in _CHECKS:
        causes.extend(check(value, schema, path))
    return causes


def _check_string(value: Any, schema: Schema, path: str) -> list[Cause]:
    if not isinstance(value, str):
        return []
    causes: list[Cause] = []
    name = _body_name(path)
    if "minLength" in schema and len(value) < schema["minLength"]:
        causes.append(
            _invalid(
                path, value, f"{name} in body should be at least {schema['minLength']} chars long"
            )
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(
            Cause(
                "FieldValueTooLong",
                f"Too long: may not be more than {schema['maxLength']} bytes",
                path,
            )
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        compiled = _compile(pattern)
        if compiled is not None and compiled.search(value) is None:
            causes.append(_invalid(path, value, f"{name} in body should match '{pattern}'"))
    return causes


def _check_number(value: Any, schema: Schema, path: str) -> list[Cause]:
    if not _is_number(value):
        return []
    causes: list[Cause] = []
    name = _body_name(path)
    minimum = schema.get("minimum")
    if _is_number(minimum):
        if schema.get("exclusiveMinimum") is True and value <= minimum:
            causes.append(
                _invalid(path, value, f"{name} in body should be greater than {_num(minimum)}")
            )
        elif value < minimum:
            causes.append(
                _invalid(
                    path,
                    value,
                    f"{name} in body should be greater than or equal to {_num(minimum)}",
                )
            )
    maximum = schema.get("maximum")
    if _is_number(maximum):
        if schema.get("exclusiveMaximum") is True and value >= maximum:
            causes.append(
                _invalid(path, value, f"{name} in body should be less than {_num(maximum)}")
            )
        elif value > maximum:
            causes.append(
                _invalid(
                    path, value, f"{name} in body should be less than or equal to {_num(maximum)}"
                )
            )
    multiple = schema.get("multipleOf")
    if _is_number(multiple) and multiple and (value / multiple) != int(value / multiple):
        causes.append(
            _invalid(path, value, f"{name} in body should be a multiple of {_num(multiple)}")
        )
    return causes


def _check_array(value: Any, schema: Schema, path: str) -> list[Cause]:
    if not isinstance(value, list):
        return []
    causes: list[Cause] = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        causes.append(
            _invalid(
                path,
                value,
                f"{_body_name(path)} in body should have at least {schema['minItems']} items",
            )
        )
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(
            Cause(
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                path,
            )
        )
    if schema.get("uniqueItems") is True:
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                causes.append(
                    Cause(
                        "FieldValueDuplicate", f"Duplicate value: {_show(item)}", f"{path}[{index}]"
                    )
                )
            seen.append(item)
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            causes.extend(validate(item, items, f"{path}[{index}]"))
    return causes


def _check_object(value: Any, schema: Schema, path: str) -> list[Cause]:
    if not isinstance(value, dict):
        return []
    causes: list[Cause] = []
    prefix = f"{path}." if path else ""
    for name in schema.get("required") or ():
        if name not in value:
            causes.append(Cause("FieldValueRequired", "Required value", prefix + name))
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if isinstance(properties, dict) and isinstance(properties.get(key), dict):
            if path == "" and key == "metadata":
                continue  # ObjectMeta's own validation covers it
            causes.extend(validate(item, properties[key], prefix + key))
        elif isinstance(additional, dict):
            causes.extend(validate(item, additional, f"{prefix}{key}"))
    for key, limit, word in (("minProperties", "<", "at least"), ("maxProperties", ">", "at most")):
        if key in schema:
            breaks = len(value) < schema[key] if limit == "<" else len(value) > schema[key]
            if breaks:
                causes.append(
                    _invalid(
                        path,
                        len(value),
                        f"{_body_name(path)} in body should have {word} {schema[key]} properties",
                    )
                )
    return causes


def _check_combinators(value: Any, schema: Schema, path: str) -> list[Cause]:
    """allOf, anyOf, oneOf and not: value validations a structural schema may combine."""
    causes: list[Cause] = []
    name = _body_name(path)
    for sub in _schemas(schema.get("allOf")):
        causes.extend(validate(value, sub, path))
    any_of = _schemas(schema.get("anyOf"))
    if any_of and all(validate(value, sub, path) for sub in any_of):
        causes.append(
            _invalid(path, value, f"{name} in body must validate at least one schema (anyOf)")
        )
    one_of = _schemas(schema.get("oneOf"))
    if one_of and sum(not validate(value, sub, path) for sub in one_of) != 1:
        causes.append(
            _invalid(path, value, f"{name} in body must validate one and only one schema (oneOf)")
        )
    not_schema = schema.get("not")
    if isinstance(not_schema, dict) and not validate(value, not_schema, path):
        causes.append(_invalid(path, value, f"{name} in body must not validate the schema (not)"))
    return causes


def _check_list_type(value: Any, schema: Schema, path: str) -> list[Cause]:
    """x-kubernetes-list-type set and map: items, or the items' keys, are unique."""
    if not isinstance(value, list):
        return []
    list_type = schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys") or []
    causes: list[Cause] = []
    seen: list[Any] = []
    for index, item in enumerate(value):
        if list_type == "set":
            identity = item
        elif list_type == "map" and isinstance(item, dict) and keys:
            identity = {key: item.get(key) for key in keys}
        else:
            continue
        if identity in seen:
            shown = _show(identity) if list_type == "set" else _dumps(identity)
            causes.append(
                Cause("FieldValueDuplicate", f"Duplicate value: {shown}", f"{path}[{index}]")
            )
        seen.append(identity)
    return causes


_CHECKS: tuple[Callable[[Any, Schema, str], list[Cause]], ...] = (
    _check_string,
    _check_number,
    _check_array,
    _check_object,
    _check_combinators,
    _check_list_type,
)


# --- helpers ---------------------------------------------------------------------------


def _schemas(value: Any) -> list[Schema]:
    return [s for s in value if isinstance(s, dict)] if isinstance(value, list) else []


def _dumps(value: Any) -> str:
    import json  # only for the rare duplicate map key

    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _typed(schema: Schema) -> bool:
    return bool(schema.get("type")) or schema.get("x-kubernetes-int-or-string") is True


def _expected(schema: Schema) -> str:
    return (
        "integer,string"
        if schema.get("x-kubernetes-int-or-string") is True
        else str(schema.get("type"))
    )


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _has_type(value: Any, expected: str) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": _is_integer,
        "number": _is_number,
        "boolean": lambda v: isinstance(v, bool),
    }
    check = checks.get(expected)
    return check is None or check(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _body_name(path: str) -> str:
    return path or "body"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return _num(value)
    return _json_type(value)


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_show(value)}: {detail}", path)


def _type_cause(path: str, value: Any, expected: str) -> Cause:
    got = _json_type(value)
    return Cause(
        "FieldValueTypeInvalid",
        f'Invalid value: "{got}": {_body_name(path)} in body must be of type {expected}: "{got}"',
        path,
    )
