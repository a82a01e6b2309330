"""Registries, users and RBAC objects for the authorization tests."""

from __future__ import annotations

from typing import Any

from controlplane.auth.attributes import RequestAttributes, UserInfo, attributes_for
from controlplane.query import Query
from corral.api.resources import REGISTRY
from corral.objects import Obj


def user(name: str, *groups: str) -> UserInfo:
    return UserInfo(name, ("system:authenticated", *groups))


def request(method: str, path: str, who: UserInfo | None = None, **query: str) -> RequestAttributes:
    return attributes_for(
        method, path, Query.from_pairs(query.items()), who or user("alice"), REGISTRY
    )


def attrs(
    who: UserInfo,
    verb: str,
    resource: str = "",
    *,
    namespace: str = "",
    name: str = "",
    group: str = "",
    subresource: str = "",
    path: str = "",
    field_selector: str = "",
) -> RequestAttributes:
    if path:
        return RequestAttributes(who, verb, path=path, resource_request=False)
    return RequestAttributes(
        who,
        verb,
        api_group=group,
        api_version="v1",
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        field_selector=field_selector,
    )


def rule(verbs: list[str], groups: list[str], resources: list[str], **extra: Any) -> Obj:
    out: Obj = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    out.update(extra)
    return out


def role(name: str, namespace: str, *rules: Obj) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": list(rules),
    }


def cluster_role(
    name: str,
    *rules: Obj,
    labels: dict[str, str] | None = None,
    aggregate: list[Obj] | None = None,
) -> Obj:
    out: Obj = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels or {}},
        "rules": list(rules),
    }
    if aggregate is not None:
        out["aggregationRule"] = {"clusterRoleSelectors": aggregate}
    return out


def subject(kind: str, name: str, namespace: str | None = None) -> Obj:
    out: Obj = {"kind": kind, "name": name}
    if kind != "ServiceAccount":
        out["apiGroup"] = "rbac.authorization.k8s.io"
    if namespace is not None:
        out["namespace"] = namespace
    return out


def role_binding(name: str, namespace: str, role_kind: str, role_name: str, *subjects: Obj) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def cluster_role_binding(name: str, role_name: str, *subjects: Obj) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role_name,
        },
        "subjects": list(subjects),
    }
