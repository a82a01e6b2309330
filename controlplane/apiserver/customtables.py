"""Tables of custom kinds: a CRD's additionalPrinterColumns, as ``kubectl get`` shows them.

A column's ``jsonPath`` is the simple JSONPath Kubernetes allows there:
fields (``.spec.replicas``), indexes (``.spec.ports[0]``) and equality
filters (``.status.conditions[?(@.type=="Ready")].status``). Cells follow
kube-apiserver's table convertor: ``date`` columns show an age, a path that
finds nothing leaves the cell empty.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from controlplane.apiserver.tables import AGE, NAME, Cell, Column, Printer, age
from corral.api.resources import ResourceType
from corral.objects import Obj, meta, name_of

_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-]+)"""
    r"""|\[(?P<index>-?\d+)\]"""
    r"""|\[\?\(@\.(?P<key>[A-Za-z0-9_\-.]+)\s*==\s*(?P<quote>["'])(?P<value>.*?)(?P=quote)\)\]"""
    r"""|\[\*\]"""
)


class JsonPathError(ValueError):
    pass


def parse_json_path(path: str) -> list[tuple[str, Any]]:
    """``.a.b[0]`` as steps: ("field", "a"), ("field", "b"), ("index", 0)."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    steps: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise JsonPathError(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        if match.group("field") is not None:
            steps.append(("field", match.group("field")))
        elif match.group("index") is not None:
            steps.append(("index", int(match.group("index"))))
        elif match.group("key") is not None:
            steps.append(("filter", (match.group("key"), match.group("value"))))
        else:
            steps.append(("all", None))
        position = match.end()
    return steps


def evaluate(obj: Any, steps: list[tuple[str, Any]]) -> list[Any]:
    """Every value the steps reach from ``obj``."""
    current = [obj]
    for kind, argument in steps:
        following: list[Any] = []
        for value in current:
            following.extend(_step(value, kind, argument))
        current = following
    return current


def _step(value: Any, kind: str, argument: Any) -> list[Any]:
    if kind == "field":
        return [value[argument]] if isinstance(value, dict) and argument in value else []
    if not isinstance(value, list):
        return []
    if kind == "index":
        return [value[argument]] if -len(value) <= argument < len(value) else []
    if kind == "all":
        return list(value)
    key, wanted = argument
    steps = [("field", part) for part in key.split(".")]
    return [item for item in value if [str(v) for v in evaluate(item, steps)] == [wanted]]


def _cell(values: list[Any], column_type: str, now: datetime) -> Cell | None:
    if not values:
        return None
    value = values[0]
    if column_type == "date" and isinstance(value, str):
        return age(value, now)
    if column_type == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list) or len(values) > 1:
        import orjson  # only for the rare structured cell

        shown = values if len(values) > 1 else value
        return orjson.dumps(shown).decode()
    return str(value) if not isinstance(value, int | float) else value  # type: ignore[return-value]


def custom_printer(rt: ResourceType) -> Printer | None:
    """The printer of a custom kind's version; None for a built-in kind."""
    if rt.custom is None:
        return None
    if not rt.custom.printer_columns:
        return Printer((NAME, AGE), _name_and_age)
    columns = rt.custom.printer_columns
    parsed: list[list[tuple[str, Any]] | None] = []
    for column in columns:
        try:
            parsed.append(parse_json_path(column.json_path))
        except JsonPathError:
            parsed.append(None)
    definitions = (
        NAME,
        *(
            Column(
                c.name, c.priority, c.type if c.type != "date" else "date", c.format, c.description
            )
            for c in columns
        ),
    )

    def row(obj: Obj, now: datetime) -> list[Cell]:
        cells: list[Any] = [name_of(obj)]
        for column, steps in zip(columns, parsed, strict=True):
            cells.append(None if steps is None else _cell(evaluate(obj, steps), column.type, now))
        return cells

    return Printer(definitions, row)


def _name_and_age(obj: Obj, now: datetime) -> list[Cell]:
    return [name_of(obj), age(meta(obj).get("creationTimestamp"), now)]
