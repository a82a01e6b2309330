"""Both ends of adding a master: upload the sealed keys, and fetch them on the new host.

``corral token create --master`` (on a master) makes a short-lived bootstrap
token of the master-join group, seals the shared keys under a new
certificate key (``certbundle``), stores them where only that group may
read, and prints the join command. ``corral install master --join`` (on the
new host) fetches and opens them with the token and the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client, ConnectionFailed
from corralctl import bootstraptokens, certbundle
from corralctl.certbundle import Bundle, BundleError

# kubeadm's: the uploaded certificates outlive neither this nor the token.
MASTER_TOKEN_TTL = timedelta(hours=2)
MASTER_FILE = "master.json"

_secrets = REGISTRY.by_kind("v1", "Secret")
_roles = REGISTRY.by_kind("rbac.authorization.k8s.io/v1", "Role")
_bindings = REGISTRY.by_kind("rbac.authorization.k8s.io/v1", "RoleBinding")
assert _secrets is not None and _roles is not None and _bindings is not None
_SECRETS, _ROLES, _BINDINGS = _secrets, _roles, _bindings


@dataclass(frozen=True)
class MasterRecord:
    """What an installed master notes about itself in ``ETC/master.json``."""

    server: str
    etcd_name: str
    etcd_client_url: str
    etcd_peer_url: str
    etcd_local_url: str
    # The other members' client URLs when this one joined: where to reach
    # the cluster when this member is down.
    etcd_peers: tuple[str, ...] = ()

    @property
    def etcd_endpoints(self) -> list[str]:
        return [self.etcd_local_url, self.etcd_client_url, *self.etcd_peers]

    def write(self, etc_dir: Path) -> None:
        fields = {**self.__dict__, "etcd_peers": list(self.etcd_peers)}
        (etc_dir / MASTER_FILE).write_text(json.dumps(fields, indent=2) + "\n")

    @classmethod
    def read(cls, etc_dir: Path) -> MasterRecord | None:
        path = etc_dir / MASTER_FILE
        if not path.exists():
            return None
        fields = json.loads(path.read_text())
        return cls(**{**fields, "etcd_peers": tuple(fields.get("etcd_peers") or ())})


@dataclass(frozen=True)
class MasterToken:
    token: str
    certificate_key: str
    expires: datetime


async def _create_or_replace(client: Client, rt: Any, obj: dict[str, Any]) -> dict[str, Any]:
    try:
        created: dict[str, Any] = await client.create(rt, obj, certbundle.NAMESPACE)
        return created
    except ApiError as error:
        if error.code != 409:
            raise
    current = await client.get(rt, obj["metadata"]["name"], certbundle.NAMESPACE)
    obj = {
        **obj,
        "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
    }
    replaced: dict[str, Any] = await client.replace(rt, obj, certbundle.NAMESPACE)
    return replaced


async def upload(
    config: ClientConfig, etc_dir: Path, ttl: timedelta, *, now: datetime | None = None
) -> MasterToken:
    """A master-join token, and the shared keys sealed for it in the cluster."""
    record = MasterRecord.read(etc_dir)
    if record is None:
        raise BundleError(
            f"{etc_dir / MASTER_FILE} is missing: run this on a master that "
            "corral install master set up (or pass --etc-dir)"
        )
    files = certbundle.read_shared(etc_dir / "pki")
    now = now or datetime.now(UTC)
    token_id, token_secret = bootstraptokens.new_token()
    token_object = bootstraptokens.token_secret(
        token_id,
        token_secret,
        now=now,
        ttl=ttl,
        description="corral master join token",
        extra_groups=(certbundle.JOIN_GROUP,),
    )
    key = certbundle.new_certificate_key()
    sealed = certbundle.seal(Bundle(files, [record.etcd_client_url], now + ttl), key)
    async with Client(config) as client:
        created = await client.create(_SECRETS, token_object, certbundle.NAMESPACE)
        await _create_or_replace(client, _ROLES, certbundle.reader_role())
        await _create_or_replace(client, _BINDINGS, certbundle.reader_binding())
        await _create_or_replace(client, _SECRETS, certbundle.secret(sealed, created))
    return MasterToken(f"{token_id}.{token_secret}", key, now + ttl)


async def fetch(
    server: str, token: str, ca_data: bytes, certificate_key: str, *, now: datetime
) -> Bundle:
    """The shared keys, fetched with a master-join token and opened with the key."""
    config = ClientConfig(server=server, token=token, ca_data=ca_data)
    async with Client(config) as client:
        try:
            found = await client.get(_SECRETS, certbundle.SECRET_NAME, certbundle.NAMESPACE)
        except ApiError as error:
            raise BundleError(_fetch_failure(error)) from None
        except ConnectionFailed as error:
            raise BundleError(f"cannot reach {server}: {error}") from None
    return certbundle.open_sealed(certbundle.sealed_from(found), certificate_key, now=now)


def _fetch_failure(error: ApiError) -> str:
    if error.code == 401:
        return "--token: the API server does not accept it (wrong, expired or deleted)"
    if error.code == 403:
        return (
            "--token: it may not read the uploaded certificates; a master needs a token "
            "from corral token create --master"
        )
    if error.code == 404:
        return "no uploaded certificates: run corral token create --master on a master"
    return f"fetching the uploaded certificates: {error.reason}: {error.message}"
