"""Bootstrap tokens: how a new node proves it may join, before it has a certificate.

The format is Kubernetes': ``<id>.<secret>`` (6 and 16 characters of
``[a-z0-9]``), stored as the Secret ``kube-system/bootstrap-token-<id>`` of
type ``bootstrap.kubernetes.io/token``. Deleting the Secret revokes the
token; an ``expiration`` makes it lapse by itself.
"""

from __future__ import annotations

import base64
import secrets
import string
from datetime import datetime, timedelta
from typing import Any

from corral.clock import rfc3339

TOKEN_TYPE = "bootstrap.kubernetes.io/token"
NAMESPACE = "kube-system"
_ALPHABET = string.ascii_lowercase + string.digits


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_token() -> tuple[str, str]:
    """``(token_id, token_secret)``; the token is ``f"{id}.{secret}"``."""
    return _random(6), _random(16)


def secret_name(token_id: str) -> str:
    return f"bootstrap-token-{token_id}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret(
    token_id: str,
    token_secret: str,
    *,
    now: datetime,
    ttl: timedelta | None,
    description: str = "",
    extra_groups: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The Secret that makes ``<id>.<secret>`` a valid token for joining nodes."""
    data = {
        "token-id": _b64(token_id),
        "token-secret": _b64(token_secret),
        "usage-bootstrap-authentication": _b64("true"),
    }
    if ttl is not None:
        data["expiration"] = _b64(rfc3339(now + ttl))
    if description:
        data["description"] = _b64(description)
    if extra_groups:
        # Kubernetes' field: groups beyond system:bootstrappers, for RBAC to name.
        data["auth-extra-groups"] = _b64(",".join(extra_groups))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(token_id), "namespace": NAMESPACE},
        "type": TOKEN_TYPE,
        "data": data,
    }
