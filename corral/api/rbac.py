"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

The models follow Kubernetes' v1 types field for field. Two defaults that
Kubernetes applies on decode are applied here too, so that what is stored
and compared (a binding's ``roleRef`` is immutable) is the defaulted form:
a User or Group subject without ``apiGroup`` gets ``rbac.authorization.k8s.io``,
and so does a ``roleRef`` without one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from corral.api.base import ApiModel
from corral.api.meta import LabelSelector, ObjectMeta

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"

USER = "User"
GROUP_KIND = "Group"
SERVICE_ACCOUNT = "ServiceAccount"


class PolicyRule(ApiModel):
    verbs: list[str]
    api_groups: list[str] | None = None
    resources: list[str] | None = None
    resource_names: list[str] | None = None
    non_resource_urls: list[str] | None = Field(default=None, alias="nonResourceURLs")


class AggregationRule(ApiModel):
    cluster_role_selectors: list[LabelSelector] | None = None


class Subject(ApiModel):
    # A plain string rather than a Literal: an unknown kind is a 422 naming the
    # supported ones (as Kubernetes reports it), not a decode error.
    kind: str
    api_group: str | None = None
    name: str
    namespace: str | None = None

    @model_validator(mode="after")
    def _default_api_group(self) -> Subject:
        if self.kind in (USER, GROUP_KIND) and not self.api_group:
            self.api_group = GROUP
        return self


class RoleRef(ApiModel):
    api_group: str = ""
    kind: str
    name: str

    @model_validator(mode="after")
    def _default_api_group(self) -> RoleRef:
        if not self.api_group:
            self.api_group = GROUP
        return self


class Role(ApiModel):
    api_version: Literal["rbac.authorization.k8s.io/v1"] = "rbac.authorization.k8s.io/v1"
    kind: Literal["Role"] = "Role"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    rules: list[PolicyRule] | None = None


class ClusterRole(ApiModel):
    api_version: Literal["rbac.authorization.k8s.io/v1"] = "rbac.authorization.k8s.io/v1"
    kind: Literal["ClusterRole"] = "ClusterRole"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    rules: list[PolicyRule] | None = None
    aggregation_rule: AggregationRule | None = None


class RoleBinding(ApiModel):
    api_version: Literal["rbac.authorization.k8s.io/v1"] = "rbac.authorization.k8s.io/v1"
    kind: Literal["RoleBinding"] = "RoleBinding"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    subjects: list[Subject] | None = None
    role_ref: RoleRef


class ClusterRoleBinding(ApiModel):
    api_version: Literal["rbac.authorization.k8s.io/v1"] = "rbac.authorization.k8s.io/v1"
    kind: Literal["ClusterRoleBinding"] = "ClusterRoleBinding"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    subjects: list[Subject] | None = None
    role_ref: RoleRef
