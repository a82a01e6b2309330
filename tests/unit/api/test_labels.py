"""Label selectors: string grammar, object form, matching and printing.

Expected behaviour is Kubernetes' (apimachinery pkg/labels/selector.go and
its selector_test.go), including its surprises.
"""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.labels import (
    EVERYTHING,
    NOTHING,
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    parse_label_selector,
    selector_from_dict,
    selector_from_set,
)

# (selector text, its canonical string form)
PARSE_OK = [
    ("", ""),
    ("x=a,y=b,z=c", "x=a,y=b,z=c"),
    ("x!=a,y=b", "x!=a,y=b"),
    ("x==a", "x==a"),
    ("x=", "x="),
    ("x= ", "x="),
    ("x=,z= ", "x=,z="),
    ("!x", "!x"),
    ("x", "x"),
    ("  a  ,  !b ", "a,!b"),
    ("x>1", "x>1"),
    ("x>1,z<5", "x>1,z<5"),
    ("notin=in", "notin=in"),
    ("in in (in)", "in in (in)"),
    ("b=1,a=2", "a=2,b=1"),
    ("a in (b, c)", "a in (b,c)"),
    ("a in (c,b,c)", "a in (b,c)"),
    ("a\tnotin\t(x)", "a notin (x)"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("x in (a,)", "x in (,a)"),
    ("x in (,a)", "x in (,a)"),
    ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
    ("MyKey=MyValue", "MyKey=MyValue"),
    ("k=" + "v" * 63, "k=" + "v" * 63),
    # Go's lexer takes a NUL byte for the end of the input.
    ("a=b \x00c=d", "a=b"),
]


@pytest.mark.parametrize(("text", "canonical"), PARSE_OK)
def test_parse_accepts_and_prints_canonically(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


# (selector text, a fragment of the Kubernetes error message)
PARSE_BAD = [
    ("a=b,", "found '', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a,,b", "found ',', expected: identifier after ','"),
    ("x=a||y=b", 'values[0][x]: Invalid value: "a||y"'),
    ("x==a==b", "found '==', expected: ',' or 'end of string'"),
    ("!x=a", "found '=', expected: ',' or 'end of string'"),
    ("x<a", "for 'Gt', 'Lt' operators, the value must be an integer"),
    ("a>-5", 'Invalid value: "-5"'),
    ("a>99999999999999999999", "the value must be an integer"),
    ("a in (b", "found '', expected: ',' or ')'"),
    ("a in b", "found 'b' expected: '('"),
    ("a in (b c)", "found 'c', expected: ',' or ')'"),
    ("a b", "found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a!", "found '!', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=(b)", "found '(', expected: identifier"),
    ("!", "found '', expected: identifier"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("k=" + "v" * 64, "must be no more than 63 characters"),
    ("Example.com/key=x", "prefix part a lowercase RFC 1123 subdomain"),
    ("a/b/c=x", "a qualified name must consist of"),
    ('x=="abc"', 'Invalid value: "\\"abc\\""'),
]


@pytest.mark.parametrize(("text", "message"), PARSE_BAD)
def test_parse_rejects_like_kubernetes(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert message in str(caught.value)


def test_requirement_errors_are_prefixed() -> None:
    with pytest.raises(SelectorError, match=r"^unable to parse requirement: "):
        parse_label_selector("a in (b")


def test_in_with_empty_parens_means_the_empty_value() -> None:
    selector = parse_label_selector("x in ()")
    assert selector.requirements == (Requirement("x", Operator.IN, ("",)),)
    assert selector.matches({"x": ""})
    assert not selector.matches({"x": "a"})
    assert not selector.matches({})


# (selector text, labels, expected match)
MATCHES = [
    ("", {"x": "y"}, True),
    ("", None, True),
    ("x=y", {"x": "y"}, True),
    ("x=y", {"x": "z"}, False),
    ("x=y", {}, False),
    ("x==y", {"x": "y"}, True),
    ("x=", {"x": ""}, True),
    ("x=", {}, False),
    ("x!=y", {}, True),
    ("x!=y", {"x": "y"}, False),
    ("x!=y", {"x": "z"}, True),
    ("x in (a,b)", {"x": "b"}, True),
    ("x in (a,b)", {"x": "c"}, False),
    ("x notin (a,b)", {}, True),
    ("x notin (a,b)", {"x": "a"}, False),
    ("x", {"x": ""}, True),
    ("x", {"y": "x"}, False),
    ("!x", {"y": "x"}, True),
    ("!x", {"x": "y"}, False),
    ("x>1", {"x": "2"}, True),
    ("x>1", {"x": "1"}, False),
    ("x>1", {"x": "abc"}, False),
    ("x>1", {}, False),
    ("x<5", {"x": "-7"}, True),
    ("x<5", {"x": "1_0"}, False),
    ("x>1", {"x": "9" * 5000}, False),
    ("x>1", {"x": "0" * 5000 + "2"}, True),
    ("x=y,z=w", {"x": "y", "z": "w"}, True),
    ("x=y,z=w", {"x": "y", "z": "v"}, False),
    ("notin=in", {"notin": "in"}, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHES)
def test_matches(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


# (selector text, expected exact matches)
EXACT = [
    ("", {}),
    ("a=x,b!=y,c in (z),d in (p,q),e", {"a": "x", "c": "z"}),
    ("a==x", {"a": "x"}),
    ("a!=x,a=y", {"a": "y"}),
    # Contradictory terms: the first one (in key, then written, order) wins.
    ("a=x,a==y", {"a": "x"}),
]


@pytest.mark.parametrize(("text", "expected"), EXACT)
def test_exact_matches(text: str, expected: dict[str, str]) -> None:
    assert parse_label_selector(text).exact_matches() == expected


# (selector object or None, labels, expected match)
FROM_DICT: list[tuple[dict[str, Any] | None, dict[str, str], bool]] = [
    (None, {}, False),
    (None, {"a": "b"}, False),
    ({}, {}, True),
    ({"matchLabels": {}, "matchExpressions": []}, {"a": "b"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    (
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
        {"tier": "b"},
        True,
    ),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": ""}, False),
]


@pytest.mark.parametrize(("obj", "labels", "expected"), FROM_DICT)
def test_selector_from_dict_matches(
    obj: dict[str, Any] | None, labels: dict[str, str], expected: bool
) -> None:
    assert selector_from_dict(obj).matches(labels) is expected


def test_selector_from_dict_none_and_empty_are_distinct() -> None:
    assert selector_from_dict(None) == NOTHING
    assert not NOTHING.is_empty()
    assert selector_from_dict({}) == EVERYTHING
    assert EVERYTHING.is_empty()
    assert selector_from_dict(None, if_none=EVERYTHING) == EVERYTHING


def test_selector_from_dict_prints_and_sorts_like_kubernetes() -> None:
    selector = selector_from_dict(
        {
            "matchLabels": {"zone": "a", "app": "web"},
            "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod", "dev"]}],
        }
    )
    assert str(selector) == "app=web,env notin (dev,prod),zone=a"
    assert selector.exact_matches() == {"app": "web", "zone": "a"}


# (selector object, a fragment of the error message)
FROM_DICT_BAD = [
    (
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        "for 'in', 'notin' operators, values set can't be empty",
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "NotIn"}]},
        "for 'in', 'notin' operators, values set can't be empty",
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        "values set must be empty for exists and does not exist",
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
        '"Gt" is not a valid label selector operator',
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]},
        '"in" is not a valid label selector operator',
    ),
    ({"matchLabels": {"a/b/c": "x"}}, 'key: Invalid value: "a/b/c"'),
    ({"matchLabels": {"app": "has space"}}, 'values[0][app]: Invalid value: "has space"'),
    ({"matchLabels": {"app": 3}}, "must be a string"),
    ({"matchLabels": ["app"]}, "matchLabels: must be an object"),
]


@pytest.mark.parametrize(("obj", "message"), FROM_DICT_BAD)
def test_selector_from_dict_rejects(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        selector_from_dict(obj)
    assert message in str(caught.value)


def test_several_value_errors_are_aggregated() -> None:
    with pytest.raises(SelectorError) as caught:
        selector_from_dict(
            {"matchExpressions": [{"key": "k", "operator": "In", "values": ["-x", "y z"]}]}
        )
    message = str(caught.value)
    assert message.startswith("[values[0][k]: ")
    assert ", values[1][k]: " in message
    assert message.endswith("]")


# (label set, selector string, labels it must match, labels it must not)
FROM_SET = [
    (None, "", {}, None),
    ({}, "", {"a": "b"}, None),
    ({"b": "2", "a": "1"}, "a=1,b=2", {"a": "1", "b": "2", "c": "3"}, {"a": "1"}),
]


@pytest.mark.parametrize(("labels", "text", "good", "bad"), FROM_SET)
def test_selector_from_set(
    labels: dict[str, str] | None,
    text: str,
    good: dict[str, str],
    bad: dict[str, str] | None,
) -> None:
    selector = selector_from_set(labels)
    assert str(selector) == text
    assert selector.matches(good)
    if bad is not None:
        assert not selector.matches(bad)


def test_selector_from_set_validates() -> None:
    with pytest.raises(SelectorError, match="must be no more than 63 characters"):
        selector_from_set({"app": "v" * 64})


def test_selectors_are_immutable_values() -> None:
    first = parse_label_selector("b=2,a=1")
    second = parse_label_selector("a=1, b=2")
    assert first == second
    assert hash(first) == hash(second)
    assert isinstance(first, LabelSelector)
    with pytest.raises(AttributeError):
        first.match_nothing = True  # type: ignore[misc]
