"""ReplicationControllers, ReplicaSets and Deployments."""

from __future__ import annotations

import pytest

from .builders import (
    FORBIDDEN,
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    Mutation,
    both,
    causes_of,
    deployment,
    drop,
    mutated,
    put,
    replication_controller,
    update_causes,
    validate,
)

RC_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("negative replicas", put("spec/replicas", -1), [("spec.replicas", INVALID)]),
    ("zero replicas", put("spec/replicas", 0), []),
    ("selector defaulted from template", drop("spec/selector"), []),
    (
        "no selector and no template labels",
        both(drop("spec/selector"), drop("spec/template/metadata")),
        [("spec.selector", REQUIRED)],
    ),
    (
        "selector not matching template",
        put("spec/selector", {"app": "api"}),
        [("spec.template.metadata.labels", INVALID)],
    ),
    ("no template", drop("spec/template"), [("spec.template", REQUIRED)]),
    (
        "template restart policy",
        put("spec/template/spec/restartPolicy", "OnFailure"),
        [("spec.template.spec.restartPolicy", NOT_SUPPORTED)],
    ),
    (
        "template deadline",
        put("spec/template/spec/activeDeadlineSeconds", 30),
        [("spec.template.spec.activeDeadlineSeconds", FORBIDDEN)],
    ),
    (
        "template container without image",
        drop("spec/template/spec/containers/0/image"),
        [("spec.template.spec.containers[0].image", REQUIRED)],
    ),
    (
        # The controller's own labels default from its template's, so they are wrong too.
        "template label invalid",
        put("spec/template/metadata/labels/tier", "front end"),
        [("metadata.labels", INVALID), ("spec.template.metadata.labels", INVALID)],
    ),
    (
        "negative minReadySeconds",
        put("spec/minReadySeconds", -1),
        [("spec.minReadySeconds", INVALID)],
    ),
    (
        "template image with spaces is tolerated",
        put("spec/template/spec/containers/0/image", " nginx "),
        [],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in RC_CASES], ids=[c[0] for c in RC_CASES]
)
def test_replication_controller(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("ReplicationController", mutation) == expected


RS_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("empty selector", put("spec/selector", {}), [("spec.selector", INVALID)]),
    (
        "In without values",
        put("spec/selector/matchExpressions", [{"key": "tier", "operator": "In"}]),
        # Reported precisely, then as a selector that cannot be used at all.
        [("spec.selector.matchExpressions[0].values", REQUIRED), ("spec.selector", INVALID)],
    ),
    (
        "selector not matching template",
        put("spec/selector/matchLabels/app", "api"),
        [("spec.template.metadata.labels", INVALID)],
    ),
    ("no template", drop("spec/template"), [("spec.template", REQUIRED)]),
    ("negative replicas", put("spec/replicas", -3), [("spec.replicas", INVALID)]),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in RS_CASES], ids=[c[0] for c in RS_CASES]
)
def test_replica_set(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("ReplicaSet", mutation) == expected


RU = "spec/strategy/rollingUpdate"
RUP = "spec.strategy.rollingUpdate"

DEPLOY_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "surge and unavailable both zero",
        put(RU, {"maxSurge": 0, "maxUnavailable": "0%"}),
        [(f"{RUP}.maxUnavailable", INVALID)],
    ),
    (
        "unavailable over 100%",
        put(f"{RU}/maxUnavailable", "110%"),
        [(f"{RUP}.maxUnavailable", INVALID)],
    ),
    ("surge over 100% is fine", put(f"{RU}/maxSurge", "200%"), []),
    ("surge not a percentage", put(f"{RU}/maxSurge", "5"), [(f"{RUP}.maxSurge", INVALID)]),
    ("negative surge", put(f"{RU}/maxSurge", -1), [(f"{RUP}.maxSurge", INVALID)]),
    ("rolling update defaulted", drop(RU), []),
    (
        "recreate with rolling update",
        put("spec/strategy/type", "Recreate"),
        [(RUP, FORBIDDEN)],
    ),
    ("recreate", put("spec/strategy", {"type": "Recreate"}), []),
    (
        "negative history limit",
        put("spec/revisionHistoryLimit", -1),
        [("spec.revisionHistoryLimit", INVALID)],
    ),
    (
        "deadline not after min ready",
        put("spec/progressDeadlineSeconds", 5),
        [("spec.progressDeadlineSeconds", INVALID)],
    ),
    (
        "template outside expression",
        put("spec/template/metadata/labels/tier", "back"),
        [("spec.template.metadata.labels", INVALID)],
    ),
    (
        "bad selector key",
        put("spec/selector/matchLabels", {"app": "web", "bad key": "x"}),
        [("spec.selector.matchLabels", INVALID), ("spec.selector", INVALID)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in DEPLOY_CASES], ids=[c[0] for c in DEPLOY_CASES]
)
def test_deployment(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Deployment", mutation) == expected


@pytest.mark.parametrize("kind", ["ReplicaSet", "Deployment"])
def test_selector_is_immutable(kind: str) -> None:
    assert update_causes(
        kind,
        put("spec/selector/matchLabels/app", "api"),
        put("spec/template/metadata/labels/app", "api"),
    ) == [("spec.selector", INVALID)]


@pytest.mark.parametrize("kind", ["ReplicaSet", "Deployment", "ReplicationController"])
def test_scaling_and_new_template_are_allowed(kind: str) -> None:
    assert (
        update_causes(
            kind, put("spec/replicas", 7), put("spec/template/spec/containers/0/image", "web:2")
        )
        == []
    )


def test_valid_objects() -> None:
    assert validate("ReplicationController", replication_controller()) == []
    assert validate("Deployment", deployment()) == []


def test_selector_mismatch_message() -> None:
    [cause] = validate(
        "ReplicationController",
        mutated("ReplicationController", put("spec/selector", {"app": "api"})),
    )
    assert cause.message == (
        'Invalid value: map[string]string{"app":"web", "tier":"front"}: '
        "`selector` does not match template `labels`"
    )


def test_both_zero_message() -> None:
    [cause] = validate(
        "Deployment", mutated("Deployment", put(RU, {"maxSurge": 0, "maxUnavailable": 0}))
    )
    assert cause.message == "Invalid value: 0: may not be 0 when `maxSurge` is 0"


def test_immutable_selector_message() -> None:
    old = deployment()
    new = mutated(
        "Deployment",
        put("spec/selector", {"matchLabels": {"app": "web", "tier": "front"}}),
    )
    [cause] = validate("Deployment", new, old)
    assert cause.message.endswith(": field is immutable")
