"""Encryption at rest: Secrets in etcd as AES-GCM ciphertext, in Kubernetes' format.

The key file is Kubernetes' ``EncryptionConfiguration``::

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - aesgcm:
              keys:
                - name: key2                         # the first key encrypts
                  secret: <base64 of 32 random bytes>
                - name: key1                         # every key decrypts
                  secret: <...>
          - identity: {}                             # reads values written in the clear

A value encrypted with key ``key2`` is stored as
``k8s:enc:aesgcm:v1:key2:`` + 12-byte random nonce + ciphertext and tag, and
the etcd key is the additional authenticated data, so a value copied under
another key does not decrypt. Reading tries the providers in order, by
prefix, exactly as Kubernetes does: an ``identity`` provider listed first
(to migrate away from encryption) still lets encrypted values be read.

Only ``aesgcm`` and ``identity`` are supported; ``aescbc``, ``secretbox``
and ``kms`` are refused at load time rather than ignored. Nothing here logs
or puts into an error message a value, a plaintext or a key.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from controlplane.storage.etcd import EtcdClient, compare_mod_revision, op_put, prefix_end

ENCRYPTED_PREFIX = b"k8s:enc:"
AESGCM_PREFIX = "k8s:enc:aesgcm:v1:"
NONCE_BYTES = 12
KEY_BYTES = 32
CONFIG_API_VERSIONS = ("apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1beta1")
CONFIG_KIND = "EncryptionConfiguration"


class EncryptionError(Exception):
    """A stored value that cannot be read back: wrong key, corrupt, or unconfigured."""


class EncryptionConfigError(ValueError):
    """The key file is not a usable EncryptionConfiguration."""


class Transformer(Protocol):
    """Turns a value into what is stored for ``resource`` and back.

    ``context`` is authenticated but not stored: the API server passes the
    etcd key, which binds each ciphertext to its key.
    """

    def to_storage(self, resource: str, data: bytes, context: bytes = b"") -> bytes: ...

    def from_storage(self, resource: str, data: bytes, context: bytes = b"") -> bytes: ...


class IdentityTransformer:
    """No encryption: the store's default."""

    def to_storage(self, resource: str, data: bytes, context: bytes = b"") -> bytes:
        return data

    def from_storage(self, resource: str, data: bytes, context: bytes = b"") -> bytes:
        if data.startswith(ENCRYPTED_PREFIX):
            raise EncryptionError(
                f"a stored {resource} value is encrypted, but no encryption is configured for it"
            )
        return data


IDENTITY = IdentityTransformer()


# --- providers -----------------------------------------------------------------------


class _Provider(Protocol):
    @property
    def prefix(self) -> bytes: ...

    def encrypt(self, data: bytes, context: bytes) -> bytes: ...

    def decrypt(self, body: bytes, context: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class _AesGcmKey:
    name: str
    prefix: bytes
    cipher: AESGCM

    def encrypt(self, data: bytes, context: bytes) -> bytes:
        # A random 96-bit nonce per write: safe for far more writes than a key
        # should live for (rotate well before 2**32 writes with one key).
        nonce = os.urandom(NONCE_BYTES)
        return self.prefix + nonce + self.cipher.encrypt(nonce, data, context)

    def decrypt(self, body: bytes, context: bytes) -> bytes:
        if len(body) < NONCE_BYTES + 16:
            raise EncryptionError(f"the value encrypted with key {self.name!r} is truncated")
        try:
            return self.cipher.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], context)
        except InvalidTag:
            raise EncryptionError(
                f"the value encrypted with key {self.name!r} failed authentication: "
                "it is corrupt, was copied from another key, or the key is wrong"
            ) from None


class _Identity:
    prefix = b""

    def encrypt(self, data: bytes, context: bytes) -> bytes:
        return data

    def decrypt(self, body: bytes, context: bytes) -> bytes:
        if body.startswith(ENCRYPTED_PREFIX):
            raise EncryptionError("the identity provider cannot read an encrypted value")
        return body


@dataclass(frozen=True, slots=True)
class ProviderChain:
    """The providers for one set of resources: the first writes, any may read."""

    providers: tuple[_Provider, ...]

    @property
    def writer_prefix(self) -> bytes:
        return self.providers[0].prefix

    def encrypt(self, data: bytes, context: bytes) -> bytes:
        return self.providers[0].encrypt(data, context)

    def decrypt(self, data: bytes, context: bytes) -> bytes:
        failure: EncryptionError | None = None
        for provider in self.providers:
            if not data.startswith(provider.prefix):
                continue
            try:
                return provider.decrypt(data[len(provider.prefix) :], context)
            except EncryptionError as error:
                if provider.prefix:
                    raise
                failure = error  # identity listed first: try the ones after it
        if failure is not None:
            raise EncryptionError("no configured key can read this value") from None
        raise EncryptionError("no configured provider matches how this value was stored")

    def is_stale(self, data: bytes) -> bool:
        """Whether the value was written by anything but the current first provider."""
        prefix = self.writer_prefix
        if prefix:
            return not data.startswith(prefix)
        return data.startswith(ENCRYPTED_PREFIX)


class EncryptionTransformer:
    """Encrypts the configured resources; passes every other one through untouched."""

    def __init__(self, chains: Mapping[str, ProviderChain]) -> None:
        self.chains = dict(chains)

    @property
    def resources(self) -> frozenset[str]:
        return frozenset(self.chains)

    def to_storage(self, resource: str, data: bytes, context: bytes = b"") -> bytes:
        chain = self.chains.get(resource)
        return data if chain is None else chain.encrypt(data, context)

    def from_storage(self, resource: str, data: bytes, context: bytes = b"") -> bytes:
        chain = self.chains.get(resource)
        if chain is None:
            return IDENTITY.from_storage(resource, data, context)
        return chain.decrypt(data, context)

    def is_stale(self, resource: str, data: bytes) -> bool:
        chain = self.chains.get(resource)
        if chain is None:
            return data.startswith(ENCRYPTED_PREFIX)
        return chain.is_stale(data)


# --- the configuration file -------------------------------------------------------------


def _fail(where: str, message: str) -> EncryptionConfigError:
    return EncryptionConfigError(f"{where}: {message}")


def _aesgcm(spec: Any, where: str) -> list[_Provider]:
    keys = spec.get("keys") if isinstance(spec, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise _fail(f"{where}.keys", "at least one key is required")
    out: list[_Provider] = []
    seen: set[str] = set()
    for i, key in enumerate(keys):
        at = f"{where}.keys[{i}]"
        if not isinstance(key, Mapping):
            raise _fail(at, "must be an object with name and secret")
        name = key.get("name")
        if not isinstance(name, str) or not name or ":" in name:
            raise _fail(f"{at}.name", "a non-empty name without ':' is required")
        if name in seen:
            raise _fail(f"{at}.name", f"duplicate key name {name!r}")
        seen.add(name)
        secret = key.get("secret")
        try:
            raw = base64.b64decode(secret if isinstance(secret, str) else "", validate=True)
        except (binascii.Error, ValueError):
            raise _fail(f"{at}.secret", "must be base64") from None
        if len(raw) != KEY_BYTES:
            # Never echo the secret; its length is harmless and helps.
            raise _fail(f"{at}.secret", f"must decode to {KEY_BYTES} bytes, not {len(raw)}")
        prefix = f"{AESGCM_PREFIX}{name}:".encode()
        out.append(_AesGcmKey(name, prefix, AESGCM(raw)))
    return out


def _providers(raw: Any, where: str) -> ProviderChain:
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "at least one provider is required")
    providers: list[_Provider] = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise _fail(at, "each provider is an object with exactly one of aesgcm, identity")
        (kind, spec), *_ = entry.items()
        if kind == "aesgcm":
            providers.extend(_aesgcm(spec, f"{at}.aesgcm"))
        elif kind == "identity":
            providers.append(_Identity())
        else:
            raise _fail(at, f"unsupported provider {kind!r}: corral supports aesgcm and identity")
    return ProviderChain(tuple(providers))


def parse_config(document: Any) -> EncryptionTransformer:
    if not isinstance(document, Mapping):
        raise EncryptionConfigError("the encryption configuration must be a YAML object")
    if document.get("kind") != CONFIG_KIND:
        raise _fail("kind", f"must be {CONFIG_KIND}")
    if document.get("apiVersion") not in CONFIG_API_VERSIONS:
        raise _fail("apiVersion", f"must be one of {', '.join(CONFIG_API_VERSIONS)}")
    entries = document.get("resources")
    if not isinstance(entries, list) or not entries:
        raise _fail("resources", "at least one entry is required")
    chains: dict[str, ProviderChain] = {}
    for i, entry in enumerate(entries):
        at = f"resources[{i}]"
        if not isinstance(entry, Mapping):
            raise _fail(at, "must be an object with resources and providers")
        names = entry.get("resources")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise _fail(f"{at}.resources", "a list of resource names is required")
        chain = _providers(entry.get("providers"), f"{at}.providers")
        for name in names:
            # "secrets" and Kubernetes' "secrets." (core group) mean the same.
            resource = name.rstrip(".")
            if resource in chains:
                raise _fail(f"{at}.resources", f"{resource!r} is configured twice")
            chains[resource] = chain
    return EncryptionTransformer(chains)


def load_config(path: str | Path) -> EncryptionTransformer:
    """Read a key file. Errors say where the problem is, never what a secret is."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise EncryptionConfigError(f"cannot read {path}: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        raise EncryptionConfigError(f"{path} is not valid YAML") from None
    return parse_config(document)


def generate_key() -> str:
    """A new 256-bit key, base64-encoded as the key file wants it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def new_config(resources: Sequence[str] = ("secrets",), key_name: str = "key1") -> str:
    """A fresh key file: one new AES-GCM key, then identity to read old plaintext."""
    document = {
        "apiVersion": CONFIG_API_VERSIONS[0],
        "kind": CONFIG_KIND,
        "resources": [
            {
                "resources": list(resources),
                "providers": [
                    {"aesgcm": {"keys": [{"name": key_name, "secret": generate_key()}]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def add_key(document: Any, key_name: str) -> dict[str, Any]:
    """The configuration with a new first key for every aesgcm provider (old keys kept).

    Step one of a rotation; step two is ``reencrypt``; step three is
    dropping the old keys once nothing is stale.
    """
    parse_config(document)  # refuse to rotate a configuration that does not load
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(document))
    for entry in out["resources"]:
        for provider in entry["providers"]:
            if "aesgcm" in provider:
                keys = provider["aesgcm"]["keys"]
                if any(k.get("name") == key_name for k in keys):
                    raise EncryptionConfigError(f"a key named {key_name!r} already exists")
                keys.insert(0, {"name": key_name, "secret": generate_key()})
    parse_config(out)
    return out


# --- the store's side -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StorageCodec:
    """What the store and the watch cache call: values in and out, keyed by etcd key.

    The resource is read from the key (``<prefix>/<resource>/...``), and the
    key itself is the authenticated context.
    """

    transformer: Transformer = field(default=IDENTITY)
    prefix: str = "/registry"

    def resource_of(self, key: bytes) -> str:
        start = len(self.prefix.rstrip("/")) + 1
        end = key.find(b"/", start)
        return key[start : end if end >= 0 else len(key)].decode()

    def encode(self, key: bytes, data: bytes) -> bytes:
        return self.transformer.to_storage(self.resource_of(key), data, key)

    def decode(self, key: bytes, data: bytes) -> bytes:
        return self.transformer.from_storage(self.resource_of(key), data, key)


# --- re-encryption after a key change -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredValue:
    key: bytes
    value: bytes
    mod_revision: int


class RewriteTarget(Protocol):
    """The two etcd operations a re-encryption needs."""

    async def scan(self, start: bytes, end: bytes, limit: int) -> tuple[list[StoredValue], bool]:
        """Up to ``limit`` values in [start, end), and whether more follow."""
        ...

    async def compare_and_put(self, key: bytes, value: bytes, mod_revision: int) -> bool:
        """Write ``value`` if ``key`` is still at ``mod_revision``."""
        ...


@dataclass(slots=True)
class RewriteReport:
    scanned: int = 0
    rewritten: int = 0
    # Keys changed by someone else mid-rewrite: their new value was written
    # with the current key anyway, so they need nothing more.
    raced: int = 0
    failed: list[str] = field(default_factory=list)


def _next_key(key: bytes) -> bytes:
    return key + b"\0"


async def reencrypt(
    target: RewriteTarget,
    codec: StorageCodec,
    resources: Iterable[str],
    *,
    transformer: EncryptionTransformer,
    page_size: int = 500,
) -> RewriteReport:
    """Rewrite every stored value of ``resources`` not written with the current first key.

    Each rewrite is a compare-and-swap on the value's revision, so a
    concurrent client write is never lost. Values that cannot be decrypted
    are reported by key (never by content) and left alone.
    """
    report = RewriteReport()
    base = codec.prefix.rstrip("/")
    for resource in resources:
        prefix = f"{base}/{resource}/".encode()
        end = prefix_end(prefix)
        start = prefix
        more = True
        while more:
            values, more = await target.scan(start, end, page_size)
            for stored in values:
                report.scanned += 1
                if not transformer.is_stale(resource, stored.value):
                    continue
                try:
                    plain = codec.decode(stored.key, stored.value)
                except EncryptionError:
                    report.failed.append(stored.key.decode(errors="replace"))
                    continue
                fresh = codec.encode(stored.key, plain)
                if await target.compare_and_put(stored.key, fresh, stored.mod_revision):
                    report.rewritten += 1
                else:
                    report.raced += 1
            if values:
                start = _next_key(values[-1].key)
            else:
                more = False
    return report


class EtcdRewriteTarget:
    """``RewriteTarget`` over corral's etcd client."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client

    async def scan(self, start: bytes, end: bytes, limit: int) -> tuple[list[StoredValue], bool]:
        result = await self.client.range(start, end, limit=limit)
        return [StoredValue(kv.key, kv.value, kv.mod_revision) for kv in result.kvs], result.more

    async def compare_and_put(self, key: bytes, value: bytes, mod_revision: int) -> bool:
        result = await self.client.txn(
            [compare_mod_revision(key, mod_revision)], [op_put(key, value)]
        )
        return result.succeeded
