"""policy/v1: PodDisruptionBudget and Eviction."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from corral.api.base import ApiModel, IntOrString, MergeKey, Time
from corral.api.meta import Condition, DeleteOptions, LabelSelector, ObjectMeta


class PodDisruptionBudgetSpec(ApiModel):
    min_available: IntOrString | None = None
    max_unavailable: IntOrString | None = None
    selector: LabelSelector | None = None
    unhealthy_pod_eviction_policy: Literal["IfHealthyBudget", "AlwaysAllow"] | None = None


class PodDisruptionBudgetStatus(ApiModel):
    observed_generation: int | None = None
    disrupted_pods: dict[str, Time] | None = None
    disruptions_allowed: int = 0
    current_healthy: int = 0
    desired_healthy: int = 0
    expected_pods: int = 0
    conditions: Annotated[list[Condition], MergeKey("type")] | None = None


class PodDisruptionBudget(ApiModel):
    api_version: Literal["policy/v1"] = "policy/v1"
    kind: Literal["PodDisruptionBudget"] = "PodDisruptionBudget"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodDisruptionBudgetSpec = Field(default_factory=PodDisruptionBudgetSpec)
    status: PodDisruptionBudgetStatus | None = None


class Eviction(ApiModel):
    api_version: Literal["policy/v1", "policy/v1beta1"] = "policy/v1"
    kind: Literal["Eviction"] = "Eviction"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    delete_options: DeleteOptions | None = None
