"""Pod volumes and their sources."""

from __future__ import annotations

import pytest

from .builders import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    REQUIRED,
    Mutation,
    causes_of,
    mutated,
    put,
    validate,
)

V = "spec.volumes"

CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "duplicate volume name",
        put("spec/volumes/1/name", "config"),
        [(f"{V}[1].name", DUPLICATE), ("spec.containers[0].volumeMounts[1].name", NOT_FOUND)],
    ),
    (
        "bad volume name",
        put("spec/volumes/1/name", "Cache"),
        # The volume is unusable, so its mount is not found either.
        [(f"{V}[1].name", INVALID), ("spec.containers[0].volumeMounts[1].name", NOT_FOUND)],
    ),
    (
        "no source",
        put("spec/volumes/1", {"name": "cache"}),
        [(f"{V}[1]", REQUIRED), ("spec.containers[0].volumeMounts[1].name", NOT_FOUND)],
    ),
    (
        "two sources",
        put("spec/volumes/0/secret", {"secretName": "s"}),
        # Kubernetes looks at secret before configMap, so configMap is the extra one.
        [(f"{V}[0].configMap", FORBIDDEN), ("spec.containers[0].volumeMounts[0].name", NOT_FOUND)],
    ),
    (
        "configMap without name",
        put("spec/volumes/0/configMap", {}),
        [
            (f"{V}[0].configMap.name", REQUIRED),
            ("spec.containers[0].volumeMounts[0].name", NOT_FOUND),
        ],
    ),
    (
        "default mode too wide",
        put("spec/volumes/0/configMap/defaultMode", 0o1777),
        [
            (f"{V}[0].configMap.defaultMode", INVALID),
            ("spec.containers[0].volumeMounts[0].name", NOT_FOUND),
        ],
    ),
    (
        "item path climbing out",
        put("spec/volumes/0/configMap/items", [{"key": "a", "path": "../a"}]),
        [
            (f"{V}[0].configMap.items[0].path", INVALID),
            ("spec.containers[0].volumeMounts[0].name", NOT_FOUND),
        ],
    ),
    (
        "reserved item path",
        put("spec/volumes/0/configMap/items", [{"key": "a", "path": "..data"}]),
        [
            (f"{V}[0].configMap.items[0].path", INVALID),
            ("spec.containers[0].volumeMounts[0].name", NOT_FOUND),
        ],
    ),
    (
        "hostPath with backsteps",
        put("spec/volumes/1", {"name": "cache", "hostPath": {"path": "/var/../etc"}}),
        [
            (f"{V}[1].hostPath.path", INVALID),
            ("spec.containers[0].volumeMounts[1].name", NOT_FOUND),
        ],
    ),
    (
        "negative emptyDir size",
        put("spec/volumes/1/emptyDir/sizeLimit", "-1Gi"),
        [
            (f"{V}[1].emptyDir.sizeLimit", FORBIDDEN),
            ("spec.containers[0].volumeMounts[1].name", NOT_FOUND),
        ],
    ),
    (
        "downward API item with no reference",
        put("spec/volumes/2/downwardAPI/items/0", {"path": "labels"}),
        [
            (f"{V}[2].downwardAPI.items[0]", REQUIRED),
            ("spec.containers[0].volumeMounts[2].name", NOT_FOUND),
        ],
    ),
    (
        "downward API resource without container",
        put(
            "spec/volumes/2/downwardAPI/items/0",
            {"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}},
        ),
        [
            (f"{V}[2].downwardAPI.items[0].resourceFieldRef.containerName", REQUIRED),
            ("spec.containers[0].volumeMounts[2].name", NOT_FOUND),
        ],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_volumes(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Pod", mutation) == expected


def test_two_sources_message() -> None:
    causes = validate("Pod", mutated("Pod", put("spec/volumes/0/secret", {"secretName": "s"})))
    assert causes[0].message == "Forbidden: may not specify more than 1 volume type"
