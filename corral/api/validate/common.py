"""Rules several kinds share: names, labels, selectors, percentages, quantities.

These mirror apimachinery's ``ValidateLabels``, ``ValidateLabelSelector`` and
``NameIsDNSSubdomain`` and core's ``ValidateResourceQuantityValue``, building
causes from the string checks in ``corral.api.validation``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from corral.api import labels as labelsel
from corral.api.errors import Cause
from corral.api.meta import LabelSelector
from corral.api.quantity import QuantityError, canonicalize_quantity, parse_quantity
from corral.api.validate.checks import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_ip_address,
    is_qualified_name,
    is_valid_label_value,
)
from corral.api.validate.field import (
    IS_NEGATIVE,
    Raw,
    forbidden,
    index,
    invalid,
    invalid_each,
    required,
)

NameCheck = Callable[[str], Sequence[str]]

MAX_INT32 = 2**31 - 1


# --- names -----------------------------------------------------------------------


def name_messages(check: NameCheck, name: str, prefix: bool = False) -> Sequence[str]:
    """``NameIsDNSSubdomain(name, prefix)`` and friends.

    A generateName prefix may end in '-', since random characters follow it.
    """
    if prefix and name.endswith("-"):
        name = name[:-1] + "a"
    return check(name)


def dns_subdomain(value: str, path: str) -> list[Cause]:
    return invalid_each(path, value, is_dns1123_subdomain(value))


def dns_label(value: str, path: str) -> list[Cause]:
    return invalid_each(path, value, is_dns1123_label(value))


def qualified_name(value: str, path: str) -> list[Cause]:
    return invalid_each(path, value, is_qualified_name(value))


def ip_address(value: str, path: str) -> list[Cause]:
    return invalid_each(path, value, is_ip_address(value))


# --- labels and selectors ----------------------------------------------------------


def validate_labels(labels: Mapping[str, str] | None, path: str) -> list[Cause]:
    """``ValidateLabels``: errors are reported on the map itself, as Kubernetes does."""
    if not labels:
        return []
    causes: list[Cause] = []
    for k, v in labels.items():
        causes.extend(invalid_each(path, k, is_qualified_name(k)))
        causes.extend(invalid_each(path, v, is_valid_label_value(v)))
    return causes


def validate_label_selector(
    selector: LabelSelector | None, path: str, allow_invalid_values: bool = False
) -> list[Cause]:
    """``ValidateLabelSelector``; the operator itself is checked by the model."""
    if selector is None:
        return []
    causes = validate_labels(selector.match_labels, f"{path}.matchLabels")
    for i, req in enumerate(selector.match_expressions or ()):
        req_path = index(f"{path}.matchExpressions", i)
        values = req.values or []
        if req.operator in ("In", "NotIn"):
            if not values:
                causes.append(
                    required(
                        f"{req_path}.values",
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif values:
            causes.append(
                forbidden(
                    f"{req_path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
        causes.extend(qualified_name(req.key, f"{req_path}.key"))
        if not allow_invalid_values:
            values_path = f"{req_path}.values"
            for j, value in enumerate(values):
                causes.extend(
                    invalid_each(f"{values_path}[{j}]", value, is_valid_label_value(value))
                )
    return causes


def selector_wire(selector: LabelSelector) -> dict[str, Any]:
    """The wire form ``corral.api.labels.selector_from_dict`` reads."""
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = selector.match_labels
    if selector.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, "values": r.values or []}
            for r in selector.match_expressions
        ]
    return out


def selector_is_empty(selector: LabelSelector) -> bool:
    return not selector.match_labels and not selector.match_expressions


def as_matcher(selector: LabelSelector) -> labelsel.LabelSelector | None:
    """The selector as a matcher, or None when Kubernetes could not convert it."""
    try:
        return labelsel.selector_from_dict(selector_wire(selector))
    except labelsel.SelectorError:
        return None


# --- numbers -------------------------------------------------------------------------


def non_negative(value: int | None, path: str) -> list[Cause]:
    if value is not None and value < 0:
        return [invalid(path, value, IS_NEGATIVE)]
    return []


def id_in_range(value: int | None, path: str) -> list[Cause]:
    """``IsValidUserID`` / ``IsValidGroupID``."""
    if value is not None and not 0 <= value <= MAX_INT32:
        return [invalid(path, value, f"must be between 0 and {MAX_INT32}, inclusive")]
    return []


_PERCENT_RE = re.compile(r"[0-9]+%")
PERCENT_ERR = (
    "a valid percent string must be a numeric string followed by an ending '%' "
    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
)


def int_or_percent(value: int | str, path: str) -> list[Cause]:
    """``ValidatePositiveIntOrPercent``: a non-negative int or "N%"."""
    if isinstance(value, str):
        if not _PERCENT_RE.fullmatch(value):
            return [invalid(path, Raw(value), PERCENT_ERR)]
        return []
    if value < 0:
        return [invalid(path, Raw(str(value)), IS_NEGATIVE)]
    return []


def percent_value(value: int | str) -> tuple[int, bool]:
    """``getIntOrPercentValue``: the number, and whether it was a percentage."""
    if isinstance(value, str):
        if _PERCENT_RE.fullmatch(value):
            return int(value[:-1]), True
        return 0, False
    return value, False


def not_more_than_100_percent(value: int | str, path: str) -> list[Cause]:
    number, is_percent = percent_value(value)
    if is_percent and number > 100:
        return [invalid(path, Raw(str(value)), "must not be greater than 100%")]
    return []


# --- quantities ------------------------------------------------------------------------


_cached_quantity = lru_cache(maxsize=4096)(parse_quantity)


def quantity(raw: int | str) -> Decimal:
    """``parse_quantity``, remembered: pods repeat the same few ("100m", "128Mi")."""
    if isinstance(raw, str) and len(raw) > 64:
        return parse_quantity(raw)
    return _cached_quantity(raw)


def parse_or_cause(raw: int | str, path: str, causes: list[Cause]) -> Decimal | None:
    """A quantity's value; an unparsable one adds a cause and gives None."""
    try:
        return quantity(raw)
    except QuantityError as err:
        causes.append(invalid(path, raw, str(err)))
        return None


def quantity_text(raw: int | str) -> str:
    """The quantity as Kubernetes prints it (``Quantity.String()``)."""
    try:
        return canonicalize_quantity(raw)
    except QuantityError:
        return str(raw)


# --- networks -------------------------------------------------------------------------

CIDR_ERR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def cidr_family(value: str) -> int | None:
    """4 or 6 for a CIDR Kubernetes accepts (``ParseCIDRSloppy``), else None."""
    addr, slash, mask = value.partition("/")
    if not slash or is_ip_address(addr):
        return None
    family = 6 if ":" in addr else 4
    if not mask.isascii() or not mask.isdigit() or int(mask) > (32 if family == 4 else 128):
        return None
    return family


def cidr(value: str, path: str) -> list[Cause]:
    if cidr_family(value) is None:
        return [invalid(path, value, CIDR_ERR)]
    return []
