"""Field selectors (``?fieldSelector=metadata.name=web,status.phase!=Failed``).

Parsing follows apimachinery's ``pkg/fields/selector.go``: terms are split on
unescaped commas, each term on its first ``!=``, ``==`` or ``=``, and in a
value ``\\,``, ``\\=`` and ``\\\\`` stand for ``,``, ``=`` and ``\\``. Any other
backslash sequence, and any bare ``,`` or ``=`` left in a value, is an error.
Field names are not checked here: which fields may be selected on depends on
the resource, and the API server reports unsupported ones itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corral.api.labels import Operator, SelectorError

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "SelectorError",
    "escape_field_value",
    "parse_field_selector",
]


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``field=value`` (``==`` is read as ``=``) or ``field!=value``."""

    field: str
    operator: Operator
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        # An absent field reads as "", as with Go's fields.Set.Get.
        have = fields.get(self.field, "")
        if self.operator is Operator.NOT_EQUALS:
            return have != self.value
        return have == self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator.value}{escape_field_value(self.value)}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """An AND of field requirements; no requirements selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def is_empty(self) -> bool:
        return not self.requirements

    def fields(self) -> set[str]:
        """The field names the selector refers to."""
        return {r.field for r in self.requirements}

    def exact(self, field: str) -> str | None:
        """The value an ``=`` term requires of ``field``, if there is one.

        Lets the server turn ``metadata.name=x`` into a point lookup; the
        full selector must still be applied to what the lookup returns.
        """
        for r in self.requirements:
            if r.field == field and r.operator is Operator.EQUALS:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` so ``value`` can be put in a selector."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_terms(text: str) -> list[str]:
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, ch in enumerate(text):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


# "==" is tried before "=" at each position so that "a==b" does not leave a
# stray "=" at the front of the value.
_TERM_OPERATORS = (("!=", Operator.NOT_EQUALS), ("==", Operator.EQUALS), ("=", Operator.EQUALS))


def _split_term(term: str) -> tuple[str, Operator, str] | None:
    for i in range(len(term)):
        for symbol, op in _TERM_OPERATORS:
            if term.startswith(symbol, i):
                return term[:i], op, term[i + len(symbol) :]
    return None


def _unescape_value(value: str) -> str:
    if not any(ch in value for ch in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse the ``?fieldSelector=`` string form; "" selects everything.

    Empty terms are skipped, so a trailing comma is accepted. Whitespace is
    not trimmed: it is part of the field name or value, as in Kubernetes.
    Terms are ordered the way Kubernetes orders them (by their raw text).
    """
    requirements: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw_value = split
        requirements.append(FieldRequirement(field, op, _unescape_value(raw_value)))
    return FieldSelector(requirements=tuple(requirements))
