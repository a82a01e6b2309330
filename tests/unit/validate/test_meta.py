"""Object metadata: names per kind, labels, annotations, owners, finalizers."""

from __future__ import annotations

import pytest

from .builders import (
    FORBIDDEN,
    INVALID,
    REQUIRED,
    TOO_LONG,
    Mutation,
    append,
    both,
    causes_of,
    drop,
    mutated,
    put,
    update_causes,
    validate,
)

CASES: list[tuple[str, str, Mutation, list[tuple[str, str]]]] = [
    ("no name", "Pod", drop("metadata/name"), [("metadata.name", REQUIRED)]),
    (
        "generateName instead of name",
        "Pod",
        both(drop("metadata/name"), put("metadata/generateName", "web-")),
        [],
    ),
    (
        "bad generateName",
        "Pod",
        put("metadata/generateName", "Web_"),
        [("metadata.generateName", INVALID)],
    ),
    ("upper-case pod name", "Pod", put("metadata/name", "Web-0"), [("metadata.name", INVALID)]),
    ("subdomain pod name", "Pod", put("metadata/name", "web.v2"), []),
    (
        "namespace name with dot",
        "Namespace",
        put("metadata/name", "shop.eu"),
        [("metadata.name", INVALID)],
    ),
    (
        "service name with digit first",
        "Service",
        put("metadata/name", "1web"),
        [("metadata.name", INVALID)],
    ),
    (
        "service name with dot",
        "Service",
        put("metadata/name", "web.v2"),
        [("metadata.name", INVALID)],
    ),
    ("deployment name with dot", "Deployment", put("metadata/name", "web.v2"), []),
    (
        "bad namespace",
        "ConfigMap",
        put("metadata/namespace", "Shop"),
        [("metadata.namespace", INVALID)],
    ),
    (
        "negative generation",
        "Pod",
        put("metadata/generation", -1),
        [("metadata.generation", INVALID)],
    ),
    ("bad label key", "Pod", put("metadata/labels/-app", "web"), [("metadata.labels", INVALID)]),
    (
        "label value too long",
        "Pod",
        put("metadata/labels/app", "x" * 64),
        [("metadata.labels", INVALID)],
    ),
    ("empty label value", "Pod", put("metadata/labels/app", ""), []),
    (
        "label key too long to be cached",
        "Pod",
        put("metadata/labels/" + "k" * 300, "v"),
        [("metadata.labels", INVALID)],
    ),
    ("annotation key in capitals", "Pod", put("metadata/annotations/Example.com~1Owner", "a"), []),
    (
        "bad annotation key",
        "Pod",
        put("metadata/annotations/not a key", "a"),
        [("metadata.annotations", INVALID)],
    ),
    (
        "annotations too large",
        "Pod",
        put("metadata/annotations/example.com~1blob", "x" * (256 * 1024)),
        [("metadata.annotations", TOO_LONG)],
    ),
    (
        "owner without uid",
        "Pod",
        put("metadata/ownerReferences/0/uid", ""),
        [("metadata.ownerReferences[0].uid", INVALID)],
    ),
    (
        "owner without version",
        "Pod",
        put("metadata/ownerReferences/0/apiVersion", "apps/"),
        [("metadata.ownerReferences[0].apiVersion", INVALID)],
    ),
    (
        "two controllers",
        "Pod",
        append(
            "metadata/ownerReferences",
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "name": "web",
                "uid": "u2",
                "controller": True,
            },
        ),
        [("metadata.ownerReferences", INVALID)],
    ),
    (
        "event as owner",
        "Pod",
        put(
            "metadata/ownerReferences/0",
            {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"},
        ),
        [("metadata.ownerReferences[0]", INVALID)],
    ),
    (
        "unqualified finalizer",
        "Pod",
        put("metadata/finalizers", ["cleanup"]),
        [("metadata.finalizers[0]", INVALID)],
    ),
    ("standard finalizer", "Pod", put("metadata/finalizers", ["kubernetes", "orphan"]), []),
    (
        "orphan and foreground",
        "Pod",
        put("metadata/finalizers", ["orphan", "foregroundDeletion"]),
        [("metadata.finalizers", INVALID)],
    ),
    (
        "finalizer with bad name part",
        "Pod",
        put("metadata/finalizers", ["example.com/clean up"]),
        [("metadata.finalizers[0]", INVALID)],
    ),
    (
        "namespace spec finalizer",
        "Namespace",
        put("spec/finalizers", ["kubernetes", "cleanup"]),
        [("spec.finalizers[1]", INVALID)],
    ),
]


@pytest.mark.parametrize(
    ("kind", "mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_metadata(kind: str, mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of(kind, mutation) == expected


def test_every_problem_is_reported() -> None:
    got = causes_of(
        "Pod",
        put("metadata/name", "Web"),
        put("metadata/labels/-x", "y"),
        put("metadata/finalizers", ["cleanup", "cleanup"]),
    )
    assert got == [
        ("metadata.name", INVALID),
        ("metadata.labels", INVALID),
        ("metadata.finalizers[0]", INVALID),
        ("metadata.finalizers[1]", INVALID),
    ]


def test_name_required_message() -> None:
    [cause] = validate("Pod", mutated("Pod", drop("metadata/name")))
    assert cause.message == "Required value: name or generateName is required"


def test_label_message_is_kubernetes_wording() -> None:
    [cause] = validate("Pod", mutated("Pod", put("metadata/labels/app", "web!")))
    assert cause.message == (
        'Invalid value: "web!": a valid label must be an empty string or consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    )


def test_annotation_size_message() -> None:
    [cause] = validate("Pod", mutated("Pod", put("metadata/annotations/a", "x" * 300_000)))
    assert (cause.field, cause.message) == (
        "metadata.annotations",
        "Too long: must have at most 262144 bytes",
    )


def test_no_new_finalizers_while_deleting() -> None:
    old = mutated("Pod", put("metadata/deletionTimestamp", "2024-01-01T00:00:00Z"))
    new = mutated(
        "Pod",
        put("metadata/deletionTimestamp", "2024-01-01T00:00:00Z"),
        append("metadata/finalizers", "example.com/late"),
    )
    causes = validate("Pod", new, old)
    assert [(c.field, c.reason) for c in causes] == [("metadata.finalizers", FORBIDDEN)]
    assert causes[0].message == (
        "Forbidden: no new finalizers can be added if the object is being deleted, "
        'found new finalizers []string{"example.com/late"}'
    )


def test_finalizers_may_be_removed_while_deleting() -> None:
    assert update_causes("Pod", put("metadata/finalizers", [])) == []
