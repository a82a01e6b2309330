"""Container resource requests and limits: ``ValidateContainerResourceRequirements``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from corral.api.containers import ResourceRequirements
from corral.api.errors import Cause
from corral.api.quantity import QuantityError, parse_quantity, to_int, to_milli
from corral.api.validate.checks import is_qualified_name
from corral.api.validate.common import quantity, quantity_text
from corral.api.validate.field import (
    IS_NEGATIVE,
    Raw,
    forbidden,
    invalid,
    invalid_each,
    required,
)

_HUGEPAGES_PREFIX = "hugepages-"
_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
# helper.standardResources: names that need no domain prefix anywhere.
_STANDARD_RESOURCES = frozenset(
    {
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "persistentvolumeclaims",
        "configmaps",
        "services.nodeports",
        "services.loadbalancers",
        "requests.storage",
        "storage",
    }
)


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    if _is_native(name) or name.startswith("requests."):
        return False
    return not is_qualified_name("requests." + name)


def _is_hugepages(name: str) -> bool:
    return name.startswith(_HUGEPAGES_PREFIX)


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not _is_hugepages(name)


def _resource_name(name: str, path: str) -> list[Cause]:
    """``validateContainerResourceName``."""
    causes = invalid_each(path, name, is_qualified_name(name))
    if "/" not in name:
        standard = name in _STANDARD_RESOURCES or _is_hugepages(name)
        if not causes and not standard:
            causes.append(
                invalid(path, name, "must be a standard resource type or fully qualified")
            )
        if name not in _CONTAINER_RESOURCES and not _is_hugepages(name):
            causes.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not _is_extended(name):
        causes.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return causes


def _hugepages_divisible(name: str, value: Decimal) -> bool:
    try:
        page = parse_quantity(name[len(_HUGEPAGES_PREFIX) :])
        if page <= 0 or to_milli(page) % 1000:
            return False
        return to_int(value) % to_int(page) == 0
    except QuantityError:
        return False


def _resource_list(
    resources: Mapping[str, int | str] | None, path: str, causes: list[Cause]
) -> tuple[dict[str, Decimal], bool, bool]:
    """Parsed values, and whether cpu/memory and hugepages appear."""
    parsed: dict[str, Decimal] = {}
    cpu_or_memory = hugepages = False
    for name, raw in (resources or {}).items():
        item_path = f"{path}[{name}]"
        # The usual names (cpu, memory) need no checks beyond their quantity.
        common = name in _CONTAINER_RESOURCES
        if not common:
            causes.extend(_resource_name(name, item_path))
        try:
            value = quantity(raw)
        except QuantityError as err:
            causes.append(invalid(item_path, raw, str(err)))
            continue
        parsed[name] = value
        if value < 0:
            causes.append(invalid(item_path, quantity_text(raw), IS_NEGATIVE))
        if common:
            cpu_or_memory = cpu_or_memory or name != "ephemeral-storage"
            continue
        if _is_extended(name) and to_milli(value) % 1000:
            causes.append(invalid(item_path, Raw(quantity_text(raw)), "must be an integer"))
        if _is_hugepages(name):
            hugepages = True
            if not _hugepages_divisible(name, value):
                text = quantity_text(raw)
                causes.append(
                    invalid(item_path, text, f"{text} is not positive integer multiple of {name}")
                )
    return parsed, cpu_or_memory, hugepages


def validate_resources(res: ResourceRequirements | None, path: str) -> list[Cause]:
    if res is None:
        return []
    causes: list[Cause] = []
    limits_path = f"{path}.limits"
    requests_path = f"{path}.requests"
    limits, lim_core, lim_huge = _resource_list(res.limits, limits_path, causes)
    requests, req_core, req_huge = _resource_list(res.requests, requests_path, causes)
    raw_limits = res.limits or {}
    raw_requests = res.requests or {}
    for name, request in requests.items():
        if name in raw_limits:
            limit = limits.get(name)
            if limit is None:
                continue
            # A resource that cannot be overcommitted must be requested exactly.
            if request != limit and not _overcommit_allowed(name):
                detail = "must be equal to"
            elif request > limit:
                detail = "must be less than or equal to"
            else:
                continue
            causes.append(
                invalid(
                    requests_path,
                    quantity_text(raw_requests[name]),
                    f"{detail} {name} limit of {quantity_text(raw_limits[name])}",
                )
            )
        elif not _overcommit_allowed(name):
            causes.append(
                required(limits_path, "Limit must be set for non overcommitable resources")
            )
    if not lim_core and not req_core and (lim_huge or req_huge):
        causes.append(forbidden(path, "HugePages require cpu or memory"))
    return causes
