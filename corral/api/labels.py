"""Label selectors, in both their string form and their API object form.

The string grammar, the validation and the matching rules are those of
apimachinery's ``pkg/labels/selector.go``; the object form follows
``metav1.LabelSelectorAsSelector``. Error messages keep Kubernetes' wording
so that users recognise them, for example::

    unable to parse requirement: found '', expected: ',', or identifier

A selector is immutable. Two selectors are special:

- ``EVERYTHING`` (no requirements) matches every object. It is what an empty
  string or an empty ``{}`` selector means.
- ``NOTHING`` matches no object. It is what ``LabelSelectorAsSelector``
  makes of an absent (``null``) selector object.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.api.validation import is_qualified_name, is_valid_label_value

__all__ = [
    "EVERYTHING",
    "NOTHING",
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "parse_label_selector",
    "selector_from_dict",
    "selector_from_set",
]


class SelectorError(ValueError):
    """A label or field selector that Kubernetes would refuse."""


class Operator(enum.StrEnum):
    """Selection operators, spelled as apimachinery's ``selection.Operator``."""

    DOES_NOT_EXIST = "!"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    IN = "in"
    NOT_EQUALS = "!="
    NOT_IN = "notin"
    EXISTS = "exists"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_BINARY_OPERATORS = (
    Operator.IN,
    Operator.NOT_IN,
    Operator.EQUALS,
    Operator.DOUBLE_EQUALS,
    Operator.NOT_EQUALS,
    Operator.GREATER_THAN,
    Operator.LESS_THAN,
)
_EXACT_OPERATORS = frozenset({Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN})

# metav1.LabelSelectorOperator -> selection.Operator; Gt/Lt and the equality
# operators are deliberately absent, as in LabelSelectorAsSelector.
_API_OPERATORS: dict[str, Operator] = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}

_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _parse_int64(text: str) -> int | None:
    # strconv.ParseInt(s, 10, 64): no underscores, spaces or non-ASCII digits,
    # all of which Python's int() would accept.
    if not _INT64_RE.fullmatch(text):
        return None
    # Refused by length before int() sees it: Python will not convert
    # strings of more than 4300 digits.
    significant = text.lstrip("+-").lstrip("0")
    if len(significant) > 19:
        return None
    value = int(significant or "0")
    if text[0] == "-":
        value = -value
    if value < _INT64_MIN or value > _INT64_MAX:
        return None
    return value


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ANDed term of a selector: a key, an operator and its values.

    Build requirements through the parsing functions, which validate them;
    constructing one directly skips validation, like Go's struct literal.
    """

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int64(labels[self.key])
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op is Operator.GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({values})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{values}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """An AND of requirements, or the selector that matches nothing.

    ``requirements`` is kept sorted by key, as Kubernetes keeps it, so equal
    selectors compare equal and print identically.
    """

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.match_nothing:
            return False
        have = labels if labels is not None else {}
        return all(r.matches(have) for r in self.requirements)

    def is_empty(self) -> bool:
        """True when the selector does not restrict anything (``EVERYTHING``)."""
        return not self.match_nothing and not self.requirements

    def exact_matches(self) -> dict[str, str]:
        """Labels every matching object must carry with exactly these values.

        These come from ``k=v``, ``k==v`` and single-valued ``k in (v)`` terms,
        so a caller may narrow a search through a label index with them and
        then apply ``matches`` to what the index returns.
        """
        if self.match_nothing:
            return {}
        found: dict[str, str] = {}
        for r in self.requirements:
            if r.operator in _EXACT_OPERATORS and len(r.values) == 1:
                found.setdefault(r.key, r.values[0])
        return found

    def __str__(self) -> str:
        if self.match_nothing:
            return ""
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(match_nothing=True)


def _sorted_by_key(requirements: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(requirements, key=lambda r: r.key))


def _go_quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _aggregate(messages: list[str]) -> str:
    # utilerrors.Aggregate: duplicates dropped, several errors bracketed.
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


def _key_error(path: str, key: str) -> str | None:
    errs = is_qualified_name(key)
    if not errs:
        return None
    where = f"{path}: " if path else ""
    return f"{where}Invalid value: {_go_quote(key)}: {'; '.join(errs)}"


def _new_requirement(key: str, op: Operator, values: Sequence[str]) -> Requirement:
    """Validate a requirement the way ``labels.NewRequirement`` does."""
    errors: list[str] = []
    key_error = _key_error("key", key)
    if key_error:
        errors.append(key_error)

    shown = json.dumps(list(values), ensure_ascii=False)
    if op in (Operator.IN, Operator.NOT_IN):
        if not values:
            errors.append(
                f"values: Invalid value: {shown}: "
                "for 'in', 'notin' operators, values set can't be empty"
            )
    elif op in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
        if len(values) != 1:
            errors.append(
                f"values: Invalid value: {shown}: "
                "exact-match compatibility requires one single value"
            )
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        if values:
            errors.append(
                f"values: Invalid value: {shown}: "
                "values set must be empty for exists and does not exist"
            )
    elif op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        if len(values) != 1:
            errors.append(
                f"values: Invalid value: {shown}: "
                "for 'Gt', 'Lt' operators, exactly one value is required"
            )
        for i, value in enumerate(values):
            if _parse_int64(value) is None:
                errors.append(
                    f"values[{i}]: Invalid value: {_go_quote(value)}: "
                    "for 'Gt', 'Lt' operators, the value must be an integer"
                )

    for i, value in enumerate(values):
        value_errs = is_valid_label_value(value)
        if value_errs:
            errors.append(
                f"values[{i}][{key}]: Invalid value: {_go_quote(value)}: {'; '.join(value_errs)}"
            )

    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key=key, operator=op, values=tuple(values))


# --- the string form ---------------------------------------------------------


class _Tok(enum.Enum):
    END = enum.auto()
    CLOSED_PAR = enum.auto()
    COMMA = enum.auto()
    DOES_NOT_EXIST = enum.auto()
    DOUBLE_EQUALS = enum.auto()
    EQUALS = enum.auto()
    GREATER_THAN = enum.auto()
    IDENTIFIER = enum.auto()
    IN = enum.auto()
    LESS_THAN = enum.auto()
    NOT_EQUALS = enum.auto()
    NOT_IN = enum.auto()
    OPEN_PAR = enum.auto()


_SYMBOLS: dict[str, _Tok] = {
    ")": _Tok.CLOSED_PAR,
    ",": _Tok.COMMA,
    "!": _Tok.DOES_NOT_EXIST,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GREATER_THAN,
    "<": _Tok.LESS_THAN,
    "!=": _Tok.NOT_EQUALS,
    "(": _Tok.OPEN_PAR,
}
_KEYWORDS: dict[str, _Tok] = {"in": _Tok.IN, "notin": _Tok.NOT_IN}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
# Go's lexer reads a NUL byte as its end-of-input marker, so a NUL ends the
# selector at top level and silently ends an identifier or operator.
_NUL = "\x00"


def _lex(text: str) -> list[tuple[_Tok, str]]:
    items: list[tuple[_Tok, str]] = []
    pos = 0
    end = len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= end or text[pos] == _NUL:
            items.append((_Tok.END, ""))
            return items
        if text[pos] in _SPECIAL:
            literal = text[pos : pos + 2]
            if literal not in _SYMBOLS:
                literal = text[pos]
            items.append((_SYMBOLS[literal], literal))
            pos += len(literal)
        else:
            start = pos
            while pos < end and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
                if text[pos] == _NUL:
                    break
                pos += 1
            literal = text[start:pos]
            items.append((_KEYWORDS.get(literal, _Tok.IDENTIFIER), literal))
        if pos < end and text[pos] == _NUL:
            pos += 1


_KEY_AND_OPERATOR = 0
_VALUES = 1


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.position = 0

    def lookahead(self, context: int) -> tuple[_Tok, str]:
        return self._as(context, self.items[self.position])

    def consume(self, context: int) -> tuple[_Tok, str]:
        item = self.items[self.position]
        self.position += 1
        return self._as(context, item)

    @staticmethod
    def _as(context: int, item: tuple[_Tok, str]) -> tuple[_Tok, str]:
        # "in" and "notin" are ordinary identifiers wherever a key or a value
        # is expected, which is how "notin=in" parses.
        tok, literal = item
        if context == _VALUES and tok in (_Tok.IN, _Tok.NOT_IN):
            return _Tok.IDENTIFIER, literal
        return tok, literal

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, literal = self.lookahead(_VALUES)
            if tok in (_Tok.IDENTIFIER, _Tok.DOES_NOT_EXIST):
                try:
                    requirements.append(self.parse_requirement())
                except SelectorError as err:
                    raise SelectorError(f"unable to parse requirement: {err}") from None
                tok, literal = self.consume(_VALUES)
                if tok is _Tok.END:
                    return requirements
                if tok is _Tok.COMMA:
                    tok2, literal2 = self.lookahead(_VALUES)
                    if tok2 not in (_Tok.IDENTIFIER, _Tok.DOES_NOT_EXIST):
                        raise SelectorError(f"found '{literal2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            elif tok is _Tok.END:
                return requirements
            else:
                raise SelectorError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )

    def parse_requirement(self) -> Requirement:
        key, op = self.parse_key_and_infer_operator()
        if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            return _new_requirement(key, op, [])
        op = self.parse_operator()
        if op in (Operator.IN, Operator.NOT_IN):
            values = self.parse_values()
        else:
            values = self.parse_exact_value()
        return _new_requirement(key, op, sorted(values))

    def parse_key_and_infer_operator(self) -> tuple[str, Operator | None]:
        op: Operator | None = None
        tok, literal = self.consume(_VALUES)
        if tok is _Tok.DOES_NOT_EXIST:
            op = Operator.DOES_NOT_EXIST
            tok, literal = self.consume(_VALUES)
        if tok is not _Tok.IDENTIFIER:
            raise SelectorError(f"found '{literal}', expected: identifier")
        key_error = _key_error("", literal)
        if key_error:
            raise SelectorError(key_error)
        after, _ = self.lookahead(_VALUES)
        if after in (_Tok.END, _Tok.COMMA) and op is None:
            op = Operator.EXISTS
        return literal, op

    def parse_operator(self) -> Operator:
        tok, literal = self.consume(_KEY_AND_OPERATOR)
        operator = {
            _Tok.IN: Operator.IN,
            _Tok.EQUALS: Operator.EQUALS,
            _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
            _Tok.GREATER_THAN: Operator.GREATER_THAN,
            _Tok.LESS_THAN: Operator.LESS_THAN,
            _Tok.NOT_IN: Operator.NOT_IN,
            _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
        }.get(tok)
        if operator is None:
            expected = ", ".join(op.value for op in _BINARY_OPERATORS)
            raise SelectorError(f"found '{literal}', expected: {expected}")
        return operator

    def parse_values(self) -> set[str]:
        tok, literal = self.consume(_VALUES)
        if tok is not _Tok.OPEN_PAR:
            raise SelectorError(f"found '{literal}' expected: '('")
        tok, literal = self.lookahead(_VALUES)
        if tok in (_Tok.IDENTIFIER, _Tok.COMMA):
            values = self.parse_identifiers_list()
            tok, _ = self.consume(_VALUES)
            if tok is not _Tok.CLOSED_PAR:
                raise SelectorError(f"found '{literal}', expected: ')'")
            return values
        if tok is _Tok.CLOSED_PAR:
            # Kubernetes reads "k in ()" as the set holding the empty value.
            self.consume(_VALUES)
            return {""}
        raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")

    def parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, literal = self.consume(_VALUES)
            if tok is _Tok.IDENTIFIER:
                values.add(literal)
                tok2, literal2 = self.lookahead(_VALUES)
                if tok2 is _Tok.COMMA:
                    continue
                if tok2 is _Tok.CLOSED_PAR:
                    return values
                raise SelectorError(f"found '{literal2}', expected: ',' or ')'")
            if tok is _Tok.COMMA:
                # Around commas, a missing identifier is the empty value:
                # "(,a)", "(a,)" and "(a,,b)" all contain "".
                if not values:
                    values.add("")
                tok2, _ = self.lookahead(_VALUES)
                if tok2 is _Tok.CLOSED_PAR:
                    values.add("")
                    return values
                if tok2 is _Tok.COMMA:
                    self.consume(_VALUES)
                    values.add("")
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        tok, _ = self.lookahead(_VALUES)
        if tok in (_Tok.END, _Tok.COMMA):
            return {""}
        tok, literal = self.consume(_VALUES)
        if tok is _Tok.IDENTIFIER:
            return {literal}
        raise SelectorError(f"found '{literal}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the ``?labelSelector=`` string form; "" selects everything.

    Grammar (whitespace between tokens is ignored)::

        selector    ::= requirement ("," requirement)*
        requirement ::= ["!"] KEY
                      | KEY ("=" | "==" | "!=") VALUE
                      | KEY ("in" | "notin") "(" VALUE ("," VALUE)* ")"
                      | KEY (">" | "<") INTEGER

    Like Kubernetes, an empty value is allowed (``k=`` and ``k in (a,)``),
    ``k in ()`` means ``k in ("")``, and a trailing comma is an error.
    """
    return LabelSelector(requirements=_sorted_by_key(_Parser(text).parse()))


# --- the object forms --------------------------------------------------------


def _expect_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SelectorError(f"{where}: must be a string, not {type(value).__name__}")
    return value


def selector_from_dict(
    obj: Mapping[str, Any] | None, *, if_none: LabelSelector = NOTHING
) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` object (``matchLabels``/``matchExpressions``).

    ``None`` gives ``if_none``, which defaults to ``NOTHING`` as in
    ``LabelSelectorAsSelector``; pass ``if_none=EVERYTHING`` for the fields
    whose documentation says an absent selector selects everything. An
    object with no terms (``{}``) selects everything.
    """
    if obj is None:
        return if_none
    if not isinstance(obj, Mapping):
        raise SelectorError(f"selector: must be an object, not {type(obj).__name__}")

    match_labels = obj.get("matchLabels") or {}
    match_expressions = obj.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels: must be an object of strings")
    if not isinstance(match_expressions, Sequence) or isinstance(match_expressions, str):
        raise SelectorError("matchExpressions: must be a list")
    if not match_labels and not match_expressions:
        return EVERYTHING

    requirements: list[Requirement] = []
    for key in sorted(match_labels, key=str):
        _expect_str(key, "matchLabels")
        value = _expect_str(match_labels[key], f"matchLabels[{key}]")
        requirements.append(_new_requirement(key, Operator.EQUALS, [value]))

    for i, expr in enumerate(match_expressions):
        where = f"matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            raise SelectorError(f"{where}: must be an object")
        # Absent fields read as Go's zero values, so that a missing operator
        # is reported as "" rather than as a shape error.
        key = _expect_str(expr.get("key") or "", f"{where}.key")
        operator_name = _expect_str(expr.get("operator") or "", f"{where}.operator")
        raw_values = expr.get("values") or []
        if not isinstance(raw_values, Sequence) or isinstance(raw_values, str):
            raise SelectorError(f"{where}.values: must be a list of strings")
        values = [_expect_str(v, f"{where}.values[{j}]") for j, v in enumerate(raw_values)]
        op = _API_OPERATORS.get(operator_name)
        if op is None:
            raise SelectorError(
                f"{_go_quote(operator_name)} is not a valid label selector operator"
            )
        requirements.append(_new_requirement(key, op, values))

    return LabelSelector(requirements=_sorted_by_key(requirements))


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """Selector requiring each of ``labels`` (a Service's or RC's ``selector`` map).

    Validated like ``ValidatedSelectorFromSet``; ``None`` or ``{}`` selects
    everything, so callers that treat an empty map as "select nothing" must
    check for that themselves.
    """
    if not labels:
        return EVERYTHING
    return LabelSelector(
        requirements=_sorted_by_key(
            _new_requirement(key, Operator.EQUALS, [value]) for key, value in labels.items()
        )
    )
