"""How causes print values: as Go's fmt prints them in Kubernetes' field errors."""

from __future__ import annotations

import pytest

from corral.api.validate.field import (
    Raw,
    duplicate,
    forbidden,
    go_value,
    invalid,
    not_supported,
    required,
    too_long,
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("web", '"web"'),
        ('say "hi"', '"say \\"hi\\""'),
        (-1, "-1"),
        (True, "true"),
        (None, '"null"'),
        (Raw("25%"), "25%"),
        ({"b": "2", "a": "1"}, 'map[string]string{"a":"1", "b":"2"}'),
        (["x", "y"], '[]string{"x", "y"}'),
    ],
)
def test_go_value(value: object, shown: str) -> None:
    assert go_value(value) == shown


def test_cause_messages() -> None:
    assert required("a.b").message == "Required value"
    assert required("a.b", "why").message == "Required value: why"
    assert invalid("a", 3, "too big").message == "Invalid value: 3: too big"
    assert not_supported("a", "x", ["p", "q"]).message == (
        'Unsupported value: "x": supported values: "p", "q"'
    )
    assert duplicate("a", "x").message == 'Duplicate value: "x"'
    assert forbidden("a", "no").message == "Forbidden: no"
    assert too_long("a", 10).message == "Too long: must have at most 10 bytes"
    assert [c.reason for c in (required(""), invalid("", 1), not_supported("", 1, []))] == [
        "FieldValueRequired",
        "FieldValueInvalid",
        "FieldValueNotSupported",
    ]
