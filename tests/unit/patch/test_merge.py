"""JSON merge patch (RFC 7386)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from corral.patch import PatchError, apply_merge_patch, create_merge_patch

# RFC 7386, Appendix A: (original, patch, result).
RFC7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC7386_EXAMPLES)
def test_rfc7386_appendix_a(original: Any, patch: Any, expected: Any) -> None:
    assert apply_merge_patch(original, patch) == expected


def test_apply_does_not_modify_inputs() -> None:
    target = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [80]}}
    patch = {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"ports": [443]}}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    apply_merge_patch(target, patch)
    assert target == target_before
    assert patch == patch_before


def test_result_shares_no_containers_with_inputs() -> None:
    target: dict[str, Any] = {"keep": {"deep": [1, 2]}, "spec": {"x": 1}}
    patch: dict[str, Any] = {"spec": {"list": [{"a": 1}]}}
    result = apply_merge_patch(target, patch)
    result["keep"]["deep"].append(3)
    result["spec"]["list"][0]["a"] = 2
    assert target["keep"]["deep"] == [1, 2]
    assert patch["spec"]["list"][0]["a"] == 1


def test_labels_set_to_null_are_removed() -> None:
    obj = {"metadata": {"name": "p", "labels": {"app": "web", "tier": "front"}}}
    result = apply_merge_patch(obj, {"metadata": {"labels": {"tier": None}}})
    assert result == {"metadata": {"name": "p", "labels": {"app": "web"}}}


def test_null_for_a_missing_key_is_ignored() -> None:
    assert apply_merge_patch({"a": 1}, {"b": None}) == {"a": 1}


def test_lists_are_replaced_not_merged() -> None:
    obj = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    patch = {"spec": {"containers": [{"name": "c"}]}}
    assert apply_merge_patch(obj, patch) == {"spec": {"containers": [{"name": "c"}]}}


def test_nulls_inside_arrays_are_kept() -> None:
    assert apply_merge_patch({}, {"a": [None, {"b": None}]}) == {"a": [None, {"b": None}]}


def test_scale_style_patch() -> None:
    scale = {"spec": {"replicas": 1}, "status": {"replicas": 1}}
    assert apply_merge_patch(scale, {"spec": {"replicas": 5}})["spec"] == {"replicas": 5}


def test_create_simple_change() -> None:
    assert create_merge_patch({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": 3}


def test_create_removal_is_null() -> None:
    assert create_merge_patch({"a": 1, "b": 2}, {"a": 1}) == {"b": None}


def test_create_nested_change_is_minimal() -> None:
    original = {"metadata": {"labels": {"a": "1", "b": "2"}, "name": "x"}}
    modified = {"metadata": {"labels": {"a": "1", "c": "3"}, "name": "x"}}
    assert create_merge_patch(original, modified) == {"metadata": {"labels": {"b": None, "c": "3"}}}


def test_create_replaces_changed_arrays_whole() -> None:
    assert create_merge_patch({"a": [1, 2]}, {"a": [1, 2, 3]}) == {"a": [1, 2, 3]}
    assert create_merge_patch({"a": [1, 2]}, {"a": [1, 2]}) == {}


def test_create_no_change_is_empty() -> None:
    doc = {"a": {"b": [1, {"c": None}]}, "d": True}
    assert create_merge_patch(doc, copy.deepcopy(doc)) == {}


def test_create_keeps_booleans_apart_from_numbers() -> None:
    assert create_merge_patch({"a": 1}, {"a": True}) == {"a": True}
    assert create_merge_patch({"a": [0]}, {"a": [False]}) == {"a": [False]}
    # 1 and 1.0 are the same JSON number.
    assert create_merge_patch({"a": 1}, {"a": 1.0}) == {}


def test_create_handles_nulls_in_original() -> None:
    # A null the original holds must be removed explicitly when it goes away.
    assert create_merge_patch({"a": None, "b": None}, {"b": None}) == {"a": None}
    # A null in modified means the key goes away.
    assert create_merge_patch({"a": 1}, {"a": None}) == {"a": None}
    assert apply_merge_patch({"a": None, "b": None}, {"a": None}) == {"b": None}


def test_create_object_replacing_scalar_drops_nulls() -> None:
    patch = create_merge_patch({"a": "x"}, {"a": {"b": 1, "c": None}})
    assert patch == {"a": {"b": 1}}


def test_create_from_non_object_original() -> None:
    assert create_merge_patch(["x"], {"a": 1}) == {"a": 1}


def test_create_rejects_non_object_modified() -> None:
    with pytest.raises(PatchError) as caught:
        create_merge_patch({"a": 1}, ["a"])
    assert isinstance(caught.value, ValueError)
    assert "array" in caught.value.message


def _random_json(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(8 if depth > 0 else 5)
    if choice == 0:
        return rng.randrange(-3, 4)
    if choice == 1:
        return rng.choice(["a", "b", "", "x/y"])
    if choice == 2:
        return rng.choice([True, False])
    if choice == 3:
        return rng.random()
    if choice == 4:
        return rng.choice([0, 1, 1.0])
    if choice == 5:
        return [_random_json(rng, depth - 1) for _ in range(rng.randrange(3))]
    return _random_object(rng, depth - 1)


def _random_object(rng: random.Random, depth: int) -> dict[str, Any]:
    keys = rng.sample(["a", "b", "c", "d", "e"], rng.randrange(5))
    return {key: _random_json(rng, depth) for key in keys}


def test_round_trip_property() -> None:
    rng = random.Random(7386)
    for _ in range(500):
        a = _random_object(rng, 3)
        b = _random_object(rng, 3)
        patch = create_merge_patch(a, b)
        assert apply_merge_patch(a, patch) == b, (a, b, patch)


def test_round_trip_from_itself_is_empty() -> None:
    rng = random.Random(1)
    for _ in range(100):
        a = _random_object(rng, 3)
        assert create_merge_patch(a, copy.deepcopy(a)) == {}
