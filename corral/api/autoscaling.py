"""autoscaling/v1: Scale, the body of every ``/scale`` subresource."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from corral.api.base import ApiModel
from corral.api.meta import ObjectMeta


class ScaleSpec(ApiModel):
    replicas: int | None = None


class ScaleStatus(ApiModel):
    replicas: int = 0
    selector: str | None = None


class Scale(ApiModel):
    api_version: Literal["autoscaling/v1"] = "autoscaling/v1"
    kind: Literal["Scale"] = "Scale"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ScaleSpec = Field(default_factory=ScaleSpec)
    status: ScaleStatus | None = None
