"""Server-side apply's merge, prune, conflicts and managedFields (corral.patch.apply)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.api.apps import Deployment
from corral.api.patchmeta import model_schema
from corral.patch import apply as ssa
from corral.patch import fieldpath

SCHEMA = model_schema(Deployment)


def _applier(manager: str, now: str = "2026-12-07T06:00:00Z") -> ssa.Applier:
    return ssa.Applier(manager, "apps/v1", now)


def _deployment(replicas: int = 1, image: str = "nginx:1", **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": image, **extra}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]},
            },
        },
    }


def _with_entries(obj: dict[str, Any], entries: list[ssa.ManagedEntry]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["managedFields"] = ssa.write_entries(entries)
    return out


def test_fields_v1_encoding_matches_kubernetes() -> None:
    fields = fieldpath.field_set(_deployment(), SCHEMA, ssa.SERVER_FIELDS)
    tree = fieldpath.encode(fields)
    containers = tree["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers == {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}
    # A label selector is atomic: owned whole.
    assert tree["f:spec"]["f:selector"] == {}
    assert tree["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert "f:apiVersion" not in tree and "f:name" not in tree["f:metadata"]
    assert fieldpath.decode(tree) == fields


def test_container_ports_are_keyed_by_port_and_defaulted_protocol() -> None:
    obj = _deployment(ports=[{"containerPort": 80}])
    fields = fieldpath.field_set(obj, SCHEMA)
    port = fieldpath.item_element(
        {"containerPort": 80},
        SCHEMA.fields["spec"]
        .fields["template"]
        .fields["spec"]
        .fields["containers"]
        .items.fields["ports"],
    )
    assert port == 'k:{"containerPort":80,"protocol":"TCP"}'
    assert any(path[-1] == port for path in fields)


def test_describe_prints_paths_like_structured_merge_diff() -> None:
    path = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image")
    assert fieldpath.describe(path) == '.spec.template.spec.containers[name="web"].image'
    assert (
        fieldpath.describe(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'
    )


def test_apply_creates_and_a_second_identical_apply_changes_nothing() -> None:
    merged, entries = ssa.apply({}, _deployment(), SCHEMA, _applier("kubectl"))
    assert [(e.manager, e.operation, e.time) for e in entries] == [
        ("kubectl", "Apply", "2026-12-07T06:00:00Z")
    ]
    live = _with_entries(merged, entries)
    again, entries2 = ssa.apply(live, _deployment(), SCHEMA, _applier("kubectl", "later"))
    assert ssa.without_managed_fields(again) == ssa.without_managed_fields(live)
    assert ssa.write_entries(entries2) == live["metadata"]["managedFields"]


def test_fields_the_applier_drops_are_removed_unless_someone_else_owns_them() -> None:
    first = _deployment(env=[{"name": "A", "value": "1"}], args=["x"])
    merged, entries = ssa.apply({}, first, SCHEMA, _applier("kubectl"))
    live = _with_entries(merged, entries)
    second = _deployment()
    pruned, _ = ssa.apply(live, second, SCHEMA, _applier("kubectl"))
    container = pruned["spec"]["template"]["spec"]["containers"][0]
    assert "env" not in container and "args" not in container


def test_lists_merge_by_key_with_another_managers_items_kept() -> None:
    merged, entries = ssa.apply({}, _deployment(), SCHEMA, _applier("a"))
    live = _with_entries(merged, entries)
    sidecar = _deployment()
    sidecar["spec"]["template"]["spec"]["containers"] = [{"name": "sidecar", "image": "busybox"}]
    del sidecar["spec"]["replicas"]
    both, entries = ssa.apply(live, sidecar, SCHEMA, _applier("b"))
    names = [c["name"] for c in both["spec"]["template"]["spec"]["containers"]]
    assert names == ["web", "sidecar"]
    assert {e.manager for e in entries} == {"a", "b"}


def test_a_different_value_conflicts_naming_field_and_manager_and_force_takes_it() -> None:
    merged, entries = ssa.apply({}, _deployment(replicas=1), SCHEMA, _applier("a"))
    live = _with_entries(merged, entries)
    with pytest.raises(ssa.ApplyConflicts) as caught:
        ssa.apply(live, _deployment(replicas=3), SCHEMA, _applier("b"))
    assert str(caught.value) == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    forced, entries = ssa.apply(live, _deployment(replicas=3), SCHEMA, _applier("b"), force=True)
    assert forced["spec"]["replicas"] == 3
    owners = {e.manager: e.fields for e in entries}
    assert ("f:spec", "f:replicas") in owners["b"]
    assert ("f:spec", "f:replicas") not in owners["a"]


def test_the_same_value_is_shared_without_conflict() -> None:
    merged, entries = ssa.apply({}, _deployment(), SCHEMA, _applier("a"))
    live = _with_entries(merged, entries)
    _, entries = ssa.apply(live, _deployment(), SCHEMA, _applier("b"))
    owners = {e.manager: e.fields for e in entries}
    assert ("f:spec", "f:replicas") in owners["a"] and ("f:spec", "f:replicas") in owners["b"]


def test_updates_take_what_they_change_and_conflict_as_update_managers() -> None:
    created = _deployment()
    updater = ssa.Applier("kubectl-client-side-apply", "apps/v1", "t0", ssa.SERVER_FIELDS)
    entries = ssa.track_update({}, created, SCHEMA, updater)
    live = _with_entries(created, entries)
    assert entries[0].operation == "Update"
    with pytest.raises(ssa.ApplyConflicts) as caught:
        ssa.apply(live, _deployment(replicas=2), SCHEMA, _applier("kubectl"))
    assert str(caught.value) == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        ".spec.replicas"
    )
    changed = _deployment(replicas=5)
    scaler = ssa.Applier("scaler", "apps/v1", "t1", ssa.SERVER_FIELDS)
    entries = ssa.track_update(live, changed, SCHEMA, scaler)
    owners = {e.manager: e.fields for e in entries}
    assert owners["scaler"] == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:replicas") not in owners["kubectl-client-side-apply"]
    unchanged = ssa.track_update(live, created, SCHEMA, scaler)
    assert ssa.write_entries(unchanged) == live["metadata"]["managedFields"]


def test_managed_fields_a_writer_sends_replace_the_live_ones() -> None:
    created = _deployment()
    updater = ssa.Applier("kubectl-client-side-apply", "apps/v1", "t0", ssa.SERVER_FIELDS)
    live = _with_entries(created, ssa.track_update({}, created, SCHEMA, updater))
    handed_over = copy.deepcopy(live)
    handed_over["metadata"]["managedFields"][0]["manager"] = "kubectl"
    handed_over["metadata"]["managedFields"][0]["operation"] = "Apply"
    entries = ssa.track_update(live, handed_over, SCHEMA, updater)
    assert [(e.manager, e.operation) for e in entries] == [("kubectl", "Apply")]
    cleared = copy.deepcopy(live)
    cleared["metadata"]["managedFields"] = [{}]
    assert ssa.track_update(live, cleared, SCHEMA, updater) == []
    sent_none = ssa.without_managed_fields(live)
    assert (
        ssa.write_entries(ssa.track_update(live, sent_none, SCHEMA, updater))
        == (live["metadata"]["managedFields"])
    )


@pytest.mark.parametrize(
    "obj",
    [
        _deployment(env=[{"name": "A", "value": "1"}], ports=[{"containerPort": 80}]),
        {"metadata": {"name": "only-ignored"}},
        {"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}}},
        {"metadata": {"finalizers": ["a", "b"], "labels": {}}, "spec": {"replicas": 0}},
    ],
)
def test_the_one_pass_tree_equals_the_encoded_field_set(obj: dict[str, Any]) -> None:
    expected = fieldpath.encode(fieldpath.field_set(obj, SCHEMA, ssa.SERVER_FIELDS))
    assert fieldpath.tree_of(obj, SCHEMA, ssa.SERVER_FIELDS) == expected


def test_apply_leaves_the_live_object_untouched() -> None:
    """The live object may be the watch cache's own: pruning must not reach into it."""
    first = _deployment()
    first["metadata"]["annotations"] = {"note": "x"}
    first["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    merged, entries = ssa.apply({}, first, SCHEMA, _applier("kubectl"))
    live = _with_entries(merged, entries)
    snapshot = copy.deepcopy(live)
    second = _deployment()
    del second["spec"]["template"]  # the applier gives up the whole template
    pruned, _ = ssa.apply(live, second, SCHEMA, _applier("kubectl"))
    assert live == snapshot
    assert "annotations" not in pruned["metadata"]
    assert "template" not in pruned["spec"]
