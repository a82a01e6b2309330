"""The cluster's secret keys, sealed for a master that joins: kubeadm's ``upload-certs``.

A new master needs the keys every master shares: the cluster CA and the
node-serving CA (to issue certificates), the service-account signing key
(tokens one master signs, another verifies), the Secrets encryption key
(to read what another master wrote), the static admin token and etcd's CA
(to issue its own etcd serving, peer and client certificates). Its serving
certificates it mints itself, for its own addresses.

The keys travel as one Secret, ``kube-system/corral-certs``, whose only
value is AES-256-GCM ciphertext under a *certificate key* that never enters
the cluster: the operator hands it to the joining host with the join
command. Reading the Secret takes a bootstrap token of the master-join
group (a Role names just this Secret); decrypting it takes the key. Either
alone opens nothing, and the sealed plaintext carries its own expiry, the
token's.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from corral.clock import parse_rfc3339, rfc3339

SECRET_NAME = "corral-certs"
NAMESPACE = "kube-system"
# The extra group a master-join bootstrap token carries, and the only subject
# the Role that reads the sealed Secret is bound to.
JOIN_GROUP = "system:bootstrappers:corral:master-join"
ROLE_NAME = "corral:corral-certs"
_FORMAT = "corral-certs/v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_DATA_KEY = "bundle"

# Relative to the cluster's pki/ directory: what every master must share.
SHARED_FILES = (
    "ca.crt",
    "ca.key",
    "node-serving-ca.crt",
    "node-serving-ca.key",
    "sa.key",
    "sa.pub",
    "tokens.csv",
    "encryption.yaml",
    "etcd/ca.crt",
    "etcd/ca.key",
)


class BundleError(Exception):
    """The bundle cannot be opened: a wrong key, damage, expiry or a missing file."""


@dataclass(frozen=True)
class Bundle:
    files: dict[str, bytes]
    """``{path under pki/: content}``."""
    etcd_endpoints: list[str]
    """Client URLs of the cluster's etcd members, for the member API."""
    expires: datetime | None


def new_certificate_key() -> str:
    """A fresh AES-256 key, hex: what ``--certificate-key`` takes."""
    return secrets.token_hex(_KEY_BYTES)


def _key(certificate_key: str) -> bytes:
    try:
        key = bytes.fromhex(certificate_key)
    except ValueError:
        raise BundleError("--certificate-key: not a hex string") from None
    if len(key) != _KEY_BYTES:
        raise BundleError(f"--certificate-key: {_KEY_BYTES * 2} hex digits expected")
    return key


def read_shared(pki_dir: Path) -> dict[str, bytes]:
    """The shared files of a master's ``pki/``; every one must be there."""
    missing = [name for name in SHARED_FILES if not (pki_dir / name).is_file()]
    if missing:
        raise BundleError(f"{pki_dir} lacks {', '.join(missing)}: is this a master's pki/?")
    return {name: (pki_dir / name).read_bytes() for name in SHARED_FILES}


def seal(bundle: Bundle, certificate_key: str) -> bytes:
    """``nonce || AES-GCM(plaintext)``, the plaintext bound to this format by the AAD."""
    plain = json.dumps(
        {
            "format": _FORMAT,
            "files": {k: base64.b64encode(v).decode() for k, v in bundle.files.items()},
            "etcdEndpoints": bundle.etcd_endpoints,
            "expires": rfc3339(bundle.expires) if bundle.expires else None,
        }
    ).encode()
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(_key(certificate_key)).encrypt(nonce, plain, _FORMAT.encode())


def open_sealed(sealed: bytes, certificate_key: str, *, now: datetime) -> Bundle:
    """The bundle, if ``certificate_key`` seals it and it has not expired."""
    key = _key(certificate_key)
    if len(sealed) <= _NONCE_BYTES:
        raise BundleError("the uploaded certificates are damaged (too short)")
    try:
        plain = AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _FORMAT.encode())
    except InvalidTag:
        raise BundleError(
            "the certificate key does not open the uploaded certificates: a wrong "
            "--certificate-key, or they were uploaded again since (corral token create "
            "--master prints a new one each time)"
        ) from None
    data: dict[str, Any] = json.loads(plain)
    expires = parse_rfc3339(data["expires"]) if data.get("expires") else None
    if expires is not None and expires <= now:
        raise BundleError(
            f"the uploaded certificates expired at {data['expires']}: "
            "run corral token create --master again"
        )
    files = {str(k): base64.b64decode(v) for k, v in data["files"].items()}
    for name in files:
        if name not in SHARED_FILES:
            raise BundleError(f"the uploaded certificates hold an unexpected file {name!r}")
    return Bundle(files, [str(e) for e in data.get("etcdEndpoints") or []], expires)


def secret(sealed: bytes, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Secret holding ``sealed``; owned by the join token's Secret, so it goes with it."""
    metadata: dict[str, Any] = {"name": SECRET_NAME, "namespace": NAMESPACE}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {_DATA_KEY: base64.b64encode(sealed).decode()},
    }


def sealed_from(secret_object: dict[str, Any]) -> bytes:
    value = (secret_object.get("data") or {}).get(_DATA_KEY)
    if not value:
        raise BundleError(f"the Secret {NAMESPACE}/{SECRET_NAME} holds no {_DATA_KEY!r}")
    return base64.b64decode(value)


def reader_role() -> dict[str, Any]:
    """May get the sealed Secret and nothing else: kubeadm's ``kubeadm:kubeadm-certs``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": ROLE_NAME, "namespace": NAMESPACE},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [SECRET_NAME],
                "verbs": ["get"],
            }
        ],
    }


def reader_binding() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ROLE_NAME, "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": JOIN_GROUP}
        ],
    }
