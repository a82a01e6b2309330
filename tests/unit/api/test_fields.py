"""Field selectors, as apimachinery's pkg/fields/selector.go parses them."""

from __future__ import annotations

import pytest

from corral.api.fields import (
    FieldRequirement,
    escape_field_value,
    parse_field_selector,
)
from corral.api.labels import Operator, SelectorError

EQ = Operator.EQUALS
NE = Operator.NOT_EQUALS

# (selector text, expected requirements in Kubernetes' order)
PARSE_OK = [
    ("", []),
    (",", []),
    ("metadata.name=web", [("metadata.name", EQ, "web")]),
    ("a==b", [("a", EQ, "b")]),
    ("a!=b", [("a", NE, "b")]),
    ("a=b,", [("a", EQ, "b")]),
    ("b=1,a=2", [("a", EQ, "2"), ("b", EQ, "1")]),
    ("a=", [("a", EQ, "")]),
    ("a==", [("a", EQ, "")]),
    ("a=x\\,y", [("a", EQ, "x,y")]),
    ("a=x\\=y", [("a", EQ, "x=y")]),
    ("a=x\\\\y", [("a", EQ, "x\\y")]),
    ("a=x\\,y,b!=z", [("a", EQ, "x,y"), ("b", NE, "z")]),
    ("a=b!c", [("a", EQ, "b!c")]),
    # Spaces belong to the name and the value; nothing is trimmed.
    (" a = b ", [(" a ", EQ, " b ")]),
    ("=", [("", EQ, "")]),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_OK)
def test_parse(text: str, expected: list[tuple[str, Operator, str]]) -> None:
    selector = parse_field_selector(text)
    assert [(r.field, r.operator, r.value) for r in selector.requirements] == expected


# (selector text, the error message)
PARSE_BAD = [
    ("a", "invalid selector: 'a'; can't understand 'a'"),
    ("a=x,y", "invalid selector: 'a=x,y'; can't understand 'y'"),
    ("a=b=c", "invalid field selector: unescaped character in value: ="),
    ("x!==y", "invalid field selector: unescaped character in value: ="),
    ("a=b\\!", "invalid field selector: invalid escape sequence: \\!"),
    ("a=b\\n", "invalid field selector: invalid escape sequence: \\n"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_BAD)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text)
    assert str(caught.value) == message


# (selector text, fields of the object, expected match)
MATCHES = [
    ("", {"a": "b"}, True),
    ("a=b", {"a": "b"}, True),
    ("a=b", {"a": "c"}, False),
    ("a=b", {}, False),
    ("a=", {}, True),
    ("a!=b", {}, True),
    ("a!=b", {"a": "b"}, False),
    ("a=x\\,y", {"a": "x,y"}, True),
    ("a=b,c!=d", {"a": "b", "c": "e"}, True),
    ("a=b,c!=d", {"a": "b", "c": "d"}, False),
]


@pytest.mark.parametrize(("text", "fields", "expected"), MATCHES)
def test_matches(text: str, fields: dict[str, str], expected: bool) -> None:
    assert parse_field_selector(text).matches(fields) is expected


# (selector text, field asked for, expected exact value)
EXACT = [
    ("metadata.name=web", "metadata.name", "web"),
    ("metadata.name==web", "metadata.name", "web"),
    ("metadata.name!=web", "metadata.name", None),
    ("metadata.namespace=x", "metadata.name", None),
    ("metadata.name=b,metadata.name=a", "metadata.name", "a"),
    ("spec.nodeName=n\\,1,status.phase=Running", "spec.nodeName", "n,1"),
]


@pytest.mark.parametrize(("text", "field", "expected"), EXACT)
def test_exact(text: str, field: str, expected: str | None) -> None:
    assert parse_field_selector(text).exact(field) == expected


def test_fields_lists_names_used() -> None:
    selector = parse_field_selector("status.phase!=Failed,metadata.name=a,metadata.name=b")
    assert selector.fields() == {"status.phase", "metadata.name"}


# (selector text, canonical form)
CANONICAL = [
    ("b==1,a!=2", "a!=2,b=1"),
    ("a=x\\,y\\=z\\\\", "a=x\\,y\\=z\\\\"),
    ("a=b,", "a=b"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_str_round_trips(text: str, canonical: str) -> None:
    selector = parse_field_selector(text)
    assert str(selector) == canonical
    assert parse_field_selector(str(selector)) == selector


def test_escape_field_value() -> None:
    raw = "a,b=c\\d!e"
    escaped = escape_field_value(raw)
    assert escaped == "a\\,b\\=c\\\\d!e"
    assert parse_field_selector(f"x={escaped}").requirements == (FieldRequirement("x", EQ, raw),)


def test_empty_selector_is_empty() -> None:
    assert parse_field_selector("").is_empty()
    assert not parse_field_selector("a=b").is_empty()
