"""apiextensions.k8s.io/v1: CustomResourceDefinition, the kinds users add at run time.

The schema itself (``openAPIV3Schema``) stays a plain JSON object here: its
keys are JSON Schema's (``x-kubernetes-*``, ``$ref``) rather than camelCase
fields, and corral.api.crd_schema checks it for what Kubernetes calls a
structural schema, naming every bad field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from corral.api.base import ApiModel, Time
from corral.api.meta import ObjectMeta


class CustomResourceDefinitionNames(ApiModel):
    plural: str = ""
    singular: str | None = None
    short_names: list[str] | None = None
    kind: str = ""
    list_kind: str | None = None
    categories: list[str] | None = None


class CustomResourceValidation(ApiModel):
    open_apiv3_schema: dict[str, Any] | None = Field(default=None, alias="openAPIV3Schema")


class CustomResourceSubresourceScale(ApiModel):
    spec_replicas_path: str = ""
    status_replicas_path: str = ""
    label_selector_path: str | None = None


class CustomResourceSubresources(ApiModel):
    status: dict[str, Any] | None = None
    scale: CustomResourceSubresourceScale | None = None


class CustomResourceColumnDefinition(ApiModel):
    name: str = ""
    type: str = ""
    format: str | None = None
    description: str | None = None
    priority: int | None = None
    json_path: str = Field(default="", alias="jsonPath")


class SelectableField(ApiModel):
    json_path: str = Field(default="", alias="jsonPath")


class CustomResourceDefinitionVersion(ApiModel):
    name: str = ""
    served: bool = False
    storage: bool = False
    deprecated: bool | None = None
    deprecation_warning: str | None = None
    schema_: CustomResourceValidation | None = Field(default=None, alias="schema")
    subresources: CustomResourceSubresources | None = None
    additional_printer_columns: list[CustomResourceColumnDefinition] | None = None
    selectable_fields: list[SelectableField] | None = None


class CustomResourceConversion(ApiModel):
    strategy: str = "None"
    webhook: dict[str, Any] | None = None


class CustomResourceDefinitionSpec(ApiModel):
    group: str = ""
    names: CustomResourceDefinitionNames = Field(default_factory=CustomResourceDefinitionNames)
    scope: str = ""
    versions: list[CustomResourceDefinitionVersion] = Field(default_factory=list)
    conversion: CustomResourceConversion | None = None
    preserve_unknown_fields: bool | None = None


class CustomResourceDefinitionCondition(ApiModel):
    type: str = ""
    status: str = ""
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class CustomResourceDefinitionStatus(ApiModel):
    conditions: list[CustomResourceDefinitionCondition] | None = None
    accepted_names: CustomResourceDefinitionNames | None = None
    stored_versions: list[str] | None = None


class CustomResourceDefinition(ApiModel):
    api_version: Literal["apiextensions.k8s.io/v1"] = "apiextensions.k8s.io/v1"
    kind: Literal["CustomResourceDefinition"] = "CustomResourceDefinition"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: CustomResourceDefinitionSpec = Field(default_factory=CustomResourceDefinitionSpec)
    status: CustomResourceDefinitionStatus | None = None


class CustomObjectHead(ApiModel):
    """What every object shares, checked as strictly as a built-in kind's."""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


class CustomObject(ApiModel):
    """An object of a custom kind: metadata typed, the rest as the schema left it.

    corral.api.crd_schema has pruned, defaulted and validated the body before
    this model sees it, so it keeps every other key as it is.
    """

    model_config = {**ApiModel.model_config, "extra": "allow"}

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiVersion": self.api_version, "kind": self.kind}
        out["metadata"] = self.metadata.to_dict()
        out.update(self.model_extra or {})
        return out
