"""Where a pod may run: affinity, tolerations and topology spread constraints."""

from __future__ import annotations

import re

from corral.api.core import (
    Affinity,
    NodeAffinity,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodAffinity,
    PodAffinityTerm,
    Toleration,
    TopologySpreadConstraint,
)
from corral.api.errors import Cause
from corral.api.validate.checks import is_dns1123_label, is_dns1123_subdomain, is_valid_label_value
from corral.api.validate.common import qualified_name, validate_label_selector
from corral.api.validate.field import (
    child,
    duplicate,
    forbidden,
    index,
    invalid,
    invalid_each,
    required,
)

_INT64_RE = re.compile(r"[+-]?[0-9]+")
_WEIGHT_ERR = "must be in the range 1-100"
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def validate_affinity(affinity: Affinity | None, path: str) -> list[Cause]:
    if affinity is None:
        return []
    causes: list[Cause] = []
    if affinity.node_affinity is not None:
        causes.extend(_node_affinity(affinity.node_affinity, f"{path}.nodeAffinity"))
    if affinity.pod_affinity is not None:
        causes.extend(_pod_affinity(affinity.pod_affinity, f"{path}.podAffinity"))
    if affinity.pod_anti_affinity is not None:
        causes.extend(_pod_affinity(affinity.pod_anti_affinity, f"{path}.podAntiAffinity"))
    return causes


def _node_affinity(affinity: NodeAffinity, path: str) -> list[Cause]:
    causes: list[Cause] = []
    hard = affinity.required_during_scheduling_ignored_during_execution
    if hard is not None:
        terms_path = child(child(path, _REQUIRED), "nodeSelectorTerms")
        if not hard.node_selector_terms:
            causes.append(required(terms_path, "must have at least one node selector term"))
        for i, term in enumerate(hard.node_selector_terms):
            causes.extend(_node_selector_term(term, f"{terms_path}[{i}]", check_values=True))
    soft_path = child(path, _PREFERRED)
    for i, pref in enumerate(affinity.preferred_during_scheduling_ignored_during_execution or ()):
        pref_path = f"{soft_path}[{i}]"
        if not 1 <= pref.weight <= 100:
            causes.append(invalid(f"{pref_path}.weight", pref.weight, _WEIGHT_ERR))
        # A preferred term may name label values no node has yet.
        causes.extend(_node_selector_term(pref.preference, f"{pref_path}.preference", False))
    return causes


def _node_selector_term(term: NodeSelectorTerm, path: str, check_values: bool) -> list[Cause]:
    causes: list[Cause] = []
    for j, req in enumerate(term.match_expressions or ()):
        causes.extend(
            _node_selector_requirement(req, index(f"{path}.matchExpressions", j), check_values)
        )
    for j, req in enumerate(term.match_fields or ()):
        causes.extend(_node_field_requirement(req, index(f"{path}.matchFields", j)))
    return causes


def _node_selector_requirement(
    req: NodeSelectorRequirement, path: str, check_values: bool
) -> list[Cause]:
    causes: list[Cause] = []
    values = req.values or []
    values_path = f"{path}.values"
    if req.operator in ("In", "NotIn"):
        if not values:
            causes.append(
                required(values_path, "must be specified when `operator` is 'In' or 'NotIn'")
            )
    elif req.operator in ("Exists", "DoesNotExist"):
        if values:
            causes.append(
                forbidden(
                    values_path,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif len(values) != 1:
        causes.append(
            required(values_path, "must be specified single value when `operator` is 'Lt' or 'Gt'")
        )
    elif not _INT64_RE.fullmatch(values[0]):
        # Kubernetes only finds this out when scheduling; corral says it up front.
        causes.append(invalid(f"{values_path}[0]", values[0], "must be an integer"))
    causes.extend(qualified_name(req.key, f"{path}.key"))
    if check_values:
        for k, value in enumerate(values):
            causes.extend(invalid_each(f"{values_path}[{k}]", value, is_valid_label_value(value)))
    return causes


def _node_field_requirement(req: NodeSelectorRequirement, path: str) -> list[Cause]:
    causes: list[Cause] = []
    values = req.values or []
    if req.operator in ("In", "NotIn"):
        if len(values) != 1:
            causes.append(
                required(
                    f"{path}.values",
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field "
                    "selector",
                )
            )
    else:
        causes.append(invalid(f"{path}.operator", req.operator, "not a valid selector operator"))
    if req.key != "metadata.name":
        causes.append(invalid(f"{path}.key", req.key, "not a valid field selector key"))
    else:
        for k, value in enumerate(values):
            causes.extend(
                invalid_each(index(f"{path}.values", k), value, is_dns1123_subdomain(value))
            )
    return causes


def _pod_affinity(affinity: PodAffinity, path: str) -> list[Cause]:
    causes: list[Cause] = []
    hard_path = child(path, _REQUIRED)
    for i, term in enumerate(affinity.required_during_scheduling_ignored_during_execution or ()):
        causes.extend(_pod_affinity_term(term, f"{hard_path}[{i}]"))
    soft_path = child(path, _PREFERRED)
    for i, weighted in enumerate(
        affinity.preferred_during_scheduling_ignored_during_execution or ()
    ):
        term_path = f"{soft_path}[{i}]"
        if not 1 <= weighted.weight <= 100:
            causes.append(invalid(f"{term_path}.weight", weighted.weight, _WEIGHT_ERR))
        causes.extend(
            _pod_affinity_term(weighted.pod_affinity_term, f"{term_path}.podAffinityTerm")
        )
    return causes


def _pod_affinity_term(term: PodAffinityTerm, path: str) -> list[Cause]:
    causes = validate_label_selector(term.label_selector, f"{path}.labelSelector")
    causes.extend(validate_label_selector(term.namespace_selector, f"{path}.namespaceSelector"))
    for i, namespace in enumerate(term.namespaces or ()):
        causes.extend(
            invalid_each(index(f"{path}.namespaces", i), namespace, is_dns1123_label(namespace))
        )
    key_path = f"{path}.topologyKey"
    if not term.topology_key:
        causes.append(required(key_path, "can not be empty"))
    causes.extend(qualified_name(term.topology_key, key_path))
    return causes


def validate_tolerations(tolerations: list[Toleration] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, tol in enumerate(tolerations or ()):
        tol_path = f"{path}[{i}]"
        op_path = f"{tol_path}.operator"
        key = tol.key or ""
        operator = tol.operator or ""
        if key:
            causes.extend(qualified_name(key, f"{tol_path}.key"))
        elif operator != "Exists":
            # An empty key with Exists is the toleration that matches every taint.
            causes.append(
                invalid(
                    op_path,
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                )
            )
        if tol.toleration_seconds is not None and tol.effect != "NoExecute":
            causes.append(
                invalid(
                    f"{tol_path}.effect",
                    tol.effect or "",
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        value = tol.value or ""
        if operator == "Exists":
            if value:
                causes.append(
                    invalid(op_path, value, "value must be empty when `operator` is 'Exists'")
                )
        else:
            msgs = is_valid_label_value(value)
            if msgs:
                causes.append(invalid(op_path, value, ";".join(msgs)))
    return causes


def validate_topology_spread(
    constraints: list[TopologySpreadConstraint] | None, path: str
) -> list[Cause]:
    causes: list[Cause] = []
    items = constraints or []
    for i, tsc in enumerate(items):
        tsc_path = f"{path}[{i}]"
        if tsc.max_skew <= 0:
            causes.append(invalid(f"{tsc_path}.maxSkew", tsc.max_skew, "must be greater than zero"))
        if not tsc.topology_key:
            causes.append(required(f"{tsc_path}.topologyKey", "can not be empty"))
        pair = (tsc.topology_key, tsc.when_unsatisfiable)
        if any((o.topology_key, o.when_unsatisfiable) == pair for o in items[i + 1 :]):
            causes.append(
                duplicate(
                    child(tsc_path, "{topologyKey, whenUnsatisfiable}"),
                    f"{{{tsc.topology_key}, {tsc.when_unsatisfiable}}}",
                )
            )
        if tsc.min_domains is not None:
            domains_path = f"{tsc_path}.minDomains"
            if tsc.min_domains <= 0:
                causes.append(invalid(domains_path, tsc.min_domains, "must be greater than zero"))
            if tsc.when_unsatisfiable != "DoNotSchedule":
                causes.append(
                    invalid(
                        domains_path,
                        tsc.min_domains,
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not "
                        f"{tsc.when_unsatisfiable}",
                    )
                )
        causes.extend(_match_label_keys(tsc, f"{tsc_path}.matchLabelKeys"))
        causes.extend(validate_label_selector(tsc.label_selector, f"{tsc_path}.labelSelector"))
    return causes


def _match_label_keys(tsc: TopologySpreadConstraint, path: str) -> list[Cause]:
    keys = tsc.match_label_keys or []
    if not keys:
        return []
    causes: list[Cause] = []
    selector = tsc.label_selector
    selector_keys: set[str] = set()
    if selector is None:
        causes.append(forbidden(path, "must not be specified when labelSelector is not set"))
    else:
        selector_keys.update(selector.match_labels or ())
        selector_keys.update(r.key for r in selector.match_expressions or ())
    for i, label_key in enumerate(keys):
        causes.extend(qualified_name(label_key, f"{path}[{i}]"))
        if label_key in selector_keys:
            causes.append(
                invalid(
                    f"{path}[{i}]", label_key, "exists in both matchLabelKeys and labelSelector"
                )
            )
    return causes
