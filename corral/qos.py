"""A pod's Quality of Service class, by Kubernetes' rule (pkg/apis/core/v1/helper/qos).

The API server stores it in ``status.qosClass`` when a pod is created, and
``corral describe`` computes it for a pod that lacks it; both call this one
function, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from corral.api.quantity import QuantityError, parse_quantity

QosClass = Literal["Guaranteed", "Burstable", "BestEffort"]

# Only these decide the class: ephemeral-storage, hugepages and extended
# resources do not, as in Kubernetes.
_COMPUTE_RESOURCES = ("cpu", "memory")


def qos_class(pod_spec: Mapping[str, Any]) -> QosClass:
    """Guaranteed, Burstable or BestEffort, for a pod's spec.

    Zero quantities count as unset. Guaranteed needs every container, init
    containers included, to limit both cpu and memory, and the pod's requests
    to equal its limits. A container's missing request defaults to its limit,
    as Kubernetes' defaulting does before it computes the class.
    """
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    containers = [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]
    for container in containers:
        resources = container.get("resources") or {}
        written_requests = resources.get("requests") or {}
        own_limits = _positive(resources.get("limits"))
        # A request written as "0" stays zero (and so unset); only a missing one takes the limit.
        own_requests = {
            name: limit for name, limit in own_limits.items() if name not in written_requests
        } | _positive(written_requests)
        _add(requests, own_requests)
        _add(limits, own_limits)
        if not set(_COMPUTE_RESOURCES) <= own_limits.keys():
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def _positive(resources: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """The cpu and memory quantities above zero; unreadable ones count as unset."""
    found: dict[str, Decimal] = {}
    for name in _COMPUTE_RESOURCES:
        value = _quantity((resources or {}).get(name))
        if value is not None and value > 0:
            found[name] = value
    return found


def _quantity(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return parse_quantity(value)
    except (QuantityError, TypeError):
        return None


def _add(into: dict[str, Decimal], more: Mapping[str, Decimal]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, Decimal(0)) + value
