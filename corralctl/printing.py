"""Output in kubectl's shapes: tables, wide tables, json, yaml and name."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

import orjson
import yaml

from corral.api.resources import ResourceType
from corral.objects import Obj, meta

OUTPUTS = ("wide", "json", "yaml", "name")


def kind_prefix(rt: ResourceType) -> str:
    """``pod``, ``replicationcontroller``, ``deployment.apps``: how kubectl names a kind."""
    base = rt.kind.lower()
    return f"{base}.{rt.group}" if rt.group else base


def object_name(rt: ResourceType, obj: Obj) -> str:
    return f"{kind_prefix(rt)}/{meta(obj).get('name', '')}"


class TablePrinter:
    """Column-aligned rows, like kubectl's tabwriter output with 3 spaces of padding."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    @staticmethod
    def columns(table: Obj, wide: bool) -> list[int]:
        return [
            i
            for i, c in enumerate(table.get("columnDefinitions") or [])
            if wide or int(c.get("priority", 0)) == 0
        ]

    @staticmethod
    def header(
        table: Obj, indexes: Sequence[int], with_namespace: bool, kind_prefix_text: str = ""
    ) -> list[str]:
        definitions = table.get("columnDefinitions") or []
        names = [str(definitions[i]["name"]).upper() for i in indexes]
        return (["NAMESPACE"] if with_namespace else []) + names

    @staticmethod
    def rows(
        table: Obj, indexes: Sequence[int], with_namespace: bool, name_prefix: str = ""
    ) -> list[list[str]]:
        out = []
        for row in table.get("rows") or []:
            cells = row.get("cells") or []
            values = [_cell(cells[i]) if i < len(cells) else "" for i in indexes]
            if name_prefix and values:
                values[0] = f"{name_prefix}/{values[0]}"
            if with_namespace:
                namespace = meta(row.get("object") or {}).get("namespace", "")
                values.insert(0, namespace)
            out.append(values)
        return out

    def render(self, lines: list[list[str]]) -> None:
        if not lines:
            return
        widths = [
            max(len(line[i]) for line in lines if i < len(line))
            for i in range(max(len(line) for line in lines))
        ]
        for line in lines:
            padded = [
                value.ljust(widths[i]) if i < len(line) - 1 else value
                for i, value in enumerate(line)
            ]
            self.out.write("   ".join(padded).rstrip() + "\n")
        self.out.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dump(obj: Any, output: str, out: TextIO = sys.stdout) -> None:
    if output == "json":
        out.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif output == "yaml":
        out.write(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
    out.flush()


def as_list(items: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}
