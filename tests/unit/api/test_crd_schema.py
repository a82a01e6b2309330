"""Structural schemas: the checks on a CRD's schema, pruning, defaulting and validation."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.crd import validate_crd, version_priority
from corral.api.crd_schema import apply_defaults, prune, structural_problems, validate

SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 3, "default": 1},
        "ratio": {
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 1,
            "exclusiveMaximum": True,
        },
        "mode": {"type": "string", "enum": ["a", "b"]},
        "port": {"x-kubernetes-int-or-string": True},
        "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
        "note": {"type": "string", "nullable": True},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "nested": {
            "type": "object",
            "default": {},
            "properties": {"level": {"type": "string", "default": "info"}},
        },
    },
}
ROOT: dict[str, Any] = {"type": "object", "properties": {"spec": SPEC}}


def causes_of(value: Any) -> dict[str, str]:
    return {c.field: c.message for c in validate(value, ROOT, "")}


def test_a_valid_object_has_no_causes() -> None:
    assert causes_of({"spec": {"image": "abc", "replicas": 2, "port": 80, "note": None}}) == {}
    assert causes_of({"spec": {"image": "abc", "port": "http", "ratio": 0.5}}) == {}


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({}, "spec.image", "Required value"),
        (
            {"image": 5},
            "spec.image",
            'Invalid value: "integer": spec.image in body must be of type string: "integer"',
        ),
        (
            {"image": "ABC"},
            "spec.image",
            "Invalid value: \"ABC\": spec.image in body should match '^[a-z]+$'",
        ),
        (
            {"image": "a"},
            "spec.image",
            'Invalid value: "a": spec.image in body should be at least 2 chars long',
        ),
        ({"image": "abcdef"}, "spec.image", "Too long: may not be more than 5 bytes"),
        (
            {"image": "ab", "replicas": 0},
            "spec.replicas",
            "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ),
        (
            {"image": "ab", "replicas": 4},
            "spec.replicas",
            "Invalid value: 4: spec.replicas in body should be less than or equal to 3",
        ),
        (
            {"image": "ab", "ratio": 0},
            "spec.ratio",
            "Invalid value: 0: spec.ratio in body should be greater than 0",
        ),
        (
            {"image": "ab", "ratio": 1},
            "spec.ratio",
            "Invalid value: 1: spec.ratio in body should be less than 1",
        ),
        (
            {"image": "ab", "mode": "c"},
            "spec.mode",
            'Unsupported value: "c": supported values: "a", "b"',
        ),
        (
            {"image": "ab", "port": 1.5},
            "spec.port",
            'Invalid value: "number": spec.port in body must be of type integer,string: "number"',
        ),
        (
            {"image": "ab", "tags": []},
            "spec.tags",
            "Invalid value: array: spec.tags in body should have at least 1 items",
        ),
        (
            {"image": "ab", "tags": ["a", "b", "c"]},
            "spec.tags",
            "Too many: 3: must have at most 2 items",
        ),
        (
            {"image": "ab", "tags": [1]},
            "spec.tags[0]",
            'Invalid value: "integer": spec.tags[0] in body must be of type string: "integer"',
        ),
        (
            {"image": "ab", "replicas": None},
            "spec.replicas",
            'Invalid value: "null": spec.replicas in body must be of type integer: "null"',
        ),
        (
            {"image": "ab", "labels": {"a": 1}},
            "spec.labels.a",
            'Invalid value: "integer": spec.labels.a in body must be of type string: "integer"',
        ),
        (
            {"image": "ab", "replicas": True},
            "spec.replicas",
            'Invalid value: "boolean": spec.replicas in body must be of type integer: "boolean"',
        ),
    ],
)
def test_each_rule_names_its_field(spec: dict[str, Any], field: str, message: str) -> None:
    assert causes_of({"spec": spec}) == {field: message}


def test_a_float_with_no_fraction_is_an_integer() -> None:
    assert causes_of({"spec": {"image": "ab", "replicas": 2.0}}) == {}


def test_pruning_drops_what_the_schema_does_not_name() -> None:
    obj = {
        "apiVersion": "x/v1",
        "kind": "K",
        "metadata": {"name": "n", "anything": 1},
        "spec": {
            "image": "ab",
            "unknown": 1,
            "free": {"kept": {"deep": True}},
            "labels": {"a": "b"},
            "tags": ["x"],
        },
        "other": {},
    }
    pruned: list[str] = []
    prune(obj, ROOT, root=True, pruned=pruned)
    assert obj == {
        "apiVersion": "x/v1",
        "kind": "K",
        "metadata": {"name": "n", "anything": 1},
        "spec": {
            "image": "ab",
            "free": {"kept": {"deep": True}},
            "labels": {"a": "b"},
            "tags": ["x"],
        },
    }
    assert sorted(pruned) == ["other", "spec.unknown"]


def test_defaults_fill_missing_fields_at_every_level() -> None:
    obj: dict[str, Any] = {"spec": {"image": "ab"}}
    apply_defaults(obj, ROOT)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["nested"] == {"level": "info"}
    explicit: dict[str, Any] = {"spec": {"image": "ab", "replicas": 3, "nested": {"level": "x"}}}
    apply_defaults(explicit, ROOT)
    assert explicit["spec"] == {"image": "ab", "replicas": 3, "nested": {"level": "x"}}


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"type": "string"}, "s.type"),
        ({"type": "object", "properties": {"a": {}}}, "s.properties[a].type"),
        ({"type": "object", "properties": {"a": {"type": "float"}}}, "s.properties[a].type"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "s.properties[a].items"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "$ref": "#/x"}}},
            "s.properties[a].$ref",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}},
            "s.properties[a].pattern",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}},
            "s.properties[a].default",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"x-kubernetes-int-or-string": True, "type": "string"}},
            },
            "s.properties[a].type",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object"}},
                "additionalProperties": {"type": "string"},
            },
            "s.additionalProperties",
        ),
    ],
)
def test_schemas_that_are_not_structural(schema: dict[str, Any], field: str) -> None:
    assert field in {c.field for c in structural_problems(schema, "s")}


def test_a_structural_schema_passes() -> None:
    assert structural_problems(ROOT, "s") == []


def _crd(**changes: Any) -> dict[str, Any]:
    crd: dict[str, Any] = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": ROOT}}
            ],
        },
    }
    crd["spec"].update(changes)
    return crd


def test_a_good_definition_passes() -> None:
    assert validate_crd(_crd()) == []


def test_a_definition_names_each_problem() -> None:
    versions = [
        {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": ROOT}},
        {"name": "v1", "served": True, "storage": True},
    ]
    fields = {
        c.field
        for c in validate_crd(
            _crd(group="nodot", scope="Both", names={"plural": "Widgets"}, versions=versions)
        )
    }
    assert fields == {
        "metadata.name",
        "spec.group",
        "spec.scope",
        "spec.names.plural",
        "spec.names.kind",
        "spec.versions",
        "spec.versions[1].name",
        "spec.versions[1].schema.openAPIV3Schema",
    }


def test_versions_sort_as_kubernetes_prefers_them() -> None:
    names = ["v1alpha1", "foo", "v1beta1", "v2", "v1", "v1beta2", "bar", "v10alpha3"]
    assert sorted(names, key=version_priority) == [
        "v2",
        "v1",
        "v1beta2",
        "v1beta1",
        "v10alpha3",
        "v1alpha1",
        "bar",
        "foo",
    ]


COMBINED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "port": {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        },
        "size": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]},
        "mode": {"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "b$"}]},
        "name": {"type": "string", "not": {"enum": ["forbidden"]}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    },
}


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ({"size": 9}, "size", "Invalid value: 9: size in body should be less than or equal to 5"),
        (
            {"mode": "ab"},
            "mode",
            'Invalid value: "ab": mode in body must validate one and only one schema (oneOf)',
        ),
        (
            {"name": "forbidden"},
            "name",
            'Invalid value: "forbidden": name in body must not validate the schema (not)',
        ),
        ({"tags": ["a", "b", "a"]}, "tags[2]", 'Duplicate value: "a"'),
        ({"ports": [{"name": "x"}, {"name": "x"}]}, "ports[1]", 'Duplicate value: {"name":"x"}'),
    ],
)
def test_combinators_and_list_types(value: dict[str, Any], field: str, message: str) -> None:
    assert {c.field: c.message for c in validate(value, COMBINED, "")} == {field: message}


def test_int_or_string_with_any_of_takes_both() -> None:
    assert validate({"port": 80, "mode": "ax", "name": "ok"}, COMBINED, "") == []
    assert validate({"port": "http"}, COMBINED, "") == []


def test_root_metadata_may_only_restrict_names() -> None:
    allowed = {
        "type": "object",
        "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    assert structural_problems(allowed, "s") == []
    labelled = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
        },
    }
    assert [c.field for c in structural_problems(labelled, "s")] == ["s.properties[metadata]"]


def test_definition_level_rules() -> None:
    crd = _crd(preserveUnknownFields=True)
    crd["spec"]["versions"][0]["selectableFields"] = [
        {"jsonPath": ".spec.image"},
        {"jsonPath": ".spec.tags"},
        {"jsonPath": ".metadata.name"},
    ]
    assert {c.field for c in validate_crd(crd)} == {
        "spec.preserveUnknownFields",
        "spec.versions[0].selectableFields[1].jsonPath",
        "spec.versions[0].selectableFields[2].jsonPath",
    }
