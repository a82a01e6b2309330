"""NodeRestriction's rules, one write at a time (Kubernetes' admission_test.go cases)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.admission.noderestriction import (
    Lookups,
    NodeWrite,
    Operation,
    admit,
    forbidden_labels,
    modified_labels,
    node_may_set_label,
)
from corral.api.errors import ApiError
from corral.objects import Obj


@pytest.mark.parametrize(
    "key",
    [
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "kubelet.kubernetes.io/anything",
        "foo.kubelet.kubernetes.io/anything",
        "node.kubernetes.io/anything",
        "foo.node.kubernetes.io/anything",
        # A subdomain of node.kubernetes.io, whatever it starts with.
        "node-restriction.kubernetes.io.node.kubernetes.io/x",
        # Outside Kubernetes' namespaces a node labels itself as it likes.
        "disk",
        "example.com/disk",
        "notkubernetes.io/x",
        "kubernetes.io.example.com/x",
    ],
)
def test_labels_a_node_may_set(key: str) -> None:
    assert node_may_set_label(key)


@pytest.mark.parametrize(
    "key",
    [
        "node-role.kubernetes.io/master",
        "node-role.kubernetes.io/worker",
        "node-restriction.kubernetes.io/x",
        "foo.node-restriction.kubernetes.io/x",
        "a.b.node-restriction.kubernetes.io/x",
        "kubernetes.io/role",
        "k8s.io/x",
        "foo.k8s.io/x",
        "topology.kubernetes.io/rack",
        "beta.kubernetes.io/fluentd-ds-ready",
        # The allow-list is of keys, not of their namespaces.
        "kubernetes.io/hostname2",
    ],
)
def test_labels_only_an_administrator_may_set(key: str) -> None:
    assert not node_may_set_label(key)


def test_modified_labels_are_added_changed_and_removed_keys() -> None:
    old = {"keep": "1", "change": "1", "remove": "1", "empty": ""}
    new = {"keep": "1", "change": "2", "add": "1", "empty": ""}
    assert modified_labels(new, old) == {"change", "remove", "add"}
    assert modified_labels(None, None) == set()
    assert modified_labels({"a": ""}, None) == {"a"}


def test_forbidden_labels_ignore_restricted_labels_left_as_they_are() -> None:
    old = {"node-role.kubernetes.io/worker": "", "kubernetes.io/hostname": "a"}
    assert forbidden_labels({**old, "kubernetes.io/hostname": "b"}, old) == []
    assert forbidden_labels({"kubernetes.io/hostname": "a"}, old) == [
        "node-role.kubernetes.io/worker"
    ]
    assert forbidden_labels(
        {**old, "node-restriction.kubernetes.io/b": "", "node-role.kubernetes.io/a": ""}, old
    ) == ["node-restriction.kubernetes.io/b", "node-role.kubernetes.io/a"]


# --- Node writes -----------------------------------------------------------------------------


def node(name: str = "a", labels: Obj | None = None, **parts: Any) -> Obj:
    return {"metadata": {"name": name, "labels": labels or {}}, **parts}


def node_write(operation: Operation, new: Obj | None, old: Obj | None, sub: str = "") -> NodeWrite:
    return NodeWrite("a", operation, "nodes", "", sub, new, old)


def refused(write: NodeWrite, lookups: Lookups | None = None) -> ApiError:
    refusal = admit(write, lookups) if lookups is not None else admit(write)
    assert refusal is not None, write
    assert refusal.code == 403 and refusal.reason == "Forbidden"
    return refusal


def fields(error: ApiError) -> list[str]:
    return [cause.field for cause in error.causes]


def test_a_node_may_not_create_update_or_delete_another_node() -> None:
    for operation, new, old in (
        ("create", node("b"), None),
        ("update", node("b"), node("b")),
        ("delete", None, node("b")),
    ):
        error = refused(node_write(operation, new, old))  # type: ignore[arg-type]
        assert error.message == 'nodes "b" is forbidden: node "a" is not allowed to modify node "b"'
        assert fields(error) == ["metadata.name"]
    assert admit(node_write("delete", None, node("a"))) is None


def test_registration_refuses_restricted_labels_naming_each() -> None:
    labels = {
        "kubernetes.io/hostname": "a",
        "node-role.kubernetes.io/master": "",
        "foo.node-restriction.kubernetes.io/x": "y",
    }
    error = refused(node_write("create", node(labels=labels), None))
    assert error.message == (
        'nodes "a" is forbidden: node "a" is not allowed to set the following labels: '
        "foo.node-restriction.kubernetes.io/x, node-role.kubernetes.io/master"
    )
    assert fields(error) == [
        "metadata.labels[foo.node-restriction.kubernetes.io/x]",
        "metadata.labels[node-role.kubernetes.io/master]",
    ]
    allowed = {"kubernetes.io/hostname": "a", "kubernetes.io/arch": "amd64", "disk": "ssd"}
    assert admit(node_write("create", node(labels=allowed), None)) is None


def test_registration_may_not_claim_a_pod_cidr() -> None:
    error = refused(node_write("create", node(spec={"podCIDR": "10.244.9.0/24"}), None))
    assert fields(error) == ["spec.podCIDR"]


def test_an_update_may_not_add_change_or_remove_restricted_labels() -> None:
    old = node(labels={"node-role.kubernetes.io/worker": ""})
    for labels in (
        {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/master": ""},
        {"node-role.kubernetes.io/worker": "yes"},
        {},
    ):
        for sub in ("", "status"):
            error = refused(node_write("update", node(labels=labels), old, sub))
            assert "is not allowed to modify labels: node-role.kubernetes.io/" in error.message
            assert fields(error)[0].startswith("metadata.labels[node-role.kubernetes.io/")
    kept = node(labels={"node-role.kubernetes.io/worker": "", "kubernetes.io/hostname": "a"})
    assert admit(node_write("update", kept, old)) is None


def test_an_update_may_not_change_taints_or_the_administrators_spec() -> None:
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    old = node(spec={"taints": [taint], "podCIDR": "10.244.1.0/24", "unschedulable": True})
    for spec, field in (
        ({"podCIDR": "10.244.1.0/24", "unschedulable": True}, "spec.taints"),
        ({"taints": [taint], "podCIDR": "10.244.2.0/24", "unschedulable": True}, "spec.podCIDR"),
        ({"taints": [taint], "podCIDR": "10.244.1.0/24"}, "spec.unschedulable"),
    ):
        error = refused(node_write("update", node(spec=spec), old))
        assert fields(error) == [field]
    assert refused(node_write("update", node(spec={}), old)).message.endswith(
        'node "a" is not allowed to modify taints'
    )
    # Absent, null and empty taints are the same thing.
    assert admit(node_write("update", node(spec={"taints": []}), node())) is None


def test_addresses_are_fixed_once_set_and_conditions_stay_free() -> None:
    first = [{"type": "InternalIP", "address": "10.0.0.5"}]
    moved = [{"type": "InternalIP", "address": "10.0.0.6"}]
    empty = node(status={})
    registered = node(status={"addresses": first, "conditions": []})
    assert admit(node_write("update", node(status={"addresses": first}), empty, "status")) is None
    error = refused(node_write("update", node(status={"addresses": moved}), registered, "status"))
    assert fields(error) == ["status.addresses"]
    ready = [{"type": "Ready", "status": "True"}]
    fresh = node(status={"addresses": first, "conditions": ready})
    assert admit(node_write("update", fresh, registered, "status")) is None


# --- Pods -----------------------------------------------------------------------------------


NODE_UID = "0b5e-uid"
LOOKUPS = Lookups(
    pod=lambda namespace, name: {"spec": {"nodeName": "a" if name.startswith("a-") else "b"}},
    node=lambda _, name: {"metadata": {"name": name, "uid": NODE_UID}} if name == "a" else None,
)


def pod(name: str, node_name: str, **meta: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "prod", **meta},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "i"}]},
    }


def pod_write(operation: Operation, new: Obj | None, old: Obj | None, sub: str = "") -> NodeWrite:
    return NodeWrite("a", operation, "pods", "", sub, new, old)


def mirror(**changes: Any) -> Obj:
    owner = {"apiVersion": "v1", "kind": "Node", "name": "a", "uid": NODE_UID, "controller": True}
    owner.update(changes.pop("owner", {}))
    out = pod(
        "static-web-a",
        "a",
        annotations={"kubernetes.io/config.mirror": "hash"},
        ownerReferences=[owner],
    )
    out["spec"].update(changes)
    return out


def test_a_node_creates_only_mirror_pods_tied_to_itself() -> None:
    assert admit(pod_write("create", mirror(), None), LOOKUPS) is None
    plain = pod("a-web", "a")
    error = refused(pod_write("create", plain, None), LOOKUPS)
    assert "can only create mirror pods" in error.message
    assert fields(error) == ["metadata.annotations"]
    for bad, words in (
        (mirror(nodeName="b"), "spec.nodeName set to itself"),
        (mirror(owner={"name": "b"}), "single owner reference set to itself"),
        (mirror(owner={"controller": False}), "controller owner reference"),
        (mirror(owner={"blockOwnerDeletion": True}), "must not set blockOwnerDeletion"),
        (mirror(owner={"uid": "an-older-node"}), "UID mismatch"),
        (mirror(serviceAccountName="default"), "reference a service account"),
        (
            mirror(volumes=[{"name": "s", "secret": {"secretName": "db"}}]),
            "reference secrets",
        ),
        (
            mirror(
                volumes=[{"name": "p", "projected": {"sources": [{"configMap": {"name": "x"}}]}}]
            ),
            "reference configmaps",
        ),
        (
            mirror(volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]),
            "reference persistentvolumeclaims",
        ),
    ):
        assert words in refused(pod_write("create", bad, None), LOOKUPS).message


def test_a_node_never_updates_a_pod_only_its_status() -> None:
    mine = pod("a-web", "a")
    error = refused(pod_write("update", mine, mine), LOOKUPS)
    assert "can only create and delete mirror pods" in error.message
    assert admit(pod_write("update", mine, mine, "status"), LOOKUPS) is None
    theirs = pod("b-web", "b")
    error = refused(pod_write("update", theirs, theirs, "status"), LOOKUPS)
    assert "can only update pod status for pods with spec.nodeName set to itself" in error.message
    relabelled = pod("a-web", "a", labels={"app": "other"})
    error = refused(pod_write("update", relabelled, mine, "status"), LOOKUPS)
    assert "cannot update labels through pod status" in error.message
    error = refused(pod_write("update", mine, mine, "binding"), LOOKUPS)
    assert 'unexpected pod subresource "binding"' in error.message


def test_a_node_deletes_and_evicts_only_its_own_pods() -> None:
    mine, theirs = pod("a-web", "a"), pod("b-web", "b")
    assert admit(pod_write("delete", None, mine), LOOKUPS) is None
    assert admit(pod_write("delete", None, mine, "eviction"), LOOKUPS) is None
    error = refused(pod_write("delete", None, theirs), LOOKUPS)
    assert error.message == (
        'pods "b-web" is forbidden: node "a" can only delete pods with spec.nodeName set to itself'
    )
    assert "can only evict pods" in refused(pod_write("delete", None, theirs, "eviction")).message


# --- Leases and Events ---------------------------------------------------------------------


def test_a_node_writes_only_its_own_lease_in_kube_node_lease() -> None:
    group = "coordination.k8s.io"

    def lease(name: str, namespace: str = "kube-node-lease") -> Obj:
        return {"metadata": {"name": name, "namespace": namespace}}

    assert admit(NodeWrite("a", "create", "leases", group, obj=lease("a"))) is None
    assert admit(NodeWrite("a", "update", "leases", group, obj=lease("a"), old=lease("a"))) is None
    error = refused(NodeWrite("a", "create", "leases", group, obj=lease("b")))
    assert error.message.endswith(
        "can only access node lease with the same name as the requesting node"
    )
    error = refused(NodeWrite("a", "create", "leases", group, obj=lease("a", "default")))
    assert fields(error) == ["metadata.namespace"]


def test_a_node_records_events_only_about_itself_and_its_pods() -> None:
    def event(kind: str, name: str) -> Obj:
        return {
            "metadata": {"name": "e", "namespace": "prod"},
            "involvedObject": {"kind": kind, "name": name, "namespace": "prod"},
        }

    def write(new: Obj, old: Obj | None = None) -> NodeWrite:
        return NodeWrite("a", "update" if old else "create", "events", "", "", new, old)

    assert admit(write(event("Node", "a")), LOOKUPS) is None
    assert admit(write(event("Pod", "a-web")), LOOKUPS) is None
    for other in (event("Node", "b"), event("Pod", "b-web"), event("Secret", "x")):
        assert fields(refused(write(other), LOOKUPS)) == ["involvedObject"]
    # A patch may neither take over another's event nor point its own elsewhere.
    assert refused(write(event("Node", "a"), event("Node", "b")), LOOKUPS)
    assert refused(write(event("Node", "b"), event("Node", "a")), LOOKUPS)


def test_other_resources_are_left_to_the_authorizers() -> None:
    configmap = {"metadata": {"name": "x", "namespace": "prod"}}
    assert admit(NodeWrite("a", "create", "configmaps", obj=configmap)) is None
