"""meta/v1: the metadata every object carries, and the shared small types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from corral.api.base import ApiModel, MergeKey, MergeSet, Time


class OwnerReference(ApiModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(ApiModel):
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    self_link: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Time | None = None
    deletion_timestamp: Time | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: Annotated[list[OwnerReference], MergeKey("uid")] | None = None
    finalizers: Annotated[list[str], MergeSet()] | None = None
    # Kept so that objects read from Kubernetes round-trip; corral itself
    # does not track field managers.
    managed_fields: list[dict[str, Any]] | None = None


def meta_of(model: ApiModel) -> ObjectMeta:
    """The ObjectMeta of a top-level object model."""
    metadata = getattr(model, "metadata", None)
    if not isinstance(metadata, ObjectMeta):
        raise TypeError(f"{type(model).__name__} has no object metadata")
    return metadata


class ListMeta(ApiModel):
    resource_version: str | None = None
    continue_: str | None = Field(default=None, alias="continue")
    remaining_item_count: int | None = None


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(ApiModel):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class Condition(ApiModel):
    """metav1.Condition, used by the newer kinds (PodDisruptionBudget)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class Preconditions(ApiModel):
    uid: str | None = None
    resource_version: str | None = None


class DeleteOptions(ApiModel):
    kind: str | None = None
    api_version: str | None = None
    grace_period_seconds: int | None = None
    preconditions: Preconditions | None = None
    orphan_dependents: bool | None = None
    propagation_policy: Literal["Orphan", "Background", "Foreground"] | None = None
    dry_run: list[str] | None = None
