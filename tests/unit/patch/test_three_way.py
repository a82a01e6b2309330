"""Building the patches kubectl sends (client-side apply and edit)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from corral.patch import (
    PatchError,
    PatchSchema,
    apply_strategic_merge_patch,
    create_three_way_merge_patch,
    create_two_way_merge_patch,
)

from .pod_schema import POD, pod


def three_way(
    original: dict[str, Any] | None, modified: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    return create_three_way_merge_patch(original, modified, current, POD)


def apply(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return apply_strategic_merge_patch(obj, patch, POD)


def live(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the server would hold it: defaults and server-set fields added."""
    result = copy.deepcopy(obj)
    result["metadata"]["uid"] = "1234"
    result["metadata"]["resourceVersion"] = "42"
    for container in result["spec"].get("containers", []):
        container.setdefault("imagePullPolicy", "IfNotPresent")
    result["status"] = {"phase": "Running"}
    return result


# -- patch shape --------------------------------------------------------------


def test_no_change_is_an_empty_patch() -> None:
    config = pod()
    assert three_way(config, copy.deepcopy(config), live(config)) == {}


def test_server_fields_are_never_touched() -> None:
    config = pod()
    patch = three_way(config, copy.deepcopy(config), live(config))
    assert "status" not in patch
    assert "uid" not in patch.get("metadata", {})


def test_without_last_applied_only_additions_are_sent() -> None:
    config = pod()
    config["metadata"]["labels"]["tier"] = "front"
    current = live(pod())
    current["metadata"]["labels"]["owner"] = "someone"
    assert three_way(None, config, current) == {"metadata": {"labels": {"tier": "front"}}}


def test_label_removed_from_config_is_deleted_but_foreign_labels_stay() -> None:
    original = pod()
    original["metadata"]["labels"]["tier"] = "front"
    modified = pod()
    current = live(original)
    current["metadata"]["labels"]["injected"] = "yes"
    patch = three_way(original, modified, current)
    assert patch == {"metadata": {"labels": {"tier": None}}}
    assert apply(current, patch)["metadata"]["labels"] == {"app": "web", "injected": "yes"}


def test_changed_image_sends_container_with_merge_key_and_order() -> None:
    original = pod()
    modified = pod(containers=[{"name": "web", "image": "nginx:1.27"}])
    patch = three_way(original, modified, live(original))
    assert patch == {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"name": "web", "image": "nginx:1.27"}],
        }
    }


def test_removed_container_is_sent_as_delete_directive() -> None:
    original = pod(containers=[{"name": "web", "image": "a"}, {"name": "log", "image": "b"}])
    modified = pod(containers=[{"name": "web", "image": "a"}])
    patch = three_way(original, modified, live(original))
    assert patch == {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"name": "log", "$patch": "delete"}],
        }
    }


def test_removed_env_var_inside_a_container() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    original = pod(containers=[{"name": "web", "image": "a", "env": env}])
    modified = pod(containers=[{"name": "web", "image": "a", "env": env[:1]}])
    patch = three_way(original, modified, live(original))
    assert patch == {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [
                {
                    "name": "web",
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"name": "B", "$patch": "delete"}],
                }
            ],
        }
    }


def test_finalizers_use_delete_from_primitive_list() -> None:
    original = pod()
    original["metadata"]["finalizers"] = ["a", "b"]
    modified = pod()
    modified["metadata"]["finalizers"] = ["a", "c"]
    current = live(original)
    current["metadata"]["finalizers"] = ["a", "b", "server"]
    patch = three_way(original, modified, current)
    assert patch == {
        "metadata": {
            "finalizers": ["c"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "$setElementOrder/finalizers": ["a", "c"],
        }
    }
    assert apply(current, patch)["metadata"]["finalizers"] == ["a", "c", "server"]


def test_volume_source_switch_sends_retain_keys() -> None:
    original = pod(volumes=[{"name": "v", "configMap": {"name": "c"}}])
    modified = pod(volumes=[{"name": "v", "secret": {"secretName": "s"}}])
    current = live(original)
    current["spec"]["volumes"][0]["configMap"]["defaultMode"] = 420
    patch = three_way(original, modified, current)
    assert patch["spec"]["volumes"] == [
        {
            "name": "v",
            "configMap": None,
            "secret": {"secretName": "s"},
            "$retainKeys": ["name", "secret"],
        }
    ]
    assert apply(current, patch)["spec"]["volumes"] == [
        {"name": "v", "secret": {"secretName": "s"}}
    ]


def test_retain_keys_flag_on_the_list_node_works_too() -> None:
    schema = PatchSchema(
        fields={
            "volumes": PatchSchema(list_strategy="merge", merge_key="name", retain_keys=True),
        }
    )
    original = {"volumes": [{"name": "v", "emptyDir": {}}]}
    modified = {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}
    patch = create_three_way_merge_patch(original, modified, original, schema)
    assert patch["volumes"][0]["$retainKeys"] == ["hostPath", "name"]


def test_retain_keys_clears_server_defaulted_union_member() -> None:
    schema = PatchSchema(fields={"strategy": PatchSchema(retain_keys=True)})
    current = {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}
    modified = {"strategy": {"type": "Recreate"}}
    patch = create_three_way_merge_patch({}, modified, current, schema)
    assert patch == {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}
    assert apply_strategic_merge_patch(current, patch, schema) == modified


def test_retain_keys_alone_clears_a_server_set_member() -> None:
    # Nothing in the config changed, but the live struct holds a member the
    # config does not list: kubectl still sends $retainKeys to clear it.
    schema = PatchSchema(fields={"strategy": PatchSchema(retain_keys=True)})
    config = {"strategy": {"type": "RollingUpdate"}}
    current = {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}
    patch = create_three_way_merge_patch(config, config, current, schema)
    assert patch == {"strategy": {"$retainKeys": ["type"]}}
    assert apply_strategic_merge_patch(current, patch, schema) == config


def test_live_only_list_items_make_kubectl_resend_the_order() -> None:
    # With an item only the server knows, the live order never equals the
    # configured one, so kubectl keeps sending $setElementOrder (a no-op).
    config = pod(containers=[{"name": "web", "image": "a"}])
    current = live(config)
    current["spec"]["containers"].append({"name": "proxy", "image": "p"})
    patch = three_way(config, config, current)
    assert patch == {"spec": {"$setElementOrder/containers": [{"name": "web"}]}}
    assert apply(current, patch) == current


def test_replace_list_is_sent_whole() -> None:
    original = pod(tolerations=[{"key": "a"}])
    modified = pod(tolerations=[{"key": "a"}, {"key": "b"}])
    patch = three_way(original, modified, live(original))
    assert patch == {"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}


def test_config_wins_over_a_conflicting_live_change() -> None:
    original = pod()
    modified = pod()
    current = live(original)
    current["spec"]["containers"][0]["image"] = "changed-by-someone"
    patch = three_way(original, modified, current)
    assert apply(current, patch)["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_new_list_is_sent_whole_without_order() -> None:
    original = pod()
    modified = pod()
    modified["metadata"]["finalizers"] = ["x", "y"]
    assert three_way(original, modified, live(original)) == {"metadata": {"finalizers": ["x", "y"]}}


def test_reorder_only_sends_set_element_order() -> None:
    two = [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]
    original = pod(containers=two)
    modified = pod(containers=two[::-1])
    patch = three_way(original, modified, live(original))
    assert patch == {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}


def test_inputs_are_not_modified() -> None:
    original = pod(containers=[{"name": "web", "env": [{"name": "A", "value": "1"}]}])
    modified = pod(containers=[{"name": "web", "env": [{"name": "B", "value": "2"}]}])
    current = live(original)
    snapshot = copy.deepcopy((original, modified, current))
    patch = three_way(original, modified, current)
    patch["spec"]["containers"][0]["env"][0]["value"] = "mutated"
    assert (original, modified, current) == snapshot


def test_non_object_inputs_are_rejected() -> None:
    with pytest.raises(PatchError):
        three_way({}, [], {})  # type: ignore[arg-type]
    with pytest.raises(PatchError):
        three_way({}, {}, None)  # type: ignore[arg-type]


def test_keyed_item_without_merge_key_is_an_error() -> None:
    original = pod()
    modified = pod(containers=[{"image": "x"}])
    with pytest.raises(PatchError) as caught:
        three_way(original, modified, live(original))
    assert caught.value.field == "spec.containers[0]"


# -- round trips --------------------------------------------------------------

# (original, modified, current, expected result of applying the patch to current)
TRIPLES: list[tuple[str, Any, Any, Any, Any]] = [
    (
        "first apply onto a live object",
        None,
        {"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 2}},
        {"metadata": {"uid": "u"}, "spec": {"replicas": 1}},
        {"metadata": {"uid": "u", "labels": {"a": "1"}}, "spec": {"replicas": 2}},
    ),
    (
        "field dropped from config is deleted, server field kept",
        {"spec": {"replicas": 2, "paused": True}},
        {"spec": {"replicas": 2}},
        {"spec": {"replicas": 2, "paused": True, "progressDeadlineSeconds": 600}},
        {"spec": {"replicas": 2, "progressDeadlineSeconds": 600}},
    ),
    (
        "field already deleted on the server",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1"}}},
    ),
    (
        "field deleted on the server but still configured comes back",
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {}},
        {"metadata": {"labels": {"a": "1"}}},
    ),
    (
        "injected sidecar survives a container change",
        {"spec": {"containers": [{"name": "web", "image": "1"}]}},
        {"spec": {"containers": [{"name": "web", "image": "2"}]}},
        {"spec": {"containers": [{"name": "web", "image": "1"}, {"name": "proxy", "image": "p"}]}},
        {"spec": {"containers": [{"name": "web", "image": "2"}, {"name": "proxy", "image": "p"}]}},
    ),
    (
        "container added and removed next to a sidecar",
        {"spec": {"containers": [{"name": "a"}, {"name": "x"}]}},
        {"spec": {"containers": [{"name": "a"}, {"name": "y"}]}},
        {"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "proxy"}]}},
        {"spec": {"containers": [{"name": "a"}, {"name": "proxy"}, {"name": "y"}]}},
    ),
    (
        "ports merged by containerPort with a server default",
        {"spec": {"containers": [{"name": "w", "ports": [{"containerPort": 80}]}]}},
        {
            "spec": {
                "containers": [
                    {"name": "w", "ports": [{"containerPort": 80}, {"containerPort": 9}]}
                ]
            }
        },
        {
            "spec": {
                "containers": [{"name": "w", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]
            }
        },
        {
            "spec": {
                "containers": [
                    {
                        "name": "w",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 9}],
                    }
                ]
            }
        },
    ),
    (
        "finalizer added by a controller stays",
        {"metadata": {"finalizers": ["a"]}},
        {"metadata": {"finalizers": ["b"]}},
        {"metadata": {"finalizers": ["a", "ctrl"]}},
        {"metadata": {"finalizers": ["b", "ctrl"]}},
    ),
    (
        "whole list removed from config",
        {"metadata": {"finalizers": ["a"]}, "spec": {"tolerations": [{"key": "k"}]}},
        {"metadata": {}, "spec": {}},
        {"metadata": {"finalizers": ["a", "ctrl"]}, "spec": {"tolerations": [{"key": "k"}]}},
        {"metadata": {}, "spec": {}},
    ),
    (
        "volume switched from configMap to emptyDir",
        {"spec": {"volumes": [{"name": "v", "configMap": {"name": "c"}}]}},
        {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}},
        {"spec": {"volumes": [{"name": "v", "configMap": {"name": "c", "defaultMode": 420}}]}},
        {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}},
    ),
    (
        "list that was empty gets items",
        {"spec": {"containers": []}},
        {"spec": {"containers": [{"name": "a"}]}},
        {"spec": {"containers": [{"name": "other"}]}},
        {"spec": {"containers": [{"name": "a"}, {"name": "other"}]}},
    ),
    (
        "scalar turned into a map",
        {"spec": {"x": "text"}},
        {"spec": {"x": {"a": 1}}},
        {"spec": {"x": "text", "y": 1}},
        {"spec": {"x": {"a": 1}, "y": 1}},
    ),
]


@pytest.mark.parametrize(
    ("original", "modified", "current", "expected"),
    [case[1:] for case in TRIPLES],
    ids=[case[0] for case in TRIPLES],
)
def test_round_trip_triples(original: Any, modified: Any, current: Any, expected: Any) -> None:
    patch = create_three_way_merge_patch(original, modified, current, POD)
    assert apply_strategic_merge_patch(current, patch, POD) == expected


def _random_pod(rng: random.Random) -> dict[str, Any]:
    """A random pod-like object without nulls or duplicate merge keys."""
    metadata: dict[str, Any] = {"name": "p"}
    if rng.random() < 0.8:
        keys = rng.sample(["app", "tier", "team", "env"], rng.randrange(4))
        metadata["labels"] = {key: rng.choice(["a", "b"]) for key in keys}
    if rng.random() < 0.6:
        metadata["finalizers"] = rng.sample(["f1", "f2", "f3", "f4"], rng.randrange(4))
    spec: dict[str, Any] = {}
    if rng.random() < 0.9:
        spec["containers"] = [
            _random_container(rng, name)
            for name in rng.sample(["web", "log", "init", "proxy"], rng.randrange(4))
        ]
    if rng.random() < 0.5:
        spec["volumes"] = [
            {"name": name, **rng.choice(_VOLUME_SOURCES)}
            for name in rng.sample(["data", "cfg", "tmp"], rng.randrange(3))
        ]
    if rng.random() < 0.4:
        spec["tolerations"] = [{"key": rng.choice("abc")} for _ in range(rng.randrange(3))]
    if rng.random() < 0.5:
        spec["replicas"] = rng.randrange(3)
    if rng.random() < 0.3:
        spec["nodeSelector"] = {"disk": rng.choice(["ssd", "hdd"])}
    return {"metadata": metadata, "spec": spec}


_VOLUME_SOURCES: list[dict[str, Any]] = [
    {"emptyDir": {}},
    {"configMap": {"name": "c"}},
    {"secret": {"secretName": "s"}},
    {"configMap": {"name": "d", "optional": True}},
]


def _random_container(rng: random.Random, name: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": rng.choice(["i:1", "i:2"])}
    if rng.random() < 0.6:
        container["env"] = [
            {"name": env, "value": rng.choice(["0", "1"])}
            for env in rng.sample(["A", "B", "C", "D"], rng.randrange(4))
        ]
    if rng.random() < 0.5:
        container["ports"] = [
            {"containerPort": port} for port in rng.sample([80, 443, 8080], rng.randrange(3))
        ]
    if rng.random() < 0.3:
        container["args"] = rng.sample(["-v", "-q", "--x"], rng.randrange(3))
    return container


def _on_server(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` plus fields and list items only the server and controllers set."""
    result = copy.deepcopy(obj)
    result["metadata"]["uid"] = "u-1"
    result["metadata"].setdefault("labels", {})["controller"] = "x"
    result["metadata"].setdefault("finalizers", []).append("ctrl.io/f")
    for container in result["spec"].get("containers", []):
        container["terminationMessagePath"] = "/dev/termination-log"
    result["spec"]["nodeName"] = "node-1"
    result["status"] = {"phase": "Running"}
    return result


def _expected(original: dict[str, Any], modified: dict[str, Any]) -> dict[str, Any]:
    """What applying ``modified`` over ``_on_server(original)`` must give."""
    result = copy.deepcopy(modified)
    metadata, spec = result["metadata"], result["spec"]
    metadata["uid"] = "u-1"
    # A server-only entry survives unless the config dropped the whole field.
    if "labels" in metadata:
        metadata["labels"]["controller"] = "x"
    elif "labels" not in original["metadata"]:
        metadata["labels"] = {"controller": "x"}
    if "finalizers" in metadata:
        metadata["finalizers"].append("ctrl.io/f")
    elif "finalizers" not in original["metadata"]:
        metadata["finalizers"] = ["ctrl.io/f"]
    known = {c["name"] for c in original["spec"].get("containers", [])}
    for container in spec.get("containers", []):
        if container["name"] in known:
            container["terminationMessagePath"] = "/dev/termination-log"
    spec["nodeName"] = "node-1"
    result["status"] = {"phase": "Running"}
    return result


def test_round_trip_property_without_drift() -> None:
    rng = random.Random(20240601)
    for _ in range(400):
        original, modified = _random_pod(rng), _random_pod(rng)
        patch = create_three_way_merge_patch(original, modified, original, POD)
        assert apply_strategic_merge_patch(original, patch, POD) == modified, (
            original,
            modified,
            patch,
        )


def test_round_trip_property_with_server_side_changes() -> None:
    rng = random.Random(132)
    for _ in range(400):
        original, modified = _random_pod(rng), _random_pod(rng)
        current = _on_server(original)
        patch = create_three_way_merge_patch(original, modified, current, POD)
        assert apply_strategic_merge_patch(current, patch, POD) == _expected(original, modified), (
            original,
            modified,
            patch,
        )


def test_applying_the_same_config_again_changes_nothing() -> None:
    rng = random.Random(99)
    for _ in range(200):
        config = _random_pod(rng)
        live_object = _on_server(_random_pod(rng))
        first = create_three_way_merge_patch(None, config, live_object, POD)
        settled = apply_strategic_merge_patch(live_object, first, POD)
        again = create_three_way_merge_patch(config, config, settled, POD)
        assert apply_strategic_merge_patch(settled, again, POD) == settled, (config, again)


def test_two_way_round_trip_property() -> None:
    rng = random.Random(2)
    for _ in range(400):
        original, modified = _random_pod(rng), _random_pod(rng)
        patch = create_two_way_merge_patch(original, modified, POD)
        assert apply_strategic_merge_patch(original, patch, POD) == modified, (
            original,
            modified,
            patch,
        )


def test_two_way_patch_of_identical_objects_is_empty() -> None:
    rng = random.Random(3)
    for _ in range(100):
        obj = _random_pod(rng)
        assert create_two_way_merge_patch(obj, copy.deepcopy(obj), POD) == {}
