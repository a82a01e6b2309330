"""PersistentVolumes, PersistentVolumeClaims and StorageClasses."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from corral.objects import Obj

from .builders import (
    FORBIDDEN,
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    Mutation,
    drop,
    mutated,
    put,
    validate,
)


def persistent_volume() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "data-1"},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "corral-local",
            "local": {"path": "data-1"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["n1"]}
                            ]
                        }
                    ]
                }
            },
        },
    }


def claim() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "db"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "corral-local",
        },
    }


def storage_class() -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "fast"},
        "provisioner": "corral.io/local",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


BASES: dict[str, Callable[[], Obj]] = {
    "PersistentVolume": persistent_volume,
    "PersistentVolumeClaim": claim,
    "StorageClass": storage_class,
}


def causes(kind: str, *mutations: Mutation, old: Obj | None = None) -> list[tuple[str, str]]:
    obj = BASES[kind]()
    for mutation in mutations:
        mutation(obj)
    return [(c.field, c.reason) for c in validate(kind, obj, old)]


@pytest.mark.parametrize("kind", list(BASES))
def test_the_bases_are_valid(kind: str) -> None:
    assert causes(kind) == []


PV_CASES: list[tuple[str, list[Mutation], list[tuple[str, str]]]] = [
    ("no access modes", [drop("spec/accessModes")], [("spec.accessModes", REQUIRED)]),
    (
        "ReadWriteOncePod with another mode",
        [put("spec/accessModes", ["ReadWriteOncePod", "ReadOnlyMany"])],
        [("spec.accessModes", FORBIDDEN)],
    ),
    ("no capacity", [drop("spec/capacity")], [("spec.capacity", REQUIRED)]),
    (
        "a capacity other than storage",
        [put("spec/capacity/cpu", "1")],
        [("spec.capacity[cpu]", NOT_SUPPORTED)],
    ),
    ("zero storage", [put("spec/capacity/storage", "0")], [("spec.capacity[storage]", INVALID)]),
    ("no source", [drop("spec/local")], [("spec", REQUIRED)]),
    (
        "two sources",
        [put("spec/hostPath", {"path": "/srv"})],
        [("spec.local", FORBIDDEN)],
    ),
    ("a local path with ..", [put("spec/local/path", "a/../b")], [("spec.local.path", INVALID)]),
    ("local without node affinity", [drop("spec/nodeAffinity")], [("spec.nodeAffinity", REQUIRED)]),
    (
        "a bad class name",
        [put("spec/storageClassName", "Not_A_Name")],
        [("spec.storageClassName", INVALID)],
    ),
    (
        "the recycler",
        [put("spec/persistentVolumeReclaimPolicy", "Recycle")],
        [("spec.persistentVolumeReclaimPolicy", NOT_SUPPORTED)],
    ),
    (
        "a claimRef without a namespace",
        [put("spec/claimRef", {"name": "data"})],
        [("spec.claimRef.namespace", REQUIRED)],
    ),
]


@pytest.mark.parametrize(
    ("mutations", "expected"), [c[1:] for c in PV_CASES], ids=[c[0] for c in PV_CASES]
)
def test_persistent_volume(mutations: list[Mutation], expected: list[tuple[str, str]]) -> None:
    assert causes("PersistentVolume", *mutations) == expected


def test_a_volumes_source_and_node_affinity_are_fixed() -> None:
    old = persistent_volume()
    assert causes("PersistentVolume", put("spec/local/path", "elsewhere"), old=old) == [
        ("spec.persistentvolumesource", FORBIDDEN)
    ]
    moved = put("spec/nodeAffinity/required/nodeSelectorTerms/0/matchFields/0/values", ["n2"])
    assert causes("PersistentVolume", moved, old=old) == [("spec.nodeAffinity", INVALID)]
    # Binding and status are the controller's to change.
    bind = put("spec/claimRef", {"namespace": "db", "name": "data", "uid": "u1"})
    assert causes("PersistentVolume", bind, old=old) == []


PVC_CASES: list[tuple[str, list[Mutation], list[tuple[str, str]]]] = [
    ("no access modes", [put("spec/accessModes", [])], [("spec.accessModes", REQUIRED)]),
    (
        "no storage request",
        [put("spec/resources", {"requests": {}})],
        [("spec.resources[storage]", REQUIRED)],
    ),
    (
        "a negative request",
        [put("spec/resources/requests/storage", "-1Gi")],
        [("spec.resources[storage]", INVALID)],
    ),
    (
        "a bad class name",
        [put("spec/storageClassName", "UPPER")],
        [("spec.storageClassName", INVALID)],
    ),
    (
        "a bad selector",
        [put("spec/selector", {"matchLabels": {"bad key!": "x"}})],
        [("spec.selector.matchLabels", INVALID)],
    ),
]


@pytest.mark.parametrize(
    ("mutations", "expected"), [c[1:] for c in PVC_CASES], ids=[c[0] for c in PVC_CASES]
)
def test_claim(mutations: list[Mutation], expected: list[tuple[str, str]]) -> None:
    assert causes("PersistentVolumeClaim", *mutations) == expected


def bound(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["spec"]["volumeName"] = "data-1"
    out["status"] = {"phase": "Bound"}
    return out


def test_a_claims_spec_is_fixed_but_for_binding_and_growth() -> None:
    pending = claim()
    # The binder sets volumeName once; a defaulted class may be filled in.
    assert causes("PersistentVolumeClaim", put("spec/volumeName", "data-1"), old=pending) == []
    unclassed = claim()
    del unclassed["spec"]["storageClassName"]
    assert causes("PersistentVolumeClaim", old=unclassed) == []
    # Anything else is immutable, including a size change before binding.
    assert causes(
        "PersistentVolumeClaim", put("spec/accessModes", ["ReadWriteMany"]), old=pending
    ) == [("spec", FORBIDDEN)]
    assert causes(
        "PersistentVolumeClaim", put("spec/resources/requests/storage", "2Gi"), old=pending
    ) == [("spec", FORBIDDEN)]
    # A bound claim may grow, never shrink, and never move to another volume.
    old = bound(claim())
    grow = [put("spec/volumeName", "data-1"), put("spec/resources/requests/storage", "2Gi")]
    assert causes("PersistentVolumeClaim", *grow, old=old) == []
    shrink = [put("spec/volumeName", "data-1"), put("spec/resources/requests/storage", "512Mi")]
    assert causes("PersistentVolumeClaim", *shrink, old=old) == [
        ("spec.resources.requests.storage", FORBIDDEN)
    ]
    assert causes("PersistentVolumeClaim", put("spec/volumeName", "other"), old=old) == [
        ("spec", FORBIDDEN)
    ]


def test_storage_class() -> None:
    assert causes("StorageClass", put("provisioner", "")) == [("provisioner", REQUIRED)]
    assert causes("StorageClass", put("provisioner", "not a name")) == [("provisioner", INVALID)]
    old = storage_class()
    assert causes("StorageClass", put("parameters", {"a": "b"}), old=old) == [
        ("parameters", FORBIDDEN)
    ]
    assert causes("StorageClass", put("provisioner", "example.com/nfs"), old=old) == [
        ("provisioner", FORBIDDEN)
    ]
    assert causes("StorageClass", put("volumeBindingMode", "Immediate"), old=old) == [
        ("volumeBindingMode", INVALID)
    ]
    # Annotations (the default-class marker) may change.
    default = put("metadata/annotations", {"storageclass.kubernetes.io/is-default-class": "true"})
    assert causes("StorageClass", default, old=old) == []


def test_a_pod_volume_names_its_claim() -> None:
    pod = mutated(
        "Pod", put("spec/volumes/0", {"name": "config", "persistentVolumeClaim": {"claimName": ""}})
    )
    # As in Kubernetes, a volume with a problem is left out, so its mount is not found either.
    assert [(c.field, c.reason) for c in validate("Pod", pod)] == [
        ("spec.volumes[0].persistentVolumeClaim.claimName", REQUIRED),
        ("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound"),
    ]
