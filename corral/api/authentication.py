"""authentication.k8s.io/v1: TokenRequest, the body of ``serviceaccounts/<name>/token``."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from corral.api.base import ApiModel, Time
from corral.api.meta import ObjectMeta

API_VERSION: Final = "authentication.k8s.io/v1"


class BoundObjectReference(ApiModel):
    """The object a token lives no longer than: a Pod or a Secret."""

    kind: str | None = None
    api_version: str | None = None
    name: str | None = None
    uid: str | None = None


class TokenRequestSpec(ApiModel):
    # Required on the wire in Kubernetes, but may be empty: the API server's
    # own audiences then.
    audiences: list[str] | None = None
    expiration_seconds: int | None = None
    bound_object_ref: BoundObjectReference | None = None


class TokenRequestStatus(ApiModel):
    # A client's request carries Go's zero status, {"token": "", "expirationTimestamp":
    # null}: kubectl create token sends it so (as protobuf); the server fills it in.
    token: str = ""
    expiration_timestamp: Time | None = None


class TokenRequest(ApiModel):
    api_version: Literal["authentication.k8s.io/v1"] = API_VERSION
    kind: Literal["TokenRequest"] = "TokenRequest"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TokenRequestSpec = Field(default_factory=TokenRequestSpec)
    status: TokenRequestStatus | None = None
