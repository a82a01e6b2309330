"""A request's query string, parsed once, for every layer that must agree on it.

The in-flight limiter, authorization, audit, admission and the handlers all
read the one ``Query`` that ``request_query`` parses from the ASGI scope and keeps
there. Two readings of the same URL (one taking the first value of a
repeated parameter, another the last; one dropping blank values, another
keeping them) let a request be authorized as one thing and served as
another: ``fieldSelector=metadata.name%3Dx&fieldSelector=`` was allowed as a
read of the Secret ``x`` and answered with every Secret in the namespace.

The rules, the same for every reader:

- A parameter that Kubernetes takes once (every one but ``LIST_VALUED``)
  given more than once, blank or not, is a 400 naming it: there is no
  "which one wins" left to disagree about.
- A blank single value (``fieldSelector=``, ``watch=``) means the same as
  leaving the parameter out.
- List-valued parameters keep every value, blank ones too (an empty
  argument to ``exec``'s ``command`` is an argument; ``dryRun=`` is an
  unsupported dry-run value, refused by the handler as Kubernetes does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from types import MappingProxyType
from typing import Any, Final, overload
from urllib.parse import parse_qsl

from corral.api import errors
from corral.api.errors import ApiError, Cause

# Parameters Kubernetes reads as lists: ``dryRun=All``, exec's and attach's
# ``command=sh&command=-c``, port-forward's ``ports``.
LIST_VALUED: Final = frozenset(("dryRun", "command", "ports"))

SCOPE_KEY: Final = "corral.query"

# How a boolean parameter (``watch=true``) reads as true, for authorization
# and the handler alike: were they to differ, a request could be authorized
# as a list and served as a watch.
TRUE: Final = ("true", "1", "yes")


def _repeated(name: str) -> ApiError:
    message = "given more than once; it takes a single value"
    return errors.bad_request(
        f"invalid query parameter {name}: {message}",
        [Cause("FieldValueDuplicate", message, name)],
    )


class Query:
    """The parsed parameters of one request: immutable, one value per single parameter."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, tuple[str, ...]]) -> None:
        self._values = MappingProxyType(values)

    @classmethod
    def parse(cls, raw: bytes | str) -> Query:
        """The query of a URL (the bytes after ``?``); a repeated single parameter is a 400."""
        text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        return cls.from_pairs(parse_qsl(text, keep_blank_values=True))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Query:
        values: dict[str, list[str]] = {}
        for name, value in pairs:
            seen = values.setdefault(name, [])
            if seen and name not in LIST_VALUED:
                raise _repeated(name)
            seen.append(value)
        return cls({name: tuple(found) for name, found in values.items()})

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of a single-valued parameter; ``default`` when absent or blank."""
        if name in LIST_VALUED:
            raise ValueError(f"{name} is list-valued: read it with getlist")
        found = self._values.get(name)
        if not found or found[0] == "":
            return default
        return found[0]

    def text(self, name: str) -> str:
        """The value of a single-valued parameter, or "" when absent or blank."""
        return self.get(name) or ""

    def flag(self, name: str) -> bool:
        """Whether a boolean parameter is set to true; absent or blank is false."""
        return self.text(name).lower() in TRUE

    def getlist(self, name: str) -> tuple[str, ...]:
        """Every value of a parameter, in order, blank ones included."""
        return self._values.get(name, ())

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __repr__(self) -> str:
        return f"Query({dict(self._values)!r})"


EMPTY: Final = Query({})


def request_query(scope: MutableMapping[str, Any]) -> Query:
    """The request's parsed query: parsed on first use, then the same object (or error)."""
    cached = scope.get(SCOPE_KEY)
    if cached is None:
        try:
            cached = Query.parse(scope.get("query_string") or b"")
        except ApiError as error:
            cached = error
        scope[SCOPE_KEY] = cached
    if isinstance(cached, ApiError):
        raise cached
    assert isinstance(cached, Query)
    return cached
