"""JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.patch import PatchError, apply_json_patch

# RFC 6902, Appendix A: (document, operations, result) for the successful examples.
RFC6902_SUCCESS: list[tuple[str, Any, list[dict[str, Any]], Any]] = [
    (
        "A.1 adding an object member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2 adding an array element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    (
        "A.3 removing an object member",
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    (
        "A.4 removing an array element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5 replacing a value",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6 moving a value",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7 moving an array element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8 testing a value: success",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10 adding a nested member object",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11 ignoring unrecognized elements",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "A.14 ~ escape ordering",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (
        "A.16 adding an array value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
]


@pytest.mark.parametrize(
    ("doc", "operations", "expected"),
    [case[1:] for case in RFC6902_SUCCESS],
    ids=[case[0] for case in RFC6902_SUCCESS],
)
def test_rfc6902_appendix_a(doc: Any, operations: list[dict[str, Any]], expected: Any) -> None:
    assert apply_json_patch(doc, operations) == expected


RFC6902_ERRORS: list[tuple[str, Any, list[dict[str, Any]], str]] = [
    (
        "A.9 testing a value: error",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        "/baz",
    ),
    (
        "A.12 adding to a nonexistent target",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        "/baz/bat",
    ),
    (
        "A.15 comparing strings and numbers",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        "/~01",
    ),
]


@pytest.mark.parametrize(
    ("doc", "operations", "field"),
    [case[1:] for case in RFC6902_ERRORS],
    ids=[case[0] for case in RFC6902_ERRORS],
)
def test_rfc6902_appendix_a_errors(doc: Any, operations: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch(doc, operations)
    assert caught.value.field == field


def test_failed_patch_leaves_input_untouched() -> None:
    doc = {"spec": {"replicas": 1, "items": [1, 2]}}
    before = copy.deepcopy(doc)
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "remove", "path": "/spec/items/0"},
        {"op": "remove", "path": "/spec/missing"},
    ]
    with pytest.raises(PatchError):
        apply_json_patch(doc, ops)
    assert doc == before


def test_success_does_not_modify_input_or_alias_values() -> None:
    doc = {"a": {"b": 1}}
    value = {"deep": [1]}
    result = apply_json_patch(doc, [{"op": "add", "path": "/c", "value": value}])
    result["c"]["deep"].append(2)
    result["a"]["b"] = 5
    assert value == {"deep": [1]}
    assert doc == {"a": {"b": 1}}


def test_kubernetes_style_operations() -> None:
    pod = {
        "metadata": {"labels": {"app": "web"}, "finalizers": ["a", "b"], "resourceVersion": "7"},
        "spec": {"replicas": 1},
    }
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    assert apply_json_patch(pod, ops) == {
        "metadata": {
            "labels": {"app": "web", "app.kubernetes.io/name": "web"},
            "finalizers": ["b"],
            "resourceVersion": "7",
        },
        "spec": {"replicas": 3},
    }


def test_whole_document_add_and_replace() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    assert apply_json_patch({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}]) == {"b": 2}


def test_removing_the_whole_document_is_an_error() -> None:
    with pytest.raises(PatchError):
        apply_json_patch({"a": 1}, [{"op": "remove", "path": ""}])


def test_add_appends_with_dash_and_at_length() -> None:
    ops = [{"op": "add", "path": "/l/-", "value": 3}, {"op": "add", "path": "/l/3", "value": 4}]
    assert apply_json_patch({"l": [1, 2]}, ops) == {"l": [1, 2, 3, 4]}


def test_add_replaces_existing_member() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "add", "path": "/a", "value": 2}]) == {"a": 2}


@pytest.mark.parametrize(
    ("op", "path"),
    [
        ("add", "/l/3"),
        ("replace", "/l/2"),
        ("remove", "/l/2"),
        ("remove", "/l/-"),
        ("replace", "/l/01"),
        ("add", "/l/x"),
        ("replace", "/l/-1"),
    ],
)
def test_bad_array_indices(op: str, path: str) -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch({"l": [1, 2]}, [{"op": op, "path": path, "value": 0}])
    assert caught.value.field == path


def test_replace_missing_member_is_an_error() -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch({"a": 1}, [{"op": "replace", "path": "/b", "value": 2}])
    assert caught.value.field == "/b"


def test_descending_into_a_scalar_is_an_error() -> None:
    with pytest.raises(PatchError):
        apply_json_patch({"a": 1}, [{"op": "add", "path": "/a/b", "value": 2}])


def test_move_into_own_child_is_an_error() -> None:
    with pytest.raises(PatchError):
        apply_json_patch({"a": {"b": {}}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}])


def test_move_to_same_place_is_a_no_op() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}]) == {"a": 1}


def test_move_from_missing_location_is_an_error() -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch({"a": 1}, [{"op": "move", "from": "/x", "path": "/y"}])
    assert caught.value.field == "/x"


def test_copy_is_deep() -> None:
    result = apply_json_patch({"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}])
    result["c"]["b"].append(2)
    assert result["a"] == {"b": [1]}


def test_test_operation_uses_json_equality() -> None:
    doc = {"n": 1, "t": True, "o": {"x": [1, {"y": None}]}}
    ok = [
        {"op": "test", "path": "/n", "value": 1.0},
        {"op": "test", "path": "/o", "value": {"x": [1, {"y": None}]}},
    ]
    assert apply_json_patch(doc, ok) == doc
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "test", "path": "/t", "value": 1}])
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "test", "path": "/n", "value": True}])


@pytest.mark.parametrize(
    ("operations", "field"),
    [
        ({"op": "add", "path": "/a", "value": 1}, None),
        (["add"], "/0"),
        ([{"path": "/a"}], "/0/op"),
        ([{"op": "frobnicate", "path": "/a"}], "/0/op"),
        ([{"op": "add", "value": 1}], "/0/path"),
        ([{"op": "add", "path": 5, "value": 1}], "/0/path"),
        ([{"op": "test", "path": "/a", "value": 1}, {"op": "add", "path": "/b"}], "/1/value"),
        ([{"op": "move", "path": "/b"}], "/0/from"),
        ([{"op": "copy", "from": 1, "path": "/b"}], "/0/from"),
    ],
)
def test_malformed_operation_lists(operations: Any, field: str | None) -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch({"a": 1}, operations)
    assert caught.value.field == field


@pytest.mark.parametrize("pointer", ["a", "/a~2", "/~"])
def test_malformed_pointers(pointer: str) -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch({"a": 1}, [{"op": "add", "path": pointer, "value": 1}])
    assert caught.value.field == pointer


def test_empty_operation_list_returns_equal_copy() -> None:
    doc = {"a": [1]}
    result = apply_json_patch(doc, [])
    assert result == doc
    assert result is not doc
