"""Container resources: names, quantities, requests against limits."""

from __future__ import annotations

import pytest

from .builders import FORBIDDEN, INVALID, REQUIRED, Mutation, causes_of, mutated, put, validate

R = "spec/containers/0/resources"
P = "spec.containers[0].resources"

CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("request above limit", put(f"{R}/requests/cpu", "1"), [(f"{P}.requests", INVALID)]),
    ("request equal to limit", put(f"{R}/requests/memory", "256Mi"), []),
    ("equal in other units", put(f"{R}/requests/cpu", "0.5"), []),
    ("negative request", put(f"{R}/requests/cpu", "-100m"), [(f"{P}.requests[cpu]", INVALID)]),
    ("integer quantity", put(f"{R}/limits/cpu", 2), []),
    (
        "unknown resource",
        put(f"{R}/requests/gpu", "1"),
        [(f"{P}.requests[gpu]", INVALID), (f"{P}.requests[gpu]", INVALID)],
    ),
    (
        "pods is not a container resource",
        put(f"{R}/requests/pods", "1"),
        [(f"{P}.requests[pods]", INVALID)],
    ),
    (
        "extended resource needs equal limit",
        put(f"{R}/requests/example.com~1gpu", "1"),
        [(f"{P}.limits", REQUIRED)],
    ),
    (
        "extended resource request and limit",
        put(f"{R}", {"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "1"}}),
        [],
    ),
    (
        "extended resource over-requested",
        put(f"{R}", {"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}}),
        [(f"{P}.requests", INVALID)],
    ),
    (
        "fractional extended resource",
        put(f"{R}", {"limits": {"example.com/gpu": "500m"}}),
        [(f"{P}.limits[example.com/gpu]", INVALID)],
    ),
    (
        "bad extended resource name",
        put(f"{R}/limits/example.com~1-gpu", "1"),
        # Not a qualified name, and so not an extended resource name either.
        [(f"{P}.limits[example.com/-gpu]", INVALID)] * 2,
    ),
    ("native prefixed resource", put(f"{R}/limits/kubernetes.io~1thing", "1"), []),
    (
        "hugepages alone",
        put(f"{R}", {"limits": {"hugepages-2Mi": "4Mi"}}),
        [(P, FORBIDDEN)],
    ),
    (
        "hugepages not a page multiple",
        put(f"{R}/limits/hugepages-2Mi", "3Mi"),
        [(f"{P}.limits[hugepages-2Mi]", INVALID)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_resources(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Pod", mutation) == expected


def test_request_above_limit_message() -> None:
    [cause] = validate("Pod", mutated("Pod", put(f"{R}/requests/cpu", "1")))
    assert cause.message == 'Invalid value: "1": must be less than or equal to cpu limit of 500m'


def test_negative_quantity_message() -> None:
    [cause] = validate("Pod", mutated("Pod", put(f"{R}/requests/memory", "-1Gi")))
    assert cause.message == 'Invalid value: "-1Gi": must be greater than or equal to 0'
