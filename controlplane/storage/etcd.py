"""A thin, typed asyncio client for the etcd v3 API.

The protocol messages and stubs come from ``aetcd`` (its generated ``rpc``
module, which imports with current protobuf and grpcio). Its high-level
client lacks what an API server needs - range at a revision, limits and
counts, watch progress requests - so this module speaks the protocol
directly and keeps etcd's error meanings exact: unavailable, compacted,
future revision.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
from aetcd import rpc

from corral.backoff import Backoff
from corral.clock import Clock, SystemClock

log = logging.getLogger(__name__)

_UNAVAILABLE_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


# Answers that leave a request's fate open: it may never have reached raft, or
# it may have been committed with the reply lost (a leader killed mid-request;
# etcd 3.4 also holds a proposal a dying leader dropped until its deadline).
# Asking again is the way out; every other error is etcd's definite "no".
_RETRY_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# etcd's own words for the same, whatever code a version wraps them in.
_RETRY_DETAILS = ("leader changed", "no leader", "timed out", "proposal dropped")

# etcd's "require leader" metadata (clientv3.WithRequireLeader): a member
# that has lost its leader refuses the request at once ("no leader") instead
# of holding it until the deadline, so an election costs a retry, not a wait.
_REQUIRE_LEADER = (("hasleader", "true"),)


def _retryable(error: grpc.aio.AioRpcError) -> bool:
    details = error.details() or ""
    return error.code() in _RETRY_CODES or any(words in details for words in _RETRY_DETAILS)


class EtcdError(Exception):
    pass


class EtcdUnavailable(EtcdError):
    """etcd could not be reached or did not answer in time."""


class EtcdCompacted(EtcdError):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"required revision has been compacted (compacted to {compact_revision})")
        self.compact_revision = compact_revision


class EtcdFutureRevision(EtcdError):
    pass


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    more: bool
    count: int
    revision: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    # For each Range op in the branch that ran, its key-values.
    ranges: list[list[KeyValue]]
    # An earlier attempt got no definite answer and may have been applied:
    # a failed compare may then be that attempt's own effect (see Store).
    retried: bool = False


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    kv: KeyValue
    prev_kv: KeyValue | None


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events of one response, or a progress notification when ``events`` is empty."""

    revision: int
    events: list[WatchEvent]


def _kv(kv: Any) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version)


def _translate(error: grpc.aio.AioRpcError) -> EtcdError:
    details = error.details() or ""
    if "compacted" in details:
        return EtcdCompacted(0)
    if "future revision" in details:
        return EtcdFutureRevision(details)
    if error.code() in _UNAVAILABLE_CODES:
        return EtcdUnavailable(f"etcd: {error.code().name.lower()}: {details}")
    return EtcdError(f"etcd: {error.code().name.lower()}: {details}")


def prefix_end(prefix: bytes) -> bytes:
    """The range end that makes [prefix, end) cover every key with the prefix."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


# --- transaction building blocks ------------------------------------------------


def compare_mod_revision(key: bytes, revision: int) -> Any:
    return rpc.Compare(
        result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=key, mod_revision=revision
    )


def compare_absent(key: bytes) -> Any:
    return rpc.Compare(
        result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key, create_revision=0
    )


def compare_present(key: bytes) -> Any:
    return rpc.Compare(
        result=rpc.Compare.GREATER, target=rpc.Compare.CREATE, key=key, create_revision=0
    )


def op_put(key: bytes, value: bytes, lease: int = 0) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))


def op_delete(key: bytes) -> Any:
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))


def op_get(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


# --- the client ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


def grpc_target(endpoints: Sequence[str]) -> str:
    """A gRPC target for one or more ``http://host:port`` endpoints."""
    hosts = []
    for endpoint in endpoints:
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        hosts.append(f"{parts.hostname}:{parts.port or 2379}")
    if len(hosts) == 1:
        return hosts[0]
    # ipv4: lists several addresses for one channel, which fails over between them.
    return "ipv4:" + ",".join(hosts)


class EtcdClient:
    """etcd's KV, lease and maintenance calls, each asked again while the answer is in doubt.

    ``timeout`` bounds a call with its retries. An attempt is bounded by
    ``attempt_timeout`` (about twice etcd's default 1 s election timeout: a
    request stuck on a dead leader is given up soon after a new one can have
    been elected), doubled at each retry, so a request that is merely slow
    on a loaded etcd still gets most of ``timeout`` on its second try.
    Retries wait a jittered back-off. A retried write may apply twice; the
    transactions corral writes carry compares that make the second attempt
    fail instead, and ``TxnResult.retried`` tells the caller to settle it.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 5.0,
        attempt_timeout: float = 2.0,
        tls: EtcdTLS | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if attempt_timeout <= 0:
            raise ValueError("attempt_timeout must be positive")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.attempt_timeout = min(attempt_timeout, timeout)
        self._tls = tls
        self._clock = clock or SystemClock()
        self._rng = rng
        self._channel: grpc.aio.Channel | None = None
        self._kv: Any = None
        self._watch: Any = None
        self._maintenance: Any = None
        self._lease: Any = None

    def _connect(self) -> None:
        """Open the channel on first use: grpc.aio binds it to the running event loop."""
        options = [
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            ("grpc.enable_retries", 0),
        ]
        target = grpc_target(self.endpoints)
        tls = self._tls
        if tls is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls.ca_file),
                private_key=_read(tls.key_file) if tls.key_file else None,
                certificate_chain=_read(tls.cert_file) if tls.cert_file else None,
            )
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._kv = rpc.KVStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        self._maintenance = rpc.MaintenanceStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)

    @property
    def kv(self) -> Any:
        if self._channel is None:
            self._connect()
        return self._kv

    @property
    def watch_stub(self) -> Any:
        if self._channel is None:
            self._connect()
        return self._watch

    @property
    def maintenance(self) -> Any:
        if self._channel is None:
            self._connect()
        return self._maintenance

    async def _call(
        self, method: Any, request: Any, *, require_leader: bool = True, once: bool = False
    ) -> tuple[Any, bool]:
        """``method(request)`` and whether an earlier attempt ended in doubt.

        Bounded by ``timeout`` in all; raises the translated error of the
        last attempt when that is a definite one or the time is up. ``once``:
        one attempt, for a probe whose answer must be prompt (readiness).
        """
        deadline = self._clock.monotonic() + self.timeout
        backoff: Backoff | None = None  # made on the error path only
        attempt_timeout = self.attempt_timeout
        retried = False
        metadata = _REQUIRE_LEADER if require_leader else ()
        while True:
            remaining = deadline - self._clock.monotonic()
            try:
                response = await method(
                    request, timeout=min(attempt_timeout, remaining), metadata=metadata
                )
                return response, retried
            except grpc.aio.AioRpcError as error:
                backoff = backoff or Backoff(0.05, 0.5, rng=self._rng)
                wait = backoff.next()
                if once or not _retryable(error) or self._clock.monotonic() + wait >= deadline:
                    raise _translate(error) from None
                log.info("etcd %s: %s; asking again", type(request).__name__, error.details())
                # A member without a leader refuses a require-leader request
                # before proposing it: that attempt was certainly not applied.
                retried = retried or "no leader" not in (error.details() or "")
            attempt_timeout *= 2
            await self._clock.sleep(wait)

    async def grant_lease(self, ttl_seconds: int) -> int:
        """A new lease of ``ttl_seconds``; keys put with it go when it expires.

        A retried grant may leave a lease of the lost attempt behind: it
        carries no key and expires in ``ttl_seconds``.
        """
        if self._channel is None:
            self._connect()
        response, _ = await self._call(
            self._lease.LeaseGrant, rpc.LeaseGrantRequest(TTL=ttl_seconds)
        )
        if response.error:
            raise EtcdError(f"lease grant refused: {response.error}")
        return int(response.ID)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        keys_only: bool = False,
        serializable: bool = False,
        once: bool = False,
    ) -> RangeResult:
        request = rpc.RangeRequest(
            key=key,
            range_end=range_end,
            revision=revision,
            limit=limit,
            count_only=count_only,
            keys_only=keys_only,
            serializable=serializable,
        )
        # A serializable read is the one a member without a leader can serve.
        response, _ = await self._call(
            self.kv.Range, request, require_leader=not serializable, once=once
        )
        return RangeResult(
            [_kv(kv) for kv in response.kvs],
            response.more,
            response.count,
            response.header.revision,
        )

    async def get(self, key: bytes) -> tuple[KeyValue | None, int]:
        result = await self.range(key)
        return (result.kvs[0] if result.kvs else None), result.revision

    async def current_revision(self, *, once: bool = False) -> int:
        # A count-only range over an empty key range costs etcd next to nothing,
        # yet its header carries the store's current revision.
        result = await self.range(b"\0", b"\0", count_only=True, once=once)
        return result.revision

    async def txn(
        self,
        compare: Sequence[Any],
        success: Sequence[Any],
        failure: Sequence[Any] = (),
    ) -> TxnResult:
        """One transaction; retried when in doubt, so its compares must make a repeat fail."""
        request = rpc.TxnRequest(compare=compare, success=success, failure=failure)
        response, retried = await self._call(self.kv.Txn, request)
        ranges = [
            [_kv(kv) for kv in op.response_range.kvs]
            for op in response.responses
            if op.WhichOneof("response") == "response_range"
        ]
        return TxnResult(response.succeeded, response.header.revision, ranges, retried)

    async def put(self, key: bytes, value: bytes) -> int:
        """An unconditional put; a retry after a lost answer writes the same value again."""
        response, _ = await self._call(self.kv.Put, rpc.PutRequest(key=key, value=value))
        return int(response.header.revision)

    async def delete_prefix(self, prefix: bytes) -> int:
        """Delete every key under ``prefix``; the count (a retry counts only what was left)."""
        request = rpc.DeleteRangeRequest(key=prefix, range_end=prefix_end(prefix))
        response, _ = await self._call(self.kv.DeleteRange, request)
        return int(response.deleted)

    async def compact(self, revision: int, *, physical: bool = False) -> None:
        request = rpc.CompactionRequest(revision=revision, physical=physical)
        try:
            await self._call(self.kv.Compact, request)
        except EtcdCompacted:
            return

    async def status(self) -> dict[str, Any]:
        # Status is how one asks a member whether it has a leader.
        response, _ = await self._call(
            self.maintenance.Status, rpc.StatusRequest(), require_leader=False
        )
        return {
            "version": response.version,
            "dbSize": response.dbSize,
            "leader": response.leader,
            "revision": response.header.revision,
        }

    def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
    ) -> EtcdWatch:
        return EtcdWatch(self.watch_stub, key, range_end, start_revision, prev_kv)


class EtcdWatch:
    """One etcd watch on its own stream.

    Iterate it for batches; it raises ``EtcdCompacted`` when the start
    revision is gone and ``EtcdUnavailable`` when the stream breaks, so the
    caller decides whether to resume or to relist.
    """

    def __init__(
        self, stub: Any, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool
    ) -> None:
        self._stub = stub
        self._create = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=key,
                range_end=range_end,
                start_revision=start_revision,
                prev_kv=prev_kv,
                progress_notify=True,
            )
        )
        self._call: Any = None
        self._closed = False

    async def __aenter__(self) -> EtcdWatch:
        try:
            self._call = self._stub.Watch()
            await self._call.write(self._create)
            created = await self._call.read()
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from None
        if created is grpc.aio.EOF:
            raise EtcdUnavailable("etcd closed the watch stream")
        if created.compact_revision:
            raise EtcdCompacted(created.compact_revision)
        if created.canceled:
            raise EtcdError(f"etcd refused the watch: {created.cancel_reason}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._call is not None and not self._closed:
            self._closed = True
            self._call.cancel()

    async def request_progress(self) -> None:
        """Ask etcd to confirm, with an empty batch, the revision this watch has reached."""
        if self._call is None or self._closed:
            return
        try:
            await self._call.write(rpc.WatchRequest(progress_request=rpc.WatchProgressRequest()))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            # The stream has failed or ended: its reader meets that (and
            # reports it) on the next read, and a progress note is moot.
            pass

    def __aiter__(self) -> EtcdWatch:
        return self

    async def __anext__(self) -> WatchBatch:
        if self._closed:
            raise StopAsyncIteration
        try:
            response = await self._call.read()
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as error:
            if self._closed:
                raise StopAsyncIteration from None
            raise _translate(error) from None
        if response is grpc.aio.EOF:
            raise EtcdUnavailable("etcd closed the watch stream")
        if response.compact_revision:
            raise EtcdCompacted(response.compact_revision)
        if response.canceled:
            raise EtcdUnavailable(f"etcd cancelled the watch: {response.cancel_reason}")
        events = [
            WatchEvent(
                "DELETE" if event.type == rpc.Event.DELETE else "PUT",
                _kv(event.kv),
                _kv(event.prev_kv) if event.HasField("prev_kv") else None,
            )
            for event in response.events
        ]
        return WatchBatch(response.header.revision, events)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()
