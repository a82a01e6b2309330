"""kubeconfig files: the same format, search order and defaults as kubectl.

``corral up`` writes one; ``corral`` and the real ``kubectl`` both read it,
through ``--kubeconfig``, ``KUBECONFIG`` or ``~/.kube/config``.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path.home() / ".kube" / "config"


class KubeconfigError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything needed to reach one cluster as one user."""

    server: str
    namespace: str = "default"
    token: str | None = None
    ca_data: bytes | None = None
    insecure_skip_tls_verify: bool = False
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    context: str = ""
    source: str = ""
    # More API servers of the same cluster, tried in turn when ``server``
    # cannot be reached (corral's clients only: kubectl reads ``server``).
    fallback_servers: tuple[str, ...] = ()

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every API server URL, ``server`` first; a comma list in ``server`` counts too."""
        urls = [*split_servers(self.server), *self.fallback_servers]
        return tuple(dict.fromkeys(u.rstrip("/") for u in urls if u))


SERVERS_EXTENSION = "corral.io/servers"


def split_servers(value: str) -> list[str]:
    """``https://a:6443,https://b:6443`` into its URLs (one URL stays one)."""
    return [part.strip() for part in value.split(",") if part.strip()]


def extension_servers(cluster: dict[str, Any]) -> tuple[str, ...]:
    """The URLs a cluster's ``corral.io/servers`` extension lists, if it has one.

    kubectl keeps extensions it does not know and ignores them, so one
    kubeconfig serves both: kubectl uses ``server`` (the load balancer),
    corral's clients fail over across these.
    """
    for entry in cluster.get("extensions") or []:
        if not isinstance(entry, dict) or entry.get("name") != SERVERS_EXTENSION:
            continue
        extension = entry.get("extension") or {}
        urls = extension.get("servers") if isinstance(extension, dict) else None
        if isinstance(urls, list):
            return tuple(str(u) for u in urls if u)
    return ()


def search_paths(explicit: str | None = None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [DEFAULT_PATH]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    return data


def merged(paths: list[Path]) -> dict[str, Any]:
    """Merge several files the way kubectl does: the first definition of a name wins."""
    out: dict[str, Any] = {"clusters": [], "users": [], "contexts": [], "current-context": ""}
    seen: dict[str, set[str]] = {"clusters": set(), "users": set(), "contexts": set()}
    found_any = False
    for path in paths:
        if not path.exists():
            continue
        found_any = True
        data = _read(path)
        if not out["current-context"] and data.get("current-context"):
            out["current-context"] = data["current-context"]
        for section in ("clusters", "users", "contexts"):
            for entry in data.get(section) or []:
                name = entry.get("name")
                if isinstance(name, str) and name not in seen[section]:
                    seen[section].add(name)
                    out[section].append(entry)
    if not found_any:
        raise KubeconfigError(
            "no kubeconfig found (looked in "
            + ", ".join(str(p) for p in paths)
            + "); run `corral up` or pass --kubeconfig"
        )
    return out


def _named(data: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in data.get(section) or []:
        if entry.get("name") == name:
            value = entry.get(section[:-1]) or {}
            if isinstance(value, dict):
                return value
    raise KubeconfigError(f'{section[:-1]} "{name}" is not in the kubeconfig')


def _data_or_file(entry: dict[str, Any], data_key: str, file_key: str) -> bytes | None:
    if entry.get(data_key):
        return base64.b64decode(entry[data_key])
    if entry.get(file_key):
        return Path(entry[file_key]).read_bytes()
    return None


def load(
    explicit: str | None = None,
    *,
    context: str | None = None,
    server: str | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> ClientConfig:
    """Resolve the client configuration; flags override what the file says."""
    paths = search_paths(explicit)
    try:
        data = merged(paths)
    except KubeconfigError:
        if server:
            return ClientConfig(server=server, namespace=namespace or "default", token=token)
        raise
    context_name = context or data.get("current-context") or ""
    if not context_name:
        if server:
            return ClientConfig(server=server, namespace=namespace or "default", token=token)
        raise KubeconfigError("the kubeconfig has no current-context; pass --context")
    ctx = _named(data, "contexts", context_name)
    cluster = _named(data, "clusters", str(ctx.get("cluster", "")))
    user = _named(data, "users", str(ctx.get("user", ""))) if ctx.get("user") else {}
    user_token = user.get("token")
    if not user_token and user.get("tokenFile"):
        user_token = Path(user["tokenFile"]).read_text().strip()
    return ClientConfig(
        server=server or str(cluster.get("server", "")),
        namespace=namespace or str(ctx.get("namespace") or "default"),
        token=token or user_token,
        ca_data=_data_or_file(cluster, "certificate-authority-data", "certificate-authority"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        client_cert_data=_data_or_file(user, "client-certificate-data", "client-certificate"),
        client_key_data=_data_or_file(user, "client-key-data", "client-key"),
        context=context_name,
        source=os.pathsep.join(str(p) for p in paths),
        # A --server flag names the servers itself; the file's list is for its own server.
        fallback_servers=() if server else extension_servers(cluster),
    )


def build(
    name: str,
    server: str,
    *,
    token: str | None = None,
    ca_data: bytes | None = None,
    client_cert_data: bytes | None = None,
    client_key_data: bytes | None = None,
    namespace: str = "default",
    servers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A kubeconfig document with one cluster, one user and one context, all called ``name``.

    ``servers``: every API server behind ``server`` (a load balancer), for
    corral's own clients to fail over across.
    """
    cluster: dict[str, Any] = {"server": server}
    if servers:
        cluster["extensions"] = [
            {"name": SERVERS_EXTENSION, "extension": {"servers": list(servers)}}
        ]
    if ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    user: dict[str, Any] = {}
    if token:
        user["token"] = token
    if client_cert_data and client_key_data:
        user["client-certificate-data"] = base64.b64encode(client_cert_data).decode()
        user["client-key-data"] = base64.b64encode(client_key_data).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
    }


def write(path: Path, document: dict[str, Any]) -> None:
    """Write atomically and privately: the file holds credentials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".kubeconfig-")
    try:
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(document, handle, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def merge_into(target: Path, document: dict[str, Any], *, make_current: bool = True) -> None:
    """Add or replace ``document``'s entries in ``target``, as ``k3d kubeconfig merge`` does."""
    existing: dict[str, Any] = (
        _read(target)
        if target.exists()
        else {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [],
            "users": [],
            "contexts": [],
            "current-context": "",
        }
    )
    for section in ("clusters", "users", "contexts"):
        incoming = document.get(section) or []
        names = {entry.get("name") for entry in incoming}
        kept = [e for e in existing.get(section) or [] if e.get("name") not in names]
        existing[section] = kept + incoming
    if make_current and document.get("current-context"):
        existing["current-context"] = document["current-context"]
    write(target, existing)
