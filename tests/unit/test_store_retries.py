"""Writes asked again after an answer in doubt: settled by read-back, never applied twice.

A small in-memory etcd (revisions, compares, history) stands behind the
client's KV stub; a script says, call by call, whether an attempt commits,
and whether its answer is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from aetcd import rpc

from controlplane.storage.etcd import EtcdClient, EtcdError, EtcdUnavailable, KeyValue
from controlplane.storage.store import Conflict, KeyExists, Store

KEY = b"/registry/configmaps/default/c"


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@dataclass
class StepClock:
    """Time moves only by what the fake etcd spends and the client sleeps."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# What one call does: "ok" answers; "lost" commits and the answer times out;
# "timeout" times out without committing; "no-leader" is refused at once;
# "too-large" is a definite refusal.
Step = str


class FakeKV:
    def __init__(self, clock: StepClock, steps: list[Step]) -> None:
        self.clock = clock
        self.steps: Iterator[Step] = iter(steps)
        self.revision = 1
        self.keys: dict[bytes, KeyValue] = {}
        self.history: list[tuple[int, bytes, KeyValue | None]] = []
        self.calls: list[float] = []  # each attempt's deadline

    # --- the store ---

    def write(self, key: bytes, value: bytes | None) -> None:
        self.revision += 1
        old = self.keys.get(key)
        if value is None:
            self.keys.pop(key, None)
            self.history.append((self.revision, key, None))
            return
        kv = KeyValue(
            key,
            value,
            old.create_revision if old else self.revision,
            self.revision,
            old.version + 1 if old else 1,
        )
        self.keys[key] = kv
        self.history.append((self.revision, key, kv))

    def at(self, key: bytes, revision: int) -> KeyValue | None:
        found = None
        for rev, k, kv in self.history:
            if k == key and rev <= revision:
                found = kv
        return found

    def _holds(self, compare: Any) -> bool:
        kv = self.keys.get(compare.key)
        if compare.target == rpc.Compare.CREATE:
            actual, wanted = (kv.create_revision if kv else 0), compare.create_revision
        else:
            actual, wanted = (kv.mod_revision if kv else 0), compare.mod_revision
        if compare.result == rpc.Compare.EQUAL:
            return actual == wanted
        return actual > wanted

    def _apply(self, op: Any) -> Any:
        which = op.WhichOneof("request")
        if which == "request_put":
            self.write(op.request_put.key, op.request_put.value)
            return rpc.ResponseOp(response_put=rpc.PutResponse())
        if which == "request_delete_range":
            self.write(op.request_delete_range.key, None)
            return rpc.ResponseOp(response_delete_range=rpc.DeleteRangeResponse())
        kv = self.keys.get(op.request_range.key)
        kvs = [_pb(kv)] if kv else []
        return rpc.ResponseOp(response_range=rpc.RangeResponse(kvs=kvs))

    # --- the stub ---

    def _step(self, timeout: float) -> Step:
        self.calls.append(timeout)
        step = next(self.steps, "ok")
        if step in ("lost", "timeout"):
            self.clock.now += timeout
        return step

    def _fail(self, step: Step) -> None:
        if step in ("lost", "timeout"):
            raise _error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if step == "no-leader":
            raise _error(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
        if step == "too-large":
            raise _error(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large")

    async def Txn(self, request: Any, *, timeout: float, metadata: Any) -> Any:  # noqa: N802
        step = self._step(timeout)
        if step not in ("ok", "lost"):
            self._fail(step)
        succeeded = all(self._holds(c) for c in request.compare)
        responses = [self._apply(op) for op in (request.success if succeeded else request.failure)]
        self._fail(step)
        return rpc.TxnResponse(
            header=rpc.ResponseHeader(revision=self.revision),
            succeeded=succeeded,
            responses=responses,
        )

    async def Range(self, request: Any, *, timeout: float, metadata: Any) -> Any:  # noqa: N802
        self._fail(self._step(timeout))
        kv = (
            self.at(request.key, request.revision)
            if request.revision
            else self.keys.get(request.key)
        )
        kvs = [_pb(kv)] if kv else []
        return rpc.RangeResponse(
            header=rpc.ResponseHeader(revision=self.revision), kvs=kvs, count=len(kvs)
        )


def _pb(kv: KeyValue) -> Any:
    return rpc.KeyValue(
        key=kv.key,
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
    )


def _store(steps: list[Step], *, timeout: float = 5.0) -> tuple[Store, FakeKV]:
    clock = StepClock()
    client = EtcdClient(["http://127.0.0.1:1"], timeout=timeout, clock=clock, rng=lambda: 0.5)
    fake = FakeKV(clock, steps)
    client._channel = object()  # type: ignore[assignment]  # never dialled
    client._kv = fake
    return Store(client), fake


def _obj(uid: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": "c", "namespace": "default", "uid": uid}, "data": data}


def _after_first_txn(fake: FakeKV, history_len: int, value: bytes) -> None:
    """Another client writes ``value`` to KEY just after the attempt that
    leaves ``history_len`` entries in etcd's history."""
    original = fake.Txn

    async def then_someone_writes(request: Any, *, timeout: float, metadata: Any) -> Any:
        try:
            return await original(request, timeout=timeout, metadata=metadata)
        finally:
            if len(fake.history) == history_len:
                fake.write(KEY, value)

    fake.Txn = then_someone_writes  # type: ignore[method-assign]


async def test_a_create_whose_answer_was_lost_is_found_applied_and_not_repeated() -> None:
    store, fake = _store(["lost"])
    stored = await store.create(KEY, _obj("u1"))
    assert len(fake.calls) == 3  # the lost attempt, its repeat, the read-back
    assert fake.calls[0] == 2.0 and 2.0 < fake.calls[1] < 3.0  # doubled, within what remains
    assert [rev for rev, _, _ in fake.history] == [2]  # one write
    assert stored.revision == 2 and stored.obj["metadata"]["resourceVersion"] == "2"


async def test_a_create_that_timed_out_without_applying_is_applied_by_the_repeat() -> None:
    store, fake = _store(["timeout"])
    stored = await store.create(KEY, _obj("u1"))
    assert len(fake.calls) == 2 and len(fake.history) == 1
    assert stored.revision == fake.keys[KEY].mod_revision


async def test_a_lost_create_changed_since_is_still_recognised_by_its_first_version() -> None:
    store, fake = _store(["lost"])
    _after_first_txn(fake, 1, b'{"changed": true}')
    stored = await store.create(KEY, _obj("u1"))
    assert stored.revision == 2  # our create, not the later change
    assert len(fake.history) == 2


async def test_a_key_someone_else_created_after_a_lost_attempt_is_undecided_not_exists() -> None:
    # Whether our create went in first cannot be told from a key whose
    # first version is not ours: answered as etcd unavailable, never as
    # success (a lost write) or AlreadyExists on a create that may have gone in.
    store, fake = _store(["timeout"])
    original = fake.Txn

    async def someone_creates_first(request: Any, *, timeout: float, metadata: Any) -> Any:
        if not fake.history:
            fake.write(KEY, b'{"theirs": true}')
        return await original(request, timeout=timeout, metadata=metadata)

    fake.Txn = someone_creates_first  # type: ignore[method-assign]
    with pytest.raises(EtcdUnavailable, match="cannot be told"):
        await store.create(KEY, _obj("u1"))


async def test_a_plain_create_of_an_existing_key_is_still_already_exists() -> None:
    store, fake = _store([])
    fake.write(KEY, b'{"theirs": true}')
    with pytest.raises(KeyExists):
        await store.create(KEY, _obj("u1"))
    assert len(fake.calls) == 2  # the txn and the read that explains it; no retry


async def test_an_update_whose_answer_was_lost_is_found_applied() -> None:
    store, fake = _store([])
    first = await store.create(KEY, _obj("u1", n="0"))
    fake.steps = iter(["lost"])
    stored = await store.update(KEY, _obj("u1", n="1"), first.revision)
    assert stored.revision == fake.keys[KEY].mod_revision == 3
    assert len(fake.history) == 2  # the create and one update


async def test_an_update_overtaken_after_a_lost_attempt_is_undecided_not_a_conflict() -> None:
    # A Conflict would make the caller apply its change again on top of a
    # write that may be its own.
    store, fake = _store([])
    first = await store.create(KEY, _obj("u1", n="0"))
    fake.steps = iter(["lost"])
    _after_first_txn(fake, 2, b'{"theirs": true}')
    with pytest.raises(EtcdUnavailable, match="cannot be told"):
        await store.update(KEY, _obj("u1", n="1"), first.revision)


async def test_an_update_refused_for_want_of_a_leader_then_overtaken_is_a_conflict() -> None:
    # The refusal came before any proposal: nothing of ours can be in etcd,
    # so the repeat's failed compare is a plain Conflict, not "cannot be told".
    store, fake = _store([])
    first = await store.create(KEY, _obj("u1", n="0"))
    fake.steps = iter(["no-leader"])
    _after_first_txn(fake, 1, b'{"theirs": true}')
    with pytest.raises(Conflict):
        await store.update(KEY, _obj("u1", n="1"), first.revision)


async def test_a_definite_conflict_is_not_retried() -> None:
    store, fake = _store([])
    await store.create(KEY, _obj("u1", n="0"))
    with pytest.raises(Conflict):
        await store.update(KEY, _obj("u1", n="1"), expected_revision=1)
    assert len(fake.calls) == 2  # the create and one update attempt


async def test_a_delete_whose_answer_was_lost_succeeds_once() -> None:
    store, fake = _store([])
    first = await store.create(KEY, _obj("u1"))
    fake.steps = iter(["lost"])
    revision = await store.delete(KEY, first.revision)
    assert KEY not in fake.keys and revision == 3
    assert len(fake.history) == 2


async def test_a_delete_of_an_object_changed_meanwhile_is_a_conflict_even_after_a_retry() -> None:
    store, fake = _store([])
    first = await store.create(KEY, _obj("u1"))
    fake.steps = iter(["timeout"])
    fake.write(KEY, b'{"changed": true}')
    with pytest.raises(Conflict):
        await store.delete(KEY, first.revision)
    assert KEY in fake.keys


async def test_a_member_without_a_leader_is_asked_again_after_a_jittered_wait() -> None:
    store, fake = _store(["no-leader", "no-leader"])
    await store.create(KEY, _obj("u1"))
    clock = store.etcd._clock
    assert isinstance(clock, StepClock)
    assert len(clock.slept) == 2 and all(0 < s <= 0.1 for s in clock.slept)
    assert len(fake.history) == 1


async def test_a_definite_refusal_is_not_retried() -> None:
    store, fake = _store(["too-large"])
    with pytest.raises(EtcdError, match="too large") as raised:
        await store.create(KEY, _obj("u1"))
    assert not isinstance(raised.value, EtcdUnavailable)
    assert len(fake.calls) == 1 and not fake.history


async def test_retries_end_within_the_overall_timeout() -> None:
    store, fake = _store(["timeout"] * 10)
    with pytest.raises(EtcdUnavailable):
        await store.create(KEY, _obj("u1"))
    clock = store.etcd._clock
    assert isinstance(clock, StepClock)
    assert clock.now <= 5.0
    assert fake.calls[0] == 2.0 and len(fake.calls) == 2  # 2 s, then what remained
    assert not fake.history


async def test_reads_are_retried_too() -> None:
    store, fake = _store(["timeout"])
    await store.create(KEY, _obj("u1"))
    fake.steps = iter(["no-leader"])
    found = await store.get(KEY)
    assert found is not None and found.obj["metadata"]["uid"] == "u1"
