"""apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet and ControllerRevision."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from corral.api.base import ApiModel, IntOrString, MergeKey, RetainKeys, Time
from corral.api.containers import ResourceRequirements
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


# --- StatefulSet ------------------------------------------------------------------------------


class RollingUpdateStatefulSetStrategy(ApiModel):
    partition: int | None = None
    max_unavailable: IntOrString | None = None


class StatefulSetUpdateStrategy(ApiModel):
    type: Literal["RollingUpdate", "OnDelete"] = "RollingUpdate"
    rolling_update: RollingUpdateStatefulSetStrategy | None = None

    @model_validator(mode="after")
    def _default_rolling_update(self) -> StatefulSetUpdateStrategy:
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateStatefulSetStrategy(partition=0)
        elif self.rolling_update is not None and self.rolling_update.partition is None:
            self.rolling_update.partition = 0
        return self


class StatefulSetPersistentVolumeClaimRetentionPolicy(ApiModel):
    when_deleted: Literal["Retain", "Delete"] = "Retain"
    when_scaled: Literal["Retain", "Delete"] = "Retain"


class StatefulSetOrdinals(ApiModel):
    start: int = 0


class ClaimTemplateSpec(ApiModel):
    """The parts of a PersistentVolumeClaim's spec a claim template may carry."""

    access_modes: list[str] | None = None
    selector: LabelSelector | None = None
    resources: ResourceRequirements | None = None
    volume_name: str | None = None
    storage_class_name: str | None = None
    volume_mode: Literal["Filesystem", "Block"] | None = None


class ClaimTemplateStatus(ApiModel):
    # kubectl and Helm write ``status: {phase: Pending}`` into templates; it means nothing.
    phase: str | None = None


class PersistentVolumeClaimTemplate(ApiModel):
    api_version: Literal["v1"] | None = None
    kind: Literal["PersistentVolumeClaim"] | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ClaimTemplateSpec = Field(default_factory=ClaimTemplateSpec)
    status: ClaimTemplateStatus | None = None


class StatefulSetSpec(ApiModel):
    replicas: int = 1
    selector: LabelSelector
    template: PodTemplateSpec
    volume_claim_templates: list[PersistentVolumeClaimTemplate] | None = None
    service_name: str | None = None
    pod_management_policy: Literal["OrderedReady", "Parallel"] = "OrderedReady"
    update_strategy: Annotated[StatefulSetUpdateStrategy, RetainKeys()] = Field(
        default_factory=StatefulSetUpdateStrategy
    )
    revision_history_limit: int = 10
    min_ready_seconds: int | None = None
    persistent_volume_claim_retention_policy: (
        StatefulSetPersistentVolumeClaimRetentionPolicy | None
    ) = Field(default_factory=StatefulSetPersistentVolumeClaimRetentionPolicy)
    ordinals: StatefulSetOrdinals | None = None


class StatefulSetCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class StatefulSetStatus(ApiModel):
    observed_generation: int | None = None
    replicas: int = 0
    ready_replicas: int | None = None
    current_replicas: int | None = None
    updated_replicas: int | None = None
    available_replicas: int | None = None
    current_revision: str | None = None
    update_revision: str | None = None
    collision_count: int | None = None
    conditions: Annotated[list[StatefulSetCondition], MergeKey("type")] | None = None


class StatefulSet(ApiModel):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["StatefulSet"] = "StatefulSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: StatefulSetSpec
    status: StatefulSetStatus | None = None


# --- DaemonSet --------------------------------------------------------------------------------


class RollingUpdateDaemonSet(ApiModel):
    max_unavailable: IntOrString | None = 1
    max_surge: IntOrString | None = 0


class DaemonSetUpdateStrategy(ApiModel):
    type: Literal["RollingUpdate", "OnDelete"] = "RollingUpdate"
    rolling_update: RollingUpdateDaemonSet | None = None

    @model_validator(mode="after")
    def _default_rolling_update(self) -> DaemonSetUpdateStrategy:
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateDaemonSet()
        return self


class DaemonSetSpec(ApiModel):
    selector: LabelSelector
    template: PodTemplateSpec
    update_strategy: Annotated[DaemonSetUpdateStrategy, RetainKeys()] = Field(
        default_factory=DaemonSetUpdateStrategy
    )
    min_ready_seconds: int | None = None
    revision_history_limit: int = 10


class DaemonSetCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class DaemonSetStatus(ApiModel):
    # The first four are always written, as Kubernetes' JSON (no omitempty) has them.
    current_number_scheduled: int = 0
    number_misscheduled: int = 0
    desired_number_scheduled: int = 0
    number_ready: int = 0
    observed_generation: int | None = None
    updated_number_scheduled: int | None = None
    number_available: int | None = None
    number_unavailable: int | None = None
    collision_count: int | None = None
    conditions: Annotated[list[DaemonSetCondition], MergeKey("type")] | None = None


class DaemonSet(ApiModel):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["DaemonSet"] = "DaemonSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DaemonSetSpec
    status: DaemonSetStatus | None = None


class ControllerRevision(ApiModel):
    """One immutable revision of a StatefulSet's (or DaemonSet's) template."""

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["ControllerRevision"] = "ControllerRevision"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    data: dict[str, Any] | None = None
    revision: int
