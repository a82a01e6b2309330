"""ConfigMaps, Secrets, Events, PodDisruptionBudgets and Leases."""

from __future__ import annotations

import base64

import pytest

from .builders import (
    FORBIDDEN,
    INVALID,
    REQUIRED,
    TOO_LONG,
    Mutation,
    both,
    causes_of,
    docker_secret,
    drop,
    mutated,
    put,
    update_causes,
    validate,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CONFIG_MAP_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("bad key", put("data/a b", "x"), [("data[a b]", INVALID)]),
    ("key starting with dots", put("data/..data", "x"), [("data[..data]", INVALID)]),
    ("key in both maps", put("binaryData/MODE", "eA=="), [("data[MODE]", INVALID)]),
    (
        "binary data not base64",
        put("binaryData/logo.png", "not base64!"),
        [("binaryData[logo.png]", INVALID)],
    ),
    ("over one MiB", put("data/big", "x" * (1024 * 1024)), [("", TOO_LONG)]),
]


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [c[1:] for c in CONFIG_MAP_CASES],
    ids=[c[0] for c in CONFIG_MAP_CASES],
)
def test_config_map(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("ConfigMap", mutation) == expected


def test_immutable_config_map() -> None:
    old = mutated("ConfigMap", put("immutable", True))
    changed = mutated("ConfigMap", put("immutable", True), put("data/MODE", "dev"))
    assert [(c.field, c.reason) for c in validate("ConfigMap", changed, old)] == [
        ("data", FORBIDDEN)
    ]
    unset = mutated("ConfigMap", put("immutable", False))
    assert [(c.field, c.reason) for c in validate("ConfigMap", unset, old)] == [
        ("immutable", FORBIDDEN)
    ]
    relabelled = mutated("ConfigMap", put("immutable", True), put("metadata/labels", {"a": "b"}))
    assert validate("ConfigMap", relabelled, old) == []


def test_mutable_config_map_may_change() -> None:
    assert update_causes("ConfigMap", put("data/MODE", "dev"), put("immutable", True)) == []


SECRET_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("docker config missing", put("data", {}), [("data[.dockerconfigjson]", REQUIRED)]),
    (
        "docker config from stringData",
        both(put("data", {}), put("stringData", {".dockerconfigjson": '{"auths": {}}'})),
        [],
    ),
    (
        "docker config not JSON",
        put("data/.dockerconfigjson", b64("{auths")),
        [("data[.dockerconfigjson]", INVALID)],
    ),
    (
        "docker config a list",
        put("data/.dockerconfigjson", b64("[]")),
        [("data[.dockerconfigjson]", INVALID)],
    ),
    (
        "value not base64",
        put("data/.dockerconfigjson", "%%%"),
        [("data[.dockerconfigjson]", INVALID)],
    ),
    ("bad key", put("data/a:b", b64("x")), [("data[a:b]", INVALID)]),
    (
        "tls without key",
        both(put("type", "kubernetes.io/tls"), put("data", {"tls.crt": b64("cert")})),
        [("data[tls.key]", REQUIRED)],
    ),
    (
        "basic auth with neither",
        both(put("type", "kubernetes.io/basic-auth"), put("data", {})),
        [("data[username]", REQUIRED), ("data[password]", REQUIRED)],
    ),
    (
        "service account token without account",
        both(put("type", "kubernetes.io/service-account-token"), put("data", {})),
        [("metadata.annotations[kubernetes.io/service-account.name]", REQUIRED)],
    ),
    (
        "opaque may hold anything",
        both(put("type", "Opaque"), put("data", {"blob": b64("x" * 10)})),
        [],
    ),
    (
        "over one MiB",
        put("stringData", {"big": "x" * (1024 * 1024)}),
        [("data", TOO_LONG)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in SECRET_CASES], ids=[c[0] for c in SECRET_CASES]
)
def test_secret(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Secret", mutation) == expected


def test_docker_config_secret_is_valid() -> None:
    assert validate("Secret", docker_secret()) == []


def test_redacted_secret_message() -> None:
    [cause] = validate("Secret", mutated("Secret", put("data/.dockerconfigjson", "%%%")))
    assert cause.message == (
        'Invalid value: "<secret contents redacted>": illegal base64 data at input byte 0'
    )


def test_secret_updates() -> None:
    assert update_causes("Secret", put("type", "Opaque")) == [("type", INVALID)]
    old = mutated("Secret", put("immutable", True))
    new = mutated("Secret", put("immutable", True), put("stringData", {"extra": "x"}))
    assert [(c.field, c.reason) for c in validate("Secret", new, old)] == [("data", FORBIDDEN)]


EVENT_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "empty involved object",
        put("involvedObject", {}),
        # Its namespace ("") no longer matches the event's either.
        [("involvedObject", REQUIRED), ("involvedObject.namespace", INVALID)],
    ),
    (
        "other namespace",
        put("involvedObject/namespace", "billing"),
        [("involvedObject.namespace", INVALID)],
    ),
    (
        "cluster-scoped object from default",
        both(
            put("metadata/namespace", "default"),
            put("involvedObject", {"kind": "Node", "name": "node-1"}),
        ),
        [],
    ),
    (
        "new-style event without reporter",
        put("eventTime", "2024-05-01T10:00:00.000000Z"),
        [
            ("reportingComponent", REQUIRED),
            ("reportingComponent", INVALID),
            ("reportingComponent", INVALID),
            ("reportingInstance", REQUIRED),
            ("action", REQUIRED),
        ],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in EVENT_CASES], ids=[c[0] for c in EVENT_CASES]
)
def test_event(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Event", mutation) == expected


PDB_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("both set", put("spec/maxUnavailable", 1), [("spec", INVALID)]),
    ("max unavailable only", both(drop("spec/minAvailable"), put("spec/maxUnavailable", 1)), []),
    ("not a percentage", put("spec/minAvailable", "half"), [("spec.minAvailable", INVALID)]),
    ("negative", put("spec/minAvailable", -1), [("spec.minAvailable", INVALID)]),
    ("over 100%", put("spec/minAvailable", "150%"), [("spec.minAvailable", INVALID)]),
    (
        "bad selector",
        put(
            "spec/selector",
            {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]},
        ),
        [("spec.selector.matchExpressions[0].values", FORBIDDEN)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in PDB_CASES], ids=[c[0] for c in PDB_CASES]
)
def test_pdb(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("PodDisruptionBudget", mutation) == expected


def test_pdb_percent_message() -> None:
    [cause] = validate(
        "PodDisruptionBudget", mutated("PodDisruptionBudget", put("spec/minAvailable", "half"))
    )
    assert cause.message == (
        "Invalid value: half: a valid percent string must be a numeric string followed by an "
        "ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
    )


LEASE_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "zero duration",
        put("spec/leaseDurationSeconds", 0),
        [("spec.leaseDurationSeconds", INVALID)],
    ),
    (
        "negative transitions",
        put("spec/leaseTransitions", -1),
        [("spec.leaseTransitions", INVALID)],
    ),
    ("no duration", drop("spec/leaseDurationSeconds"), []),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in LEASE_CASES], ids=[c[0] for c in LEASE_CASES]
)
def test_lease(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Lease", mutation) == expected
