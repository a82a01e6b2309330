"""YAML request bodies whose decoded size follows from their text.

An alias makes a node appear again wherever it is named, so a few hundred
bytes of anchors and aliases nested a few levels deep stand for gigabytes
once anything walks the result (CVE-2019-11253, the "billion laughs").
No Kubernetes object needs an alias, so a body that holds one (or an anchor,
which only exists to be aliased) is refused outright rather than expanded
under a budget. Nesting is bounded too: the pure-Python composer recurses
once per level, and a few bytes per level (``- - - - x``) would otherwise
reach the interpreter's recursion limit.

libyaml's C scanner and parser (``yaml._yaml.CParser``) tokenize the text when
PyYAML was built with it; only composing (where aliases and depth are
checked) and constructing run in Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, Event
from yaml.nodes import Node
from yaml.resolver import Resolver

# Deeper than any Kubernetes object (a CRD's nested schema included), well
# short of Python's recursion limit, and below orjson's 254 so whatever is
# accepted can also be stored.
MAX_DEPTH = 100

ALIASES_REFUSED = "YAML anchors and aliases are not allowed in a request body"

WITH_LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))


class AliasRefused(yaml.MarkedYAMLError):
    """The body uses an anchor or an alias."""


class TooDeep(yaml.MarkedYAMLError):
    """The body nests collections more than MAX_DEPTH deep."""


class _StrictComposer(Composer):
    """Composes nodes as PyYAML does, but refuses aliases and anchors and bounds depth."""

    _depth: int = 0

    if TYPE_CHECKING:
        # The parser's, which every loader below mixes in.
        def peek_event(self) -> Event: ...

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        # libyaml's marks are its own class, which the errors print alike.
        where: Any = event.start_mark
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise AliasRefused(None, None, ALIASES_REFUSED, where)
        if self._depth >= MAX_DEPTH:
            raise TooDeep(None, None, f"the request body nests more than {MAX_DEPTH} levels", where)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


if WITH_LIBYAML:
    from yaml._yaml import CParser

    class BodyLoader(_StrictComposer, CParser, SafeConstructor, Resolver):
        """libyaml's parser, then the strict composer and the safe constructor."""

        def __init__(self, stream: str | bytes) -> None:
            # The composer comes first in the MRO so its Python get_single_node
            # (and so compose_node, above) replaces CParser's C composer.
            CParser.__init__(self, stream)
            _StrictComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover - PyYAML wheels ship libyaml; a source build may not

    class BodyLoader(  # type: ignore[no-redef]
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        _StrictComposer,
        SafeConstructor,
        Resolver,
    ):
        """The pure-Python reader, scanner and parser: slower, and as strict."""

        def __init__(self, stream: str | bytes) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            _StrictComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def load(text: str | bytes) -> Any:
    """One YAML document, or an AliasRefused, TooDeep or other YAMLError."""
    loader = BodyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
