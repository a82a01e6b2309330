"""Tolerations, affinity and topology spread constraints."""

from __future__ import annotations

import pytest

from .builders import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    REQUIRED,
    Mutation,
    append,
    causes_of,
    mutated,
    put,
    validate,
)

NA = "spec/affinity/nodeAffinity"
NAP = "spec.affinity.nodeAffinity"
REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"
EXPR = f"{NA}/{REQ}/nodeSelectorTerms/0/matchExpressions/0"
EXPRP = f"{NAP}.{REQ}.nodeSelectorTerms[0].matchExpressions[0]"

CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "exists toleration with value",
        put("spec/tolerations/0/value", "x"),
        [("spec.tolerations[0].operator", INVALID)],
    ),
    (
        "empty key needs Exists",
        append("spec/tolerations", {"operator": "Equal", "value": "x"}),
        [("spec.tolerations[1].operator", INVALID)],
    ),
    ("match-everything toleration", append("spec/tolerations", {"operator": "Exists"}), []),
    (
        "tolerationSeconds without NoExecute",
        put("spec/tolerations/0/effect", "NoSchedule"),
        [("spec.tolerations[0].effect", INVALID)],
    ),
    (
        "bad toleration value",
        append("spec/tolerations", {"key": "k", "operator": "Equal", "value": "a b"}),
        [("spec.tolerations[1].operator", INVALID)],
    ),
    (
        "bad toleration key",
        put("spec/tolerations/0/key", "bad key"),
        [("spec.tolerations[0].key", INVALID)],
    ),
    ("In without values", put(f"{EXPR}/values", []), [(f"{EXPRP}.values", REQUIRED)]),
    (
        "Exists with values",
        put(f"{EXPR}/operator", "Exists"),
        [(f"{EXPRP}.values", FORBIDDEN)],
    ),
    (
        "Gt with two values",
        put(f"{EXPR}", {"key": "cores", "operator": "Gt", "values": ["1", "2"]}),
        [(f"{EXPRP}.values", REQUIRED)],
    ),
    (
        "Lt with a word",
        put(f"{EXPR}", {"key": "cores", "operator": "Lt", "values": ["many"]}),
        [(f"{EXPRP}.values[0]", INVALID)],
    ),
    (
        "bad label value in required term",
        put(f"{EXPR}/values/0", "a b"),
        [(f"{EXPRP}.values[0]", INVALID)],
    ),
    (
        "no node selector terms",
        put(f"{NA}/{REQ}/nodeSelectorTerms", []),
        [(f"{NAP}.{REQ}.nodeSelectorTerms", REQUIRED)],
    ),
    ("zero weight", put(f"{NA}/{PREF}/0/weight", 0), [(f"{NAP}.{PREF}[0].weight", INVALID)]),
    (
        "matchFields on a label",
        put(
            f"{NA}/{REQ}/nodeSelectorTerms/0/matchFields",
            [{"key": "metadata.labels", "operator": "In", "values": ["a"]}],
        ),
        [(f"{NAP}.{REQ}.nodeSelectorTerms[0].matchFields[0].key", INVALID)],
    ),
    (
        "anti-affinity weight over 100",
        put(f"spec/affinity/podAntiAffinity/{PREF}/0/weight", 101),
        [(f"spec.affinity.podAntiAffinity.{PREF}[0].weight", INVALID)],
    ),
    (
        "pod affinity without topology key",
        put(
            "spec/affinity/podAffinity",
            {REQ: [{"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": ""}]},
        ),
        [(f"spec.affinity.podAffinity.{REQ}[0].topologyKey", REQUIRED)]
        + [(f"spec.affinity.podAffinity.{REQ}[0].topologyKey", INVALID)] * 2,
    ),
    (
        "zero max skew",
        put(
            "spec/topologySpreadConstraints",
            [{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
        ),
        [("spec.topologySpreadConstraints[0].maxSkew", INVALID)],
    ),
    (
        "repeated spread constraint",
        put(
            "spec/topologySpreadConstraints",
            [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}] * 2,
        ),
        [("spec.topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}", DUPLICATE)],
    ),
    (
        "minDomains with ScheduleAnyway",
        put(
            "spec/topologySpreadConstraints",
            [
                {
                    "maxSkew": 1,
                    "topologyKey": "zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "minDomains": 2,
                }
            ],
        ),
        [("spec.topologySpreadConstraints[0].minDomains", INVALID)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_scheduling(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Pod", mutation) == expected


def test_exists_toleration_message() -> None:
    [cause] = validate("Pod", mutated("Pod", put("spec/tolerations/0/value", "x")))
    assert cause.message == "Invalid value: \"x\": value must be empty when `operator` is 'Exists'"


def test_weight_message() -> None:
    [cause] = validate("Pod", mutated("Pod", put(f"{NA}/{PREF}/0/weight", 0)))
    assert cause.message == "Invalid value: 0: must be in the range 1-100"
