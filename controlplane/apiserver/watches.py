"""WATCH: a stream of newline-delimited JSON events.

Served from the watch cache whenever the requested resourceVersion is still
inside its window, so N watchers share one etcd watch. An older version that
etcd still has is served by an etcd watch of its own; a compacted one is 410
Gone, reported as an ERROR event carrying a Status, as Kubernetes does.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from controlplane.apiserver.customtables import custom_printer
from controlplane.apiserver.http import JSON
from controlplane.apiserver.lists import too_large_resource_version
from controlplane.apiserver.negotiation import PLAIN, Output
from controlplane.apiserver.objects import Objects
from controlplane.apiserver.params import ListOptions
from controlplane.apiserver.partial import converts_events, metadata_only
from controlplane.apiserver.tables import table
from controlplane.storage import etcd as etcd_mod
from controlplane.storage.etcd import EtcdCompacted, EtcdError
from controlplane.storage.store import ValueCodec, decode
from controlplane.storage.watchcache import CachedObject, CacheEvent, Terminated
from corral.api import errors
from corral.api.resources import ResourceType
from corral.objects import Obj

log = logging.getLogger(__name__)


# The scheduler and the controller manager each hold one watch per resource
# type (about 30), a node agent a handful, ``corral get -w`` one: 200 leaves
# every legitimate client room, and still stops one credential from pinning
# the server's memory and file descriptors with thousands of idle streams.
DEFAULT_MAX_WATCHES_PER_USER = 200


@dataclass(frozen=True, slots=True)
class WatchSettings:
    min_timeout_seconds: float = 1800.0
    bookmark_interval_seconds: float = 60.0
    cache_wait_seconds: float = 3.0
    # Concurrent watches one user may hold (0: no limit).
    max_watches_per_user: int = DEFAULT_MAX_WATCHES_PER_USER


class WatchQuota:
    """How many watches each user holds open, against a cap per user.

    A watch over the cap is refused up front with 429 and Retry-After (the
    informers back off and retry, as they do for the in-flight limit); a
    slot is given back when the stream ends for any reason: its timeout,
    the server's error, or the client going away.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("the watch limit must not be negative")
        self.limit = limit
        self.open: dict[str, int] = {}
        self.rejected = 0

    def acquire(self, user: str) -> Callable[[], None]:
        """Take a slot for ``user``; the (idempotent) function that gives it back."""
        held = self.open.get(user, 0)
        if self.limit and held >= self.limit:
            self.rejected += 1
            raise errors.too_many_requests(
                f'too many watches open for user "{user}" (the limit is {self.limit}); '
                "close some, or try again later",
                retry_after_seconds=1,
            )
        # One event loop: the check and the increment cannot interleave.
        self.open[user] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            remaining = self.open[user] - 1
            if remaining:
                self.open[user] = remaining
            else:
                del self.open[user]

        return release


class WatchResponse(StreamingResponse):
    """A watch stream that gives its user's quota slot back however it ends."""

    def __init__(self, stream: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        self.stream = _releasing(stream, release)
        super().__init__(self.stream, media_type=JSON, headers={"Transfer-Encoding": "chunked"})
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A client that leaves cancels the stream wherever it is waiting;
            # closing it now unsubscribes from the cache at once rather than
            # whenever the generator is collected, and the slot is given back
            # even if the stream never started.
            self.release()
            await self.stream.aclose()


async def _releasing(
    stream: AsyncIterator[bytes], release: Callable[[], None]
) -> AsyncGenerator[bytes, None]:
    """The stream, giving the slot back the moment it ends.

    That is before the last (empty) chunk goes out, so a client that
    reconnects as soon as it sees the end never finds its finished watch
    still counted.
    """
    try:
        async for chunk in stream:
            yield chunk
    finally:
        release()
        if isinstance(stream, AsyncGenerator):
            await stream.aclose()


@dataclass(frozen=True, slots=True)
class Encoder:
    """How events go on the wire: plain objects, or one-row Tables for kubectl -w."""

    rt: ResourceType
    as_table: bool
    include_object: str
    now: Callable[[], Any]
    output: Output = PLAIN  # as negotiated: PartialObjectMetadata events

    def event(self, kind: str, obj: Obj, raw: bytes | None = None) -> bytes:
        if self.rt.converts:
            obj, raw = self.rt.served(obj), None
        if converts_events(self.output):
            obj, raw = metadata_only(obj, self.output), None
        if self.as_table:
            payload = orjson.dumps(
                table(
                    self.rt.kind,
                    [obj],
                    self.now(),
                    include_object=self.include_object,
                    printer=custom_printer(self.rt),
                )
            )
            return b'{"type":"%s","object":%s}\n' % (kind.encode(), payload)
        if raw is None:
            raw = orjson.dumps(obj)
        return b'{"type":"%s","object":%s}\n' % (kind.encode(), raw)

    def cache_event(self, event: CacheEvent) -> bytes:
        if self.as_table or self.rt.converts or converts_events(self.output):
            return self.event(event.type, event.obj.obj)
        return event.raw()

    def bookmark(self, revision: int, initial_end: bool = False) -> bytes:
        metadata: Obj = {"resourceVersion": str(revision)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": metadata}
        if converts_events(self.output):
            obj = metadata_only(obj, self.output)
        return b'{"type":"BOOKMARK","object":%s}\n' % orjson.dumps(obj)


def error_event(error: errors.ApiError) -> bytes:
    return b'{"type":"ERROR","object":%s}\n' % orjson.dumps(error.to_status())


def _timeout(options: ListOptions, settings: WatchSettings) -> float:
    if options.timeout_seconds is not None:
        return float(options.timeout_seconds)
    # Spread reconnects out, as Kubernetes does, so that watchers do not all
    # come back at once after a restart.
    return settings.min_timeout_seconds * (1 + random.random())


async def prepare_watch(
    objects: Objects,
    rt: ResourceType,
    namespace: str | None,
    options: ListOptions,
    predicate: Callable[[Obj], bool],
    encoder: Encoder,
    settings: WatchSettings,
) -> AsyncIterator[bytes]:
    """Validate the request and subscribe before the response starts; then stream.

    Errors that can be known up front (a compacted version) are raised here
    so that they become a proper HTTP status rather than an in-stream event.
    """
    cache = objects.cache
    ns = namespace if rt.namespaced else None
    rv = options.resource_version
    since = int(rv) if rv not in ("", "0") else None
    initial = options.send_initial_events
    if initial and since is not None:
        raise errors.bad_request(
            'sendInitialEvents=true requires resourceVersion to be unset or "0"'
        )
    if (
        since is not None
        and since > cache.revision
        and not await cache.wait_for(since, settings.cache_wait_seconds)
    ):
        raise too_large_resource_version(since)
    if rv == "" and not await cache.fresh():
        # Unset means "the most recent": the initial state must include every
        # write acknowledged before this request, which a cache still behind
        # etcd would miss (and then send as an event after the end bookmark).
        raise errors.ApiError(
            504, "Timeout", "the watch cache did not catch up with storage", retry_after_seconds=1
        )
    if since is None and not cache.ready.is_set():
        await cache.wait_for(0, settings.cache_wait_seconds)

    def wants(cached: CachedObject) -> bool:
        return predicate(cached.obj)

    if since is None or cache.covers(rt.storage_resource, since):
        try:
            watcher, replay = cache.watch(rt.storage_resource, ns, wants, since)
        except Terminated:
            return await _etcd_watch(
                objects, rt, ns, since or 0, predicate, encoder, options, settings
            )
        return _cache_stream(
            objects,
            watcher,
            replay,
            encoder,
            options,
            settings,
            initial_end=bool(initial) and options.allow_bookmarks,
        )
    return await _etcd_watch(objects, rt, ns, since, predicate, encoder, options, settings)


async def _cache_stream(
    objects: Objects,
    watcher: Any,
    replay: list[CacheEvent],
    encoder: Encoder,
    options: ListOptions,
    settings: WatchSettings,
    *,
    initial_end: bool,
) -> AsyncIterator[bytes]:
    cache = objects.cache
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _timeout(options, settings)
    last_revision = 0
    try:
        for event in replay:
            last_revision = max(last_revision, event.revision)
            yield encoder.cache_event(event)
        if initial_end:
            last_revision = max(last_revision, cache.revision)
            yield encoder.bookmark(last_revision, initial_end=True)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            wait = remaining
            if options.allow_bookmarks:
                wait = min(wait, settings.bookmark_interval_seconds)
            try:
                item = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if options.allow_bookmarks and cache.revision > last_revision:
                    last_revision = cache.revision
                    yield encoder.bookmark(last_revision)
                continue
            if isinstance(item, Terminated):
                if item.gone:
                    yield error_event(errors.gone(str(item)))
                return
            last_revision = item.revision
            yield encoder.cache_event(item)
    finally:
        cache.unwatch(watcher)


async def _etcd_watch(
    objects: Objects,
    rt: ResourceType,
    namespace: str | None,
    since: int,
    predicate: Callable[[Obj], bool],
    encoder: Encoder,
    options: ListOptions,
    settings: WatchSettings,
) -> AsyncIterator[bytes]:
    """A watch older than the cache's window: its own etcd watch, from since+1."""
    prefix = objects.store.resource_prefix(rt.storage_resource, namespace)
    try:
        # etcd reports a compacted start only after the watch is created; a
        # count at that revision finds out first, so the answer is a real 410.
        await objects.store.etcd.range(
            prefix, etcd_mod.prefix_end(prefix), revision=since, count_only=True
        )
    except EtcdCompacted:
        raise errors.gone(f"too old resource version: {since}") from None
    except etcd_mod.EtcdFutureRevision:
        raise too_large_resource_version(since) from None
    watch = objects.store.etcd.watch(
        prefix, etcd_mod.prefix_end(prefix), start_revision=since + 1, prev_kv=True
    )
    try:
        await watch.__aenter__()
    except EtcdCompacted:
        raise errors.gone(f"too old resource version: {since}") from None
    except EtcdError as error:
        raise errors.service_unavailable(f"storage is unavailable: {error}") from None
    return _etcd_stream(watch, predicate, encoder, options, settings, objects.store.codec)


async def _etcd_stream(
    watch: etcd_mod.EtcdWatch,
    predicate: Callable[[Obj], bool],
    encoder: Encoder,
    options: ListOptions,
    settings: WatchSettings,
    codec: ValueCodec | None,
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _timeout(options, settings)
    iterator = watch.__aiter__()
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                batch = await asyncio.wait_for(iterator.__anext__(), remaining)
            except TimeoutError:
                return
            except StopAsyncIteration:
                return
            except EtcdCompacted:
                yield error_event(errors.gone("the watch's resource version was compacted"))
                return
            except EtcdError as error:
                # The client sees its watch end and watches again from the
                # last version it saw, as Kubernetes clients do.
                log.info("a watch read from etcd ended: %s", error)
                return
            for event in batch.events:
                for kind, obj in _translate(event, predicate, codec):
                    yield encoder.event(kind, obj)
    finally:
        await watch.close()


def _translate(
    event: etcd_mod.WatchEvent, predicate: Callable[[Obj], bool], codec: ValueCodec | None
) -> list[tuple[str, Obj]]:
    prev = decode(event.prev_kv, codec).obj if event.prev_kv is not None else None
    if event.kind == "DELETE":
        if prev is None or not predicate(prev):
            return []
        prev["metadata"]["resourceVersion"] = str(event.kv.mod_revision)
        return [("DELETED", prev)]
    current = decode(event.kv, codec).obj
    now = predicate(current)
    before = prev is not None and predicate(prev)
    if event.kv.create_revision == event.kv.mod_revision:
        return [("ADDED", current)] if now else []
    if now:
        return [("MODIFIED" if before else "ADDED", current)]
    if before and prev is not None:
        prev["metadata"]["resourceVersion"] = str(event.kv.mod_revision)
        return [("DELETED", prev)]
    return []
