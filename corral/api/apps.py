"""apps/v1: Deployment and ReplicaSet."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from corral.api.base import ApiModel, IntOrString, MergeKey, RetainKeys, Time
from corral.api.core import PodTemplateSpec
from corral.api.meta import LabelSelector, ObjectMeta


class RollingUpdateDeployment(ApiModel):
    max_unavailable: IntOrString | None = "25%"
    max_surge: IntOrString | None = "25%"


class DeploymentStrategy(ApiModel):
    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    rolling_update: RollingUpdateDeployment | None = None

    @model_validator(mode="after")
    def _default_rolling_update(self) -> DeploymentStrategy:
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateDeployment()
        return self


class DeploymentSpec(ApiModel):
    replicas: int = 1
    selector: LabelSelector
    template: PodTemplateSpec
    strategy: Annotated[DeploymentStrategy, RetainKeys()] = Field(
        default_factory=DeploymentStrategy
    )
    min_ready_seconds: int | None = None
    revision_history_limit: int = 10
    paused: bool | None = None
    progress_deadline_seconds: int = 600


class DeploymentCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_update_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class DeploymentStatus(ApiModel):
    observed_generation: int | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    unavailable_replicas: int | None = None
    conditions: Annotated[list[DeploymentCondition], MergeKey("type")] | None = None
    collision_count: int | None = None


class Deployment(ApiModel):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DeploymentSpec
    status: DeploymentStatus | None = None


class ReplicaSetCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class ReplicaSetSpec(ApiModel):
    replicas: int = 1
    min_ready_seconds: int | None = None
    selector: LabelSelector
    template: PodTemplateSpec | None = None


class ReplicaSetStatus(ApiModel):
    replicas: int = 0
    fully_labeled_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    observed_generation: int | None = None
    conditions: Annotated[list[ReplicaSetCondition], MergeKey("type")] | None = None


class ReplicaSet(ApiModel):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["ReplicaSet"] = "ReplicaSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ReplicaSetSpec
    status: ReplicaSetStatus | None = None
