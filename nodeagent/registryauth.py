"""Registry credentials for an image, from a pod's dockerconfigjson pull Secrets."""

from __future__ import annotations

import base64

import orjson

from corral.objects import Obj
from nodeagent.runtime.base import ImageAuth


def registry_of(image: str) -> str:
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def auth_for(image: str, secrets: list[Obj]) -> ImageAuth | None:
    """Credentials for ``image`` from dockerconfigjson Secrets, as the kubelet looks them up."""
    registry = registry_of(image)
    for secret in secrets:
        raw = (secret.get("data") or {}).get(".dockerconfigjson")
        if not raw:
            continue
        try:
            config = orjson.loads(base64.b64decode(raw))
        except (ValueError, orjson.JSONDecodeError):
            # As the kubelet does: a malformed pull Secret is skipped, and the
            # pull goes on with the next Secret's credentials (or none).
            continue
        for server, entry in (config.get("auths") or {}).items():
            if not _serves(server, registry):
                continue
            username, password = entry.get("username"), entry.get("password")
            if (not username or not password) and entry.get("auth"):
                decoded = base64.b64decode(entry["auth"]).decode(errors="replace")
                username, _, password = decoded.partition(":")
            if username and password:
                return ImageAuth(username, password, registry)
    return None


# Docker Hub's names as docker login writes them into a config's "auths".
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def _serves(server: str, registry: str) -> bool:
    """Whether a dockerconfigjson ``auths`` key names ``registry``.

    Exact host names only: a Docker Hub login must never be offered to
    another registry (a pod could name any host as its image's registry),
    nor to a look-alike such as ``evildocker.io``.
    """
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if registry == "docker.io":
        return host in _DOCKER_HUB
    return host == registry
