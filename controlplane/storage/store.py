"""Objects in etcd, with Kubernetes' meaning of a write.

- A key is ``/registry/<resource>/<namespace>/<name>`` (cluster-scoped kinds
  leave the namespace out); a value is the object's JSON.
- ``metadata.resourceVersion`` is the key's mod_revision. It is never stored
  inside the value (it cannot be known before the write); it is put back on
  every read.
- Every write is one etcd transaction whose compares carry its
  preconditions, so an acknowledged write is in etcd and a lost race is a
  ``Conflict``, never a silent overwrite.
- The client asks again when an attempt got no definite answer (a leader
  died under it). The compares make a repeat of an applied write fail, so a
  failed compare after such an attempt is settled by reading the key back:
  the exact bytes this write sent (fresh uid, timestamps, an encryption
  nonce) mean it was applied; when the reads cannot tell, the write fails as
  etcd being unavailable (503), never as a conflict that would invite the
  caller to apply its change a second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from controlplane.storage import etcd
from controlplane.storage.etcd import EtcdClient, KeyValue
from controlplane.storage.leases import LeaseManager
from controlplane.storage.metrics import timed
from controlplane.storage.readdefaults import fill_read_defaults
from corral.objects import Obj, meta


class StorageError(Exception):
    pass


def _undecided(key: bytes) -> etcd.EtcdUnavailable:
    return etcd.EtcdUnavailable(
        f"etcd did not answer a write to {key.decode()} in time, and whether it was "
        "applied cannot be told"
    )


class KeyExists(StorageError):
    pass


class NotFound(StorageError):
    pass


class Conflict(StorageError):
    """The object changed since the revision the write was based on."""

    def __init__(self, current: Stored | None) -> None:
        super().__init__("the object has been modified")
        self.current = current


class PreconditionFailed(StorageError):
    """A key the write depends on (such as its namespace) is missing or changed."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key.decode())
        self.key = key


@dataclass(frozen=True, slots=True)
class Stored:
    obj: Obj
    revision: int


class ValueCodec(Protocol):
    """Turns stored bytes into JSON and back (encryption at rest), by etcd key."""

    def encode(self, key: bytes, data: bytes) -> bytes: ...

    def decode(self, key: bytes, data: bytes) -> bytes: ...


def decode(kv: KeyValue, codec: ValueCodec | None = None) -> Stored:
    value = codec.decode(kv.key, kv.value) if codec is not None else kv.value
    obj = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    fill_read_defaults(kv.key, obj)
    return Stored(obj, kv.mod_revision)


def encode(obj: Obj) -> bytes:
    metadata = obj.get("metadata")
    if metadata and "resourceVersion" in metadata:
        stripped = dict(obj)
        stripped["metadata"] = {k: v for k, v in metadata.items() if k != "resourceVersion"}
        return orjson.dumps(stripped)
    return orjson.dumps(obj)


def with_revision(obj: Obj, revision: int) -> Obj:
    out = dict(obj)
    out["metadata"] = {**meta(obj), "resourceVersion": str(revision)}
    return out


@dataclass(frozen=True, slots=True)
class Requirement:
    """A key that must exist, optionally at an exact revision, for a write to apply."""

    key: bytes
    revision: int | None = None

    def compare(self) -> Any:
        if self.revision is None:
            return etcd.compare_present(self.key)
        return etcd.compare_mod_revision(self.key, self.revision)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Stored]
    revision: int
    more: bool
    remaining: int


class Store:
    def __init__(
        self,
        client: EtcdClient,
        prefix: str = "/registry",
        codec: ValueCodec | None = None,
        *,
        expiring: Mapping[str, float] | None = None,
        leases: LeaseManager | None = None,
    ) -> None:
        self.etcd = client
        self.prefix = prefix.rstrip("/")
        self.codec = codec
        # resource -> seconds: its objects are written with a lease that
        # long (Events), and etcd deletes them when it expires.
        self._ttl = {self.resource_prefix(r): ttl for r, ttl in (expiring or {}).items()}
        self.leases = leases

    async def _put(self, key: bytes, obj: Obj, encoded: bytes | None) -> Any:
        value = self._value(key, obj, encoded)
        for prefix, ttl in self._ttl.items():
            if key.startswith(prefix) and self.leases is not None:
                return etcd.op_put(key, value, await self.leases.lease_for(ttl))
        return etcd.op_put(key, value)

    def decode(self, kv: KeyValue) -> Stored:
        return decode(kv, self.codec)

    def _value(self, key: bytes, obj: Obj, encoded: bytes | None = None) -> bytes:
        data = encode(obj) if encoded is None else encoded
        return self.codec.encode(key, data) if self.codec is not None else data

    # --- keys ---------------------------------------------------------------------

    def key(self, resource: str, namespace: str | None, name: str) -> bytes:
        if namespace:
            return f"{self.prefix}/{resource}/{namespace}/{name}".encode()
        return f"{self.prefix}/{resource}/{name}".encode()

    def resource_prefix(self, resource: str, namespace: str | None = None) -> bytes:
        if namespace:
            return f"{self.prefix}/{resource}/{namespace}/".encode()
        return f"{self.prefix}/{resource}/".encode()

    # --- reads --------------------------------------------------------------------

    async def get(self, key: bytes) -> Stored | None:
        with timed("get", self.prefix, key):
            kv, _ = await self.etcd.get(key)
        return self.decode(kv) if kv is not None else None

    async def page(
        self,
        prefix: bytes,
        *,
        revision: int = 0,
        limit: int = 0,
        start: bytes | None = None,
    ) -> Page:
        end = etcd.prefix_end(prefix)
        with timed("list", self.prefix, prefix):
            result = await self.etcd.range(start or prefix, end, revision=revision, limit=limit)
        items = [self.decode(kv) for kv in result.kvs]
        remaining = max(result.count - len(items), 0) if result.more else 0
        return Page(items, result.revision, result.more, remaining)

    async def current_revision(self) -> int:
        return await self.etcd.current_revision()

    # --- writes -------------------------------------------------------------------

    async def create(
        self,
        key: bytes,
        obj: Obj,
        requirements: Sequence[Requirement] = (),
        *,
        encoded: bytes | None = None,
    ) -> Stored:
        """Write ``obj`` if ``key`` is absent. ``encoded``, when given, must be
        ``encode(obj)``: a caller that already encoded it (to check its size)
        saves the second encoding."""
        compares = [etcd.compare_absent(key), *(r.compare() for r in requirements)]
        put = await self._put(key, obj, encoded)
        with timed("create", self.prefix, key):
            result = await self.etcd.txn(compares, [put])
        if not result.succeeded:
            # Failure is the rare path: find out why with reads rather than
            # making every create carry them.
            found, _ = await self.etcd.get(key)
            if found is not None:
                if result.retried:
                    revision = await self._settle_create(found, put.request_put.value)
                    return Stored(with_revision(obj, revision), revision)
                raise KeyExists(key.decode())
            current = [
                [kv] if (kv := (await self.etcd.get(r.key))[0]) else [] for r in requirements
            ]
            self._raise_requirement(requirements, current)
        return Stored(with_revision(obj, result.revision), result.revision)

    async def update(
        self,
        key: bytes,
        obj: Obj,
        expected_revision: int,
        requirements: Sequence[Requirement] = (),
        *,
        encoded: bytes | None = None,
    ) -> Stored:
        """Replace ``obj`` if ``key`` is still at ``expected_revision``; ``encoded``: see create."""
        compares = [
            etcd.compare_mod_revision(key, expected_revision),
            *(r.compare() for r in requirements),
        ]
        failure = [etcd.op_get(key), *(etcd.op_get(r.key) for r in requirements)]
        put = await self._put(key, obj, encoded)
        with timed("update", self.prefix, key):
            result = await self.etcd.txn(compares, [put], failure)
        if not result.succeeded:
            current = result.ranges[0]
            if result.retried and (not current or current[0].mod_revision != expected_revision):
                # The key moved on: perhaps by the attempt that got no answer.
                if current and current[0].value == put.request_put.value:
                    revision = current[0].mod_revision
                    return Stored(with_revision(obj, revision), revision)
                raise _undecided(key)
            if not current:
                raise NotFound(key.decode())
            if current[0].mod_revision != expected_revision:
                raise Conflict(self.decode(current[0]))
            self._raise_requirement(requirements, result.ranges[1:])
        return Stored(with_revision(obj, result.revision), result.revision)

    async def delete(self, key: bytes, expected_revision: int) -> int:
        """Delete the key if it is still at ``expected_revision``; the deletion's revision."""
        with timed("delete", self.prefix, key):
            result = await self.etcd.txn(
                [etcd.compare_mod_revision(key, expected_revision)],
                [etcd.op_delete(key)],
                [etcd.op_get(key)],
            )
        if not result.succeeded:
            current = result.ranges[0]
            if result.retried:
                if not current:
                    # Gone, by the attempt that got no answer or by another
                    # deleter: either way the object at expected_revision no
                    # longer exists, which is what was asked, as
                    # kube-apiserver's GuaranteedUpdate treats a no-op. A
                    # delete cannot apply twice, and no one's write is lost.
                    return result.revision
                if current[0].create_revision > expected_revision:
                    # Deleted (perhaps by us) and created anew since.
                    raise _undecided(key)
                # The same object, changed: had the delete been applied it
                # would be gone, so it was not. A plain conflict.
            if not current:
                raise NotFound(key.decode())
            raise Conflict(self.decode(current[0]))
        return result.revision

    async def _settle_create(self, found: KeyValue, value: bytes) -> int:
        """After an attempt in doubt: the revision of our create, if etcd holds it."""
        if found.value == value:
            return found.mod_revision
        # Applied, then changed by someone else already: the key's first
        # version would still be ours.
        try:
            first = await self.etcd.range(found.key, revision=found.create_revision)
        except etcd.EtcdCompacted:
            raise _undecided(found.key) from None
        if first.kvs and first.kvs[0].value == value:
            return found.create_revision
        # Someone else's create, or ours deleted and the key made anew.
        raise _undecided(found.key)

    @staticmethod
    def _raise_requirement(
        requirements: Sequence[Requirement], found: list[list[KeyValue]]
    ) -> None:
        for requirement, kvs in zip(requirements, found, strict=True):
            if not kvs or (
                requirement.revision is not None and kvs[0].mod_revision != requirement.revision
            ):
                raise PreconditionFailed(requirement.key)
        # Every compare held when etcd re-read them: the keys changed and
        # changed back between the two reads. The caller retries.
        raise Conflict(None)
