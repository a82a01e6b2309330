"""Applying strategic merge patches, as kubectl and client-go send them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.patch import EMPTY, PatchError, PatchSchema, apply_strategic_merge_patch

from .pod_schema import POD, pod


def apply(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return apply_strategic_merge_patch(original, patch, POD)


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["containers"]
    return result


def directive_keys(value: Any) -> list[str]:
    """Every key starting with '$' anywhere in ``value``."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key.startswith("$"):
                found.append(key)
            found.extend(directive_keys(child))
    elif isinstance(value, list):
        for child in value:
            found.extend(directive_keys(child))
    return found


def two_containers() -> dict[str, Any]:
    return pod(
        containers=[
            {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
            {"name": "log", "image": "fluentbit:2", "imagePullPolicy": "Always"},
        ]
    )


# -- lists merged by key ----------------------------------------------------


def test_containers_merge_by_name() -> None:
    result = apply(two_containers(), {"spec": {"containers": [{"name": "log", "image": "fb:3"}]}})
    assert containers(result) == [
        {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
        {"name": "log", "image": "fb:3", "imagePullPolicy": "Always"},
    ]


def test_new_container_is_added_before_unlisted_ones() -> None:
    # Kubernetes puts items the patch adds ahead of live items the patch does
    # not mention (kubectl sends $setElementOrder when order matters).
    result = apply(two_containers(), {"spec": {"containers": [{"name": "new", "image": "x"}]}})
    assert [c["name"] for c in containers(result)] == ["new", "web", "log"]
    assert containers(result)[0] == {"name": "new", "image": "x"}


def test_patch_order_interleaves_with_live_order() -> None:
    original = pod(containers=[{"name": "a"}, {"name": "b", "v": 1}, {"name": "c"}])
    patch = {"spec": {"containers": [{"name": "c", "v": 3}, {"name": "a", "v": 0}]}}
    assert [c["name"] for c in containers(apply(original, patch))] == ["b", "c", "a"]


def test_ports_merge_by_container_port() -> None:
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
                }
            ]
        }
    }
    result = apply(two_containers(), patch)
    assert containers(result)[0]["ports"] == [
        {"containerPort": 80, "name": "http"},
        {"containerPort": 443},
    ]


def test_env_merges_by_name() -> None:
    original = pod(
        containers=[
            {
                "name": "web",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            }
        ]
    )
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                }
            ]
        }
    }
    assert containers(apply(original, patch))[0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]


def test_env_value_from_replaces_value_with_null() -> None:
    original = pod(containers=[{"name": "web", "env": [{"name": "A", "value": "1"}]}])
    value_from = {"secretKeyRef": {"name": "s", "key": "k"}}
    patch = {
        "spec": {
            "containers": [
                {"name": "web", "env": [{"name": "A", "value": None, "valueFrom": value_from}]}
            ]
        }
    }
    env = containers(apply(original, patch))[0]["env"]
    assert env == [{"name": "A", "valueFrom": value_from}]


def test_volumes_merge_by_name() -> None:
    original = pod(volumes=[{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {}}])
    patch = {"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "app"}}]}}
    assert apply(original, patch)["spec"]["volumes"] == [
        {"name": "data", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "app"}},
    ]


def test_patch_delete_directive_removes_container() -> None:
    patch = {"spec": {"containers": [{"name": "web", "$patch": "delete"}]}}
    result = apply(two_containers(), patch)
    assert [c["name"] for c in containers(result)] == ["log"]
    assert directive_keys(result) == []


def test_patch_delete_removes_every_duplicate() -> None:
    original = pod(containers=[{"name": "a"}, {"name": "a", "x": 1}, {"name": "b"}])
    result = apply(original, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})
    assert containers(result) == [{"name": "b"}]


def test_patch_delete_of_missing_item_is_harmless() -> None:
    patch = {"spec": {"containers": [{"name": "nope", "$patch": "delete"}]}}
    assert apply(two_containers(), patch) == two_containers()


def test_patch_delete_needs_the_merge_key() -> None:
    with pytest.raises(PatchError) as caught:
        apply(two_containers(), {"spec": {"containers": [{"$patch": "delete"}]}})
    assert caught.value.field == "spec.containers[0]"


def test_patch_replace_element_replaces_the_whole_list() -> None:
    patch = {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "i"}]}}
    result = apply(two_containers(), patch)
    assert containers(result) == [{"name": "only", "image": "i"}]
    assert directive_keys(result) == []


def test_patch_merge_element_is_an_ordinary_element() -> None:
    patch = {"spec": {"containers": [{"name": "web", "image": "i", "$patch": "merge"}]}}
    result = apply(two_containers(), patch)
    assert containers(result)[0]["image"] == "i"
    assert containers(result)[0]["ports"] == [{"containerPort": 80}]
    assert directive_keys(result) == []


def test_empty_patch_list_leaves_merged_list_alone() -> None:
    # Kubernetes needs '$patch: replace' or null to clear a merged list.
    assert apply(two_containers(), {"spec": {"containers": []}}) == two_containers()


def test_missing_merge_key_is_an_error_with_a_field_path() -> None:
    original = pod(containers=[{"name": "web", "env": [{"name": "A", "value": "1"}]}])
    patch = {"spec": {"containers": [{"name": "web", "env": [{"name": "A"}, {"value": "x"}]}]}}
    with pytest.raises(PatchError) as caught:
        apply(original, patch)
    assert caught.value.field == "spec.containers[0].env[1]"
    assert "name" in caught.value.message


def test_non_object_in_keyed_list_is_an_error() -> None:
    with pytest.raises(PatchError) as caught:
        apply(two_containers(), {"spec": {"containers": ["web"]}})
    assert caught.value.field == "spec.containers[0]"


def test_unknown_directive_is_an_error() -> None:
    with pytest.raises(PatchError) as caught:
        apply(two_containers(), {"spec": {"containers": [{"name": "web", "$patch": "nuke"}]}})
    assert caught.value.field is not None
    assert caught.value.field.startswith("spec.containers[0]")
    with pytest.raises(PatchError):
        apply(two_containers(), {"spec": {"$patch": "nuke"}})


def test_error_paths_bracket_map_keys() -> None:
    patch = {"metadata": {"annotations": {"example.com/cfg": {"$patch": "nuke"}}}}
    with pytest.raises(PatchError) as caught:
        apply(pod(), patch)
    assert caught.value.field == "metadata.annotations[example.com/cfg].$patch"


# -- maps ---------------------------------------------------------------------


def test_labels_set_to_null_are_removed() -> None:
    original = pod()
    original["metadata"]["labels"] = {"app": "web", "tier": "front"}
    result = apply(original, {"metadata": {"labels": {"tier": None, "new": "x"}}})
    assert result["metadata"]["labels"] == {"app": "web", "new": "x"}


def test_null_for_missing_key_is_ignored() -> None:
    result = apply(pod(), {"metadata": {"annotations": {"gone": None}}, "spec": {"nope": None}})
    assert "gone" not in result["metadata"].get("annotations", {})
    assert "nope" not in result["spec"]


def test_patch_replace_on_a_map() -> None:
    original = pod()
    original["metadata"]["labels"] = {"a": "1", "b": "2"}
    result = apply(original, {"metadata": {"labels": {"$patch": "replace", "c": "3"}}})
    assert result["metadata"]["labels"] == {"c": "3"}


def test_patch_delete_on_a_map_leaves_it_empty() -> None:
    result = apply(pod(), {"metadata": {"labels": {"$patch": "delete"}}})
    assert result["metadata"]["labels"] == {}


def test_patch_merge_on_a_map_is_a_plain_merge() -> None:
    result = apply(pod(), {"metadata": {"labels": {"$patch": "merge", "b": "2"}}})
    assert result["metadata"]["labels"] == {"app": "web", "b": "2"}


def test_unknown_fields_recurse_as_maps_with_atomic_lists() -> None:
    original = {"spec": {"custom": {"keep": 1, "list": [{"name": "a", "v": 1}]}}}
    patch = {"spec": {"custom": {"add": 2, "list": [{"name": "a", "v": 2}]}}}
    assert apply_strategic_merge_patch(original, patch, EMPTY) == {
        "spec": {"custom": {"keep": 1, "add": 2, "list": [{"name": "a", "v": 2}]}}
    }


def test_tolerations_are_replaced_whole() -> None:
    original = pod(tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b"}])
    patch = {"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}
    assert apply(original, patch)["spec"]["tolerations"] == [{"key": "c", "operator": "Exists"}]


def test_type_change_replaces_value() -> None:
    result = apply({"spec": {"x": "text", "y": {"a": 1}}}, {"spec": {"x": {"a": 1}, "y": [1]}})
    assert result == {"spec": {"x": {"a": 1}, "y": [1]}}


def test_new_values_lose_nulls_and_directives() -> None:
    patch = {
        "spec": {
            "newMap": {"a": None, "b": {"c": None, "d": 1}},
            "newList": [{"inner": {"k": "v", "gone": None}}, None],
            "containers": [{"name": "side", "env": [{"name": "X", "value": None}]}],
        }
    }
    result = apply(pod(), patch)
    assert result["spec"]["newMap"] == {"b": {"d": 1}}
    assert result["spec"]["newList"] == [{"inner": {"k": "v"}}, None]
    added = [c for c in containers(result) if c["name"] == "side"]
    assert added == [{"name": "side", "env": [{"name": "X"}]}]


def test_whole_object_directives() -> None:
    original = pod()
    assert apply(original, {"$patch": "delete"}) == {}
    assert apply(original, {"$patch": "replace", "kind": "Pod"}) == {"kind": "Pod"}


# -- primitive lists merged as sets -------------------------------------------


def finalized(*names: str) -> dict[str, Any]:
    obj = pod()
    obj["metadata"]["finalizers"] = list(names)
    return obj


def test_finalizers_merge_as_a_set_keeping_order() -> None:
    result = apply(finalized("a", "b"), {"metadata": {"finalizers": ["b", "c"]}})
    assert result["metadata"]["finalizers"] == ["a", "b", "c"]


def test_finalizers_patch_order_wins_for_listed_items() -> None:
    result = apply(finalized("a", "b", "c"), {"metadata": {"finalizers": ["c", "a"]}})
    assert result["metadata"]["finalizers"] == ["b", "c", "a"]


def test_delete_from_primitive_list() -> None:
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}}
    result = apply(finalized("a", "b", "c"), patch)
    assert result["metadata"]["finalizers"] == ["a", "c"]
    assert directive_keys(result) == []


def test_delete_from_missing_primitive_list_does_not_create_it() -> None:
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    assert "finalizers" not in apply(pod(), patch)["metadata"]


def test_delete_from_primitive_list_wins_over_addition() -> None:
    patch = {"metadata": {"finalizers": ["x"], "$deleteFromPrimitiveList/finalizers": ["x", "a"]}}
    assert apply(finalized("a", "b"), patch)["metadata"]["finalizers"] == ["b"]


def test_delete_from_primitive_list_must_be_a_list() -> None:
    with pytest.raises(PatchError) as caught:
        apply(finalized("a"), {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}})
    assert caught.value.field == "metadata[$deleteFromPrimitiveList/finalizers]"


def test_malformed_parallel_list_key() -> None:
    with pytest.raises(PatchError):
        apply(finalized("a"), {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}})
    with pytest.raises(PatchError):
        apply(finalized("a"), {"metadata": {"$setElementOrder/": ["a"]}})


def test_replace_marker_in_a_primitive_list() -> None:
    patch = {"metadata": {"finalizers": [{"$patch": "replace"}, "x"]}}
    assert apply(finalized("a", "b"), patch)["metadata"]["finalizers"] == ["x"]


def test_objects_cannot_merge_into_a_primitive_list() -> None:
    with pytest.raises(PatchError):
        apply(finalized("a"), {"metadata": {"finalizers": [{"name": "a"}]}})


# -- $setElementOrder ---------------------------------------------------------


def test_set_element_order_reorders_containers() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "log"}, {"name": "web"}],
            "containers": [{"name": "web", "image": "nginx:2"}],
        }
    }
    result = apply(two_containers(), patch)
    assert [c["name"] for c in containers(result)] == ["log", "web"]
    assert containers(result)[1]["image"] == "nginx:2"
    assert directive_keys(result) == []


def test_set_element_order_keeps_server_only_items_in_place() -> None:
    # An injected sidecar the client never saw stays where the server put it.
    original = pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "sidecar"}, {"name": "c"}])
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}]}}
    assert [c["name"] for c in containers(apply(original, patch))] == [
        "b",
        "a",
        "sidecar",
        "c",
    ]


def test_set_element_order_places_new_items() -> None:
    original = pod(containers=[{"name": "1", "other": "a"}, {"name": "2", "value": "2"}])
    patch = {
        "spec": {
            "$setElementOrder/containers": [
                {"name": "4"},
                {"name": "1"},
                {"name": "2"},
                {"name": "3"},
            ],
            "containers": [{"name": "4", "value": "4"}, {"name": "3", "value": "3"}],
        }
    }
    assert [c["name"] for c in containers(apply(original, patch))] == ["4", "1", "2", "3"]


def test_set_element_order_with_deletion_and_addition_matches_kubernetes() -> None:
    # Kubernetes yields 2, 4, 3 here (not 2, 3, 4): the added item takes the
    # slot the deleted one freed when positions are compared.
    original = pod(containers=[{"name": "1"}, {"name": "2", "o": "b"}, {"name": "4", "o": "c"}])
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
            "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}],
        }
    }
    assert [c["name"] for c in containers(apply(original, patch))] == ["2", "4", "3"]


def test_set_element_order_for_primitives() -> None:
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["c", "a", "d"],
            "finalizers": ["d"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
        }
    }
    result = apply(finalized("a", "b", "c"), patch)
    assert result["metadata"]["finalizers"] == ["c", "a", "d"]


def test_set_element_order_must_match_patch_order() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [{"name": "log", "image": "x"}, {"name": "web", "image": "y"}],
        }
    }
    with pytest.raises(PatchError) as caught:
        apply(two_containers(), patch)
    assert caught.value.field == "spec[$setElementOrder/containers]"


def test_set_element_order_entries_need_merge_key() -> None:
    with pytest.raises(PatchError):
        apply(two_containers(), {"spec": {"$setElementOrder/containers": [{"image": "x"}]}})
    with pytest.raises(PatchError):
        apply(two_containers(), {"spec": {"$setElementOrder/containers": "web"}})


def test_set_element_order_with_null_list_deletes_it() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "web"}], "containers": None}}
    assert "containers" not in apply(two_containers(), patch)["spec"]


# -- $retainKeys --------------------------------------------------------------


def test_retain_keys_clears_the_old_volume_source() -> None:
    original = pod(volumes=[{"name": "v", "configMap": {"name": "c", "defaultMode": 420}}])
    patch = {
        "spec": {
            "volumes": [
                {
                    "name": "v",
                    "$retainKeys": ["name", "secret"],
                    "secret": {"secretName": "s"},
                    "configMap": None,
                }
            ]
        }
    }
    result = apply(original, patch)
    assert result["spec"]["volumes"] == [{"name": "v", "secret": {"secretName": "s"}}]
    assert directive_keys(result) == []


def test_retain_keys_clears_unlisted_fields_on_a_struct() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = apply_strategic_merge_patch(original, patch, EMPTY)
    assert result == {"spec": {"strategy": {"type": "Recreate"}}}


def test_retain_keys_must_list_every_field_the_patch_sets() -> None:
    patch = {"spec": {"volumes": [{"name": "v", "$retainKeys": ["name"], "secret": {}}]}}
    with pytest.raises(PatchError) as caught:
        apply(pod(volumes=[{"name": "v", "emptyDir": {}}]), patch)
    assert caught.value.field == "spec.volumes[0].secret"


def test_retain_keys_must_be_a_list() -> None:
    with pytest.raises(PatchError):
        apply(pod(), {"spec": {"$retainKeys": "containers"}})


# -- contract -----------------------------------------------------------------


def test_inputs_are_not_modified_and_result_is_independent() -> None:
    original = two_containers()
    original["metadata"]["finalizers"] = ["a"]
    patch = {
        "metadata": {"finalizers": ["b"], "labels": {"app": None}},
        "spec": {
            "$setElementOrder/containers": [{"name": "log"}, {"name": "web"}],
            "containers": [{"name": "web", "env": [{"name": "A", "value": "1"}]}],
            "newThing": {"deep": [1]},
        },
    }
    original_before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    result = apply(original, patch)
    assert original == original_before
    assert patch == patch_before
    containers(result)[1]["env"].append({"name": "B"})
    result["spec"]["newThing"]["deep"].append(2)
    containers(result)[0]["image"] = "changed"
    assert original == original_before
    assert patch == patch_before


def test_non_object_arguments_are_rejected() -> None:
    with pytest.raises(PatchError):
        apply_strategic_merge_patch([], {}, POD)  # type: ignore[arg-type]
    with pytest.raises(PatchError):
        apply_strategic_merge_patch({}, [{"op": "add"}], POD)  # type: ignore[arg-type]


def test_error_is_a_value_error_with_message_and_field() -> None:
    with pytest.raises(ValueError, match=r"spec\.containers\[0\]") as caught:
        apply(two_containers(), {"spec": {"containers": [{"image": "x"}]}})
    assert isinstance(caught.value, PatchError)
    assert caught.value.field == "spec.containers[0]"
    assert "merge key" in caught.value.message


def test_schema_without_merge_key_for_objects_is_an_error() -> None:
    schema = PatchSchema(fields={"items": PatchSchema(list_strategy="merge")})
    with pytest.raises(PatchError):
        apply_strategic_merge_patch({"items": [{"a": 1}]}, {"items": [{"a": 2}]}, schema)
