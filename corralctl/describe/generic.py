"""kubectl's generic describer, for kinds without a layout of their own (a Lease, say)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.objects import Obj
from corralctl.describe.events import write_events
from corralctl.describe.formatting import go_value, write_meta_header
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter


def smart_label(field_name: str) -> str:
    """``smartLabelFor``: ``holderIdentity`` as ``Holder Identity``, ``apiVersion`` as
    ``API Version``; a name with anything but letters and ``-`` is left alone."""
    if any(not (c.isalpha() or c == "-") for c in field_name):
        return field_name
    runs: list[str] = []
    last = ""
    for char in field_name:
        kind = "lower" if char.islower() else "upper" if char.isupper() else "other"
        if runs and kind == last:
            runs[-1] += char
        else:
            runs.append(char)
        last = kind
    for i in range(len(runs) - 1):
        if runs[i][:1].isupper() and runs[i + 1][:1].islower():
            runs[i + 1] = runs[i][-1] + runs[i + 1]
            runs[i] = runs[i][:-1]
    parts = []
    for part in (r for r in runs if r and r != "_"):
        upper = part.upper()
        parts.append(
            upper if upper in ("API", "URL", "UID", "OSB", "GUID") else part[:1].upper() + part[1:]
        )
    return " ".join(parts)


GENERIC_SKIP = (
    ".metadata.managedFields",
    ".metadata.name",
    ".metadata.namespace",
    ".metadata.labels",
    ".metadata.annotations",
)


def _write_unstructured(w: PrefixWriter, level: int, content: Mapping[str, Any], path: str) -> None:
    """``printUnstructuredContent``: fields sorted, maps and lists nested one level deeper."""
    for name in sorted(content):
        value = content[name]
        here = f"{path}.{name}"
        if here in GENERIC_SKIP:
            continue
        if isinstance(value, dict):
            w.write(level, f"{smart_label(name)}:\n")
            _write_unstructured(w, level + 1, value, here)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(name)}:\n")
            for child in value:
                if isinstance(child, dict):
                    _write_unstructured(w, level + 1, child, here)
                else:
                    w.write(level + 1, f"{go_value(child)}\n")
        else:
            w.write(level, f"{smart_label(name)}:\t{go_value(value)}\n")


async def describe_generic(src: DescribeSource, obj: Obj) -> str:
    """kubectl's generic describer, for kinds without one of their own."""
    events = await src.events(obj)
    w = PrefixWriter()
    write_meta_header(w, obj)
    _write_unstructured(w, 0, obj, "")
    write_events(w, src, events)
    return w.render()
