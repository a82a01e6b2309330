"""metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics (resource usage, read-only).

The API server builds these from what node agents report (controlplane/
usage); they are never written, so the models serve the OpenAPI documents.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from corral.api.base import ApiModel, Quantity, Time
from corral.api.meta import ObjectMeta


class ContainerMetrics(ApiModel):
    name: str = ""
    usage: dict[str, Quantity] = Field(default_factory=dict)


class NodeMetrics(ApiModel):
    api_version: Literal["metrics.k8s.io/v1beta1"] = "metrics.k8s.io/v1beta1"
    kind: Literal["NodeMetrics"] = "NodeMetrics"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    timestamp: Time | None = None
    window: str | None = None
    usage: dict[str, Quantity] = Field(default_factory=dict)


class PodMetrics(ApiModel):
    api_version: Literal["metrics.k8s.io/v1beta1"] = "metrics.k8s.io/v1beta1"
    kind: Literal["PodMetrics"] = "PodMetrics"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    timestamp: Time | None = None
    window: str | None = None
    containers: list[ContainerMetrics] = Field(default_factory=list)
