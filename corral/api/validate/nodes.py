"""Nodes: taints, pod CIDRs and reported resources (``ValidateNode``, ``ValidateNodeUpdate``)."""

from __future__ import annotations

from corral.api.core import Node, Taint
from corral.api.errors import Cause
from corral.api.validate.checks import is_valid_label_value
from corral.api.validate.common import (
    cidr,
    cidr_family,
    parse_or_cause,
    qualified_name,
    quantity_text,
)
from corral.api.validate.field import (
    IS_NEGATIVE,
    Raw,
    duplicate,
    forbidden,
    index,
    invalid,
)

_CIDR_CHANGE = 'node updates may not change podCIDR except from "" to valid'
_PROVIDER_CHANGE = 'node updates may not change providerID except from "" to valid'
# Resources a node must report in whole units.
_INTEGER_RESOURCES = frozenset({"pods"})


def validate_taints(taints: list[Taint] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints or ()):
        taint_path = f"{path}[{i}]"
        causes.extend(qualified_name(taint.key, f"{taint_path}.key"))
        value = taint.value or ""
        msgs = is_valid_label_value(value)
        if msgs:
            causes.append(invalid(f"{taint_path}.value", value, ";".join(msgs)))
        ident = (taint.key, taint.effect)
        if ident in seen:
            causes.append(
                duplicate(taint_path, taint, "taints must be unique by key and effect pair")
            )
            continue
        seen.add(ident)
    return causes


def validate_node(node: Node) -> list[Cause]:
    spec = node.spec
    causes = validate_taints(spec.taints, "spec.taints")
    if spec.pod_cidr:
        causes.extend(cidr(spec.pod_cidr, "spec.podCIDR"))
    cidrs = spec.pod_cidrs or []
    for i, value in enumerate(cidrs):
        causes.extend(cidr(value, index("spec.podCIDRs", i)))
    if len(cidrs) > 1:
        families = [cidr_family(value) for value in cidrs]
        if None not in families and (len(cidrs) > 2 or len(set(families)) != len(cidrs)):
            causes.append(
                invalid(
                    "spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"
                )
            )
        for i, value in enumerate(cidrs):
            if value in cidrs[:i]:
                causes.append(duplicate(index("spec.podCIDRs", i), value))
    if node.status is not None:
        for wire, resources in (
            ("capacity", node.status.capacity),
            ("allocatable", node.status.allocatable),
        ):
            for name, raw in (resources or {}).items():
                # Kubernetes names these as fields, not map keys: status.capacity.cpu.
                resource_path = f"status.{wire}.{name}"
                amount = parse_or_cause(raw, resource_path, causes)
                if amount is None:
                    continue
                if amount < 0:
                    causes.append(invalid(resource_path, quantity_text(raw), IS_NEGATIVE))
                if (
                    name in _INTEGER_RESOURCES or "/" in name
                ) and amount != amount.to_integral_value():
                    causes.append(
                        invalid(resource_path, Raw(quantity_text(raw)), "must be an integer")
                    )
    return causes


def validate_node_update(new: Node, old: Node) -> list[Cause]:
    causes: list[Cause] = []
    # A controller may assign a CIDR or provider ID once; after that they stay.
    if old.spec.pod_cidr and new.spec.pod_cidr != old.spec.pod_cidr:
        causes.append(forbidden("spec.podCIDR", _CIDR_CHANGE))
    if old.spec.pod_cidrs and new.spec.pod_cidrs != old.spec.pod_cidrs:
        causes.append(forbidden("spec.podCIDRs", _CIDR_CHANGE))
    if old.spec.provider_id and new.spec.provider_id != old.spec.provider_id:
        causes.append(forbidden("spec.providerID", _PROVIDER_CHANGE))
    return causes
