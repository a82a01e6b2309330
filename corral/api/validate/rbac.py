"""Roles and bindings, as ``pkg/apis/rbac/validation`` checks them.

RBAC object names are path segments rather than DNS names, so that
``system:node:web-1`` and ``system:kube-scheduler`` are valid: ``rbac_name``
is the name check to use for the four kinds.
"""

from __future__ import annotations

from typing import Any

from corral.api.base import ApiModel
from corral.api.errors import Cause
from corral.api.rbac import (
    GROUP,
    GROUP_KIND,
    SERVICE_ACCOUNT,
    USER,
    ClusterRole,
    ClusterRoleBinding,
    PolicyRule,
    Role,
    RoleBinding,
    RoleRef,
    Subject,
)
from corral.api.resources import ResourceType
from corral.api.validate.checks import is_dns1123_subdomain
from corral.api.validate.common import validate_label_selector
from corral.api.validate.field import child, index, invalid, invalid_each, not_supported, required

_SUBJECT_KINDS = (SERVICE_ACCOUNT, USER, GROUP_KIND)


def rbac_name(name: str) -> tuple[str, ...]:
    """``path.IsValidPathSegmentName``: what a name must be to sit in a URL path."""
    if name in (".", ".."):
        return (f"may not be '{name}'",)
    return tuple(f"may not contain '{bad}'" for bad in ("/", "%") if bad in name)


def validate_policy_rule(rule: PolicyRule, namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not rule.verbs:
        causes.append(required(child(path, "verbs"), "verbs must contain at least one value"))
    if rule.non_resource_urls:
        urls_path = child(path, "nonResourceURLs")
        if namespaced:
            causes.append(
                invalid(
                    urls_path,
                    rule.non_resource_urls,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.api_groups or rule.resources or rule.resource_names:
            causes.append(
                invalid(
                    urls_path,
                    rule.non_resource_urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return causes
    if not rule.api_groups:
        causes.append(
            required(child(path, "apiGroups"), "resource rules must supply at least one api group")
        )
    if not rule.resources:
        causes.append(
            required(child(path, "resources"), "resource rules must supply at least one resource")
        )
    return causes


def _rules(rules: list[PolicyRule] | None, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(rules or ()):
        causes.extend(validate_policy_rule(rule, namespaced, index("rules", i)))
    return causes


def validate_role(role: Role) -> list[Cause]:
    return _rules(role.rules, namespaced=True)


def validate_cluster_role(role: ClusterRole) -> list[Cause]:
    causes = _rules(role.rules, namespaced=False)
    aggregation = role.aggregation_rule
    if aggregation is not None:
        selectors = aggregation.cluster_role_selectors or []
        path = "aggregationRule.clusterRoleSelectors"
        if not selectors:
            causes.append(
                required(
                    path, "at least one clusterRoleSelector required if aggregationRule is non-nil"
                )
            )
        for i, selector in enumerate(selectors):
            causes.extend(validate_label_selector(selector, index(path, i)))
    return causes


def validate_subject(subject: Subject, namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not subject.name:
        causes.append(required(child(path, "name")))
    api_group = subject.api_group or ""
    if subject.kind == SERVICE_ACCOUNT:
        if subject.name:
            causes.extend(
                invalid_each(child(path, "name"), subject.name, is_dns1123_subdomain(subject.name))
            )
        if api_group:
            causes.append(not_supported(child(path, "apiGroup"), api_group, [""]))
        if not namespaced and not subject.namespace:
            causes.append(required(child(path, "namespace")))
    elif subject.kind in (USER, GROUP_KIND):
        if api_group != GROUP:
            causes.append(not_supported(child(path, "apiGroup"), api_group, [GROUP]))
    else:
        causes.append(not_supported(child(path, "kind"), subject.kind, _SUBJECT_KINDS))
    return causes


def _role_ref(ref: RoleRef, kinds: tuple[str, ...]) -> list[Cause]:
    causes: list[Cause] = []
    if ref.api_group != GROUP:
        causes.append(not_supported("roleRef.apiGroup", ref.api_group, [GROUP]))
    if ref.kind not in kinds:
        causes.append(not_supported("roleRef.kind", ref.kind, kinds))
    if not ref.name:
        causes.append(required("roleRef.name"))
    else:
        causes.extend(invalid_each("roleRef.name", ref.name, rbac_name(ref.name)))
    return causes


def _subjects(subjects: list[Subject] | None, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    for i, subject in enumerate(subjects or ()):
        causes.extend(validate_subject(subject, namespaced, index("subjects", i)))
    return causes


def validate_role_binding(binding: RoleBinding) -> list[Cause]:
    return [
        *_role_ref(binding.role_ref, ("Role", "ClusterRole")),
        *_subjects(binding.subjects, namespaced=True),
    ]


def validate_cluster_role_binding(binding: ClusterRoleBinding) -> list[Cause]:
    return [
        *_role_ref(binding.role_ref, ("ClusterRole",)),
        *_subjects(binding.subjects, namespaced=False),
    ]


def validate_binding_update(
    binding: RoleBinding | ClusterRoleBinding, old: RoleBinding | ClusterRoleBinding
) -> list[Cause]:
    # A binding's meaning is its roleRef: changing it in place would let a
    # subject's grants change under an unchanged name, so Kubernetes forbids it
    # (delete and re-create instead).
    if binding.role_ref != old.role_ref:
        return [invalid("roleRef", binding.role_ref, "cannot change roleRef")]
    return []


_CHECKS: dict[str, tuple[type[ApiModel], Any]] = {
    "Role": (Role, validate_role),
    "ClusterRole": (ClusterRole, validate_cluster_role),
    "RoleBinding": (RoleBinding, validate_role_binding),
    "ClusterRoleBinding": (ClusterRoleBinding, validate_cluster_role_binding),
}


def validate_rbac(rt: ResourceType, obj: ApiModel, old: ApiModel | None = None) -> list[Cause]:
    """Every problem in an RBAC object (metadata aside: ``validate_object`` checks that).

    ``old`` is the stored object on update, None on create. Objects of other
    kinds give no causes, so this is safe to call for any kind.
    """
    entry = _CHECKS.get(rt.kind)
    if entry is None:
        return []
    model, check = entry
    if not isinstance(obj, model):
        return []
    causes: list[Cause] = list(check(obj))
    if isinstance(obj, RoleBinding | ClusterRoleBinding) and isinstance(old, type(obj)):
        causes.extend(validate_binding_update(obj, old))
    return causes
