"""Quantities summed the way kubectl sums them: a pod's requests and limits, and percentages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from corral.api.quantity import (
    QuantityError,
    format_quantity,
    parse_quantity,
    to_int,
    to_milli,
)


class Qty(NamedTuple):
    """A quantity's value and whether it prints in binary (``Mi``) form.

    A sum keeps the form of its first term, as ``Quantity.Add`` does.
    """

    value: Decimal
    binary: bool

    def __str__(self) -> str:
        return format_quantity(self.value, binary=self.binary)


ZERO = Qty(Decimal(0), False)
_BINARY_SUFFIX = re.compile(r"[KMGTPE]i$")


def resource_list(values: Mapping[str, Any] | None) -> dict[str, Qty]:
    out: dict[str, Qty] = {}
    for name, text in (values or {}).items():
        try:
            out[name] = Qty(parse_quantity(text), bool(_BINARY_SUFFIX.search(str(text))))
        except (QuantityError, TypeError):
            continue
    return out


def add_resources(into: dict[str, Qty], more: Mapping[str, Qty]) -> None:
    for name, q in more.items():
        have = into.get(name)
        into[name] = q if have is None else Qty(have.value + q.value, have.binary)


def _max_resources(into: dict[str, Qty], other: Mapping[str, Qty]) -> None:
    for name, q in other.items():
        if name not in into or q.value > into[name].value:
            into[name] = q


def pod_totals(pod: Mapping[str, Any], which: str) -> dict[str, Qty]:
    """kubectl's ``podRequests``/``podLimits``: containers summed, init containers maxed,
    restartable (sidecar) init containers counted in both, plus the pod's overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, Qty] = {}
    for container in spec.get("containers") or []:
        add_resources(total, resource_list((container.get("resources") or {}).get(which)))
    sidecars: dict[str, Qty] = {}
    init_max: dict[str, Qty] = {}
    for container in spec.get("initContainers") or []:
        own = resource_list((container.get("resources") or {}).get(which))
        if container.get("restartPolicy") == "Always":
            add_resources(total, own)
            add_resources(sidecars, own)
            effective = dict(sidecars)
        else:
            effective = dict(own)
            add_resources(effective, sidecars)
        _max_resources(init_max, effective)
    _max_resources(total, init_max)
    overhead = resource_list(spec.get("overhead"))
    if which == "requests":
        add_resources(total, overhead)
    else:
        add_resources(total, {k: v for k, v in overhead.items() if k in total})
    return total


def _percent(part: Qty, whole: Qty, milli: bool) -> int:
    convert = to_milli if milli else to_int
    denominator = convert(whole.value)
    if denominator == 0:
        return 0
    return int(convert(part.value) / denominator * 100)


def with_percent(part: Qty, whole: Qty, milli: bool) -> str:
    return f"{part} ({_percent(part, whole, milli)}%)"
