"""coordination.k8s.io/v1: Lease, for node heartbeats and leader election."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from corral.api.base import ApiModel, Time
from corral.api.meta import ObjectMeta


class LeaseSpec(ApiModel):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: Time | None = None
    renew_time: Time | None = None
    lease_transitions: int | None = None


class Lease(ApiModel):
    api_version: Literal["coordination.k8s.io/v1"] = "coordination.k8s.io/v1"
    kind: Literal["Lease"] = "Lease"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: LeaseSpec = Field(default_factory=LeaseSpec)
