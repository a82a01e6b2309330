"""The watch cache: one etcd watch feeds every list and watch the API serves.

One etcd watch over the whole registry prefix keeps, per resource, the
current objects and a window of recent events. Client watches are served
from that window (so N watchers cost one etcd watch), and consistent lists
are served from the objects once the cache has caught up with etcd's current
revision. Every write corral makes lands under the prefix, so the cache's
revision moves in step with etcd's; a wait that does not converge falls back
to reading etcd directly rather than trusting a possibly stale cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import orjson

from controlplane.storage.encryption import EncryptionError
from controlplane.storage.etcd import (
    EtcdClient,
    EtcdCompacted,
    EtcdError,
    EtcdUnavailable,
    KeyValue,
    WatchBatch,
    prefix_end,
)
from controlplane.storage.readdefaults import fill_read_defaults
from controlplane.storage.store import ValueCodec
from corral.backoff import Backoff
from corral.clock import Clock, SystemClock
from corral.objects import Obj, labels_of, meta

log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(slots=True)
class CachedObject:
    key: str
    namespace: str
    name: str
    revision: int
    obj: Obj
    _raw: bytes | None = None

    def raw(self) -> bytes:
        """The object's JSON, resourceVersion included; computed once, shared by every reader."""
        if self._raw is None:
            self._raw = orjson.dumps(self.obj)
        return self._raw

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = labels_of(self.obj)
        return labels


@dataclass(slots=True)
class CacheEvent:
    type: EventType
    revision: int
    obj: CachedObject
    prev: CachedObject | None
    _raw: bytes | None = None

    def raw(self) -> bytes:
        """``{"type":..,"object":..}`` plus newline, encoded once for all watchers."""
        if self._raw is None:
            self._raw = b'{"type":"%s","object":%s}\n' % (self.type.encode(), self.obj.raw())
        return self._raw


class Terminated(Exception):
    """The watch can no longer be served: the client must re-list or re-watch."""

    def __init__(self, reason: str, gone: bool = False) -> None:
        super().__init__(reason)
        self.gone = gone


Predicate = Callable[[CachedObject], bool]


@dataclass(eq=False)
class CacheWatcher:
    resource: str
    namespace: str | None
    predicate: Predicate
    capacity: int
    queue: asyncio.Queue[CacheEvent | Terminated] = field(init=False)
    closed: bool = False

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.capacity + 1)

    def wants(self, cached: CachedObject) -> bool:
        if self.namespace is not None and cached.namespace != self.namespace:
            return False
        return self.predicate(cached)

    def view(self, event: CacheEvent) -> CacheEvent | None:
        """The event as this watcher sees it: a filter change becomes ADDED or DELETED."""
        now = self.wants(event.obj)
        if event.type != "MODIFIED":
            return event if now else None
        before = event.prev is not None and self.wants(event.prev)
        if now and before:
            return event
        if now:
            return CacheEvent("ADDED", event.revision, event.obj, None)
        if before and event.prev is not None:
            gone = CachedObject(
                event.obj.key,
                event.obj.namespace,
                event.obj.name,
                event.revision,
                _with_revision(event.prev.obj, event.revision),
            )
            return CacheEvent("DELETED", event.revision, gone, None)
        return None

    def offer(self, event: CacheEvent) -> None:
        if self.closed:
            return
        seen = self.view(event)
        if seen is None:
            return
        if self.queue.qsize() >= self.capacity:
            # A client that cannot keep up is cut off rather than buffered
            # without bound; it resumes from the last version it saw.
            self.terminate(Terminated("the watcher fell too far behind"))
            return
        self.queue.put_nowait(seen)

    def terminate(self, reason: Terminated) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(reason)


def _with_revision(obj: Obj, revision: int) -> Obj:
    out = dict(obj)
    out["metadata"] = {**meta(obj), "resourceVersion": str(revision)}
    return out


class ResourceCache:
    """The current objects and recent events of one resource."""

    def __init__(self, resource: str, history_size: int) -> None:
        self.resource = resource
        self.objects: dict[str, CachedObject] = {}
        self.by_namespace: dict[str, dict[str, CachedObject]] = {}
        self.history: deque[CacheEvent] = deque(maxlen=history_size)
        # History holds every event of this resource with a revision above this.
        self.window_start = 0
        self.watchers: set[CacheWatcher] = set()

    def reset(self, revision: int) -> None:
        self.objects.clear()
        self.by_namespace.clear()
        self.history.clear()
        self.window_start = revision
        for watcher in list(self.watchers):
            watcher.terminate(Terminated("the watch cache was re-initialised", gone=True))
        self.watchers.clear()

    def put(self, cached: CachedObject) -> CachedObject | None:
        prev = self.objects.get(cached.key)
        self.objects[cached.key] = cached
        self.by_namespace.setdefault(cached.namespace, {})[cached.key] = cached
        return prev

    def remove(self, key: str) -> CachedObject | None:
        prev = self.objects.pop(key, None)
        if prev is not None:
            bucket = self.by_namespace.get(prev.namespace)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.by_namespace[prev.namespace]
        return prev

    def record(self, event: CacheEvent) -> None:
        if len(self.history) == self.history.maxlen:
            self.window_start = self.history[0].revision
        self.history.append(event)
        for watcher in list(self.watchers):
            watcher.offer(event)
            if watcher.closed:
                self.watchers.discard(watcher)

    def snapshot(self, namespace: str | None) -> Iterable[CachedObject]:
        if namespace is None:
            return list(self.objects.values())
        return list(self.by_namespace.get(namespace, {}).values())


class WatchCache:
    def __init__(
        self,
        client: EtcdClient,
        prefix: str = "/registry",
        *,
        history_size: int = 10_000,
        watcher_capacity: int = 10_000,
        clock: Clock | None = None,
        fresh_wait: float = 0.5,
        codec: ValueCodec | None = None,
    ) -> None:
        self.etcd = client
        self.codec = codec
        self.prefix = prefix.rstrip("/") + "/"
        self.history_size = history_size
        self.watcher_capacity = watcher_capacity
        self.clock = clock or SystemClock()
        self.fresh_wait = fresh_wait
        self.revision = 0
        self.ready = asyncio.Event()
        self._resources: dict[str, ResourceCache] = {}
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.healthy = False

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="watch-cache")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                # The cancel just made ends it this way; anything else it
                # raised goes on up.
                pass
        for cache in self._resources.values():
            for watcher in list(cache.watchers):
                watcher.terminate(Terminated("the API server is shutting down"))

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Objects and registered watchers per stored resource, for metrics."""
        return {
            name: (len(cache.objects), len(cache.watchers))
            for name, cache in self._resources.items()
        }

    def resource(self, name: str) -> ResourceCache:
        cache = self._resources.get(name)
        if cache is None:
            cache = self._resources[name] = ResourceCache(name, self.history_size)
            cache.window_start = self.revision
        return cache

    async def _run(self) -> None:
        # Jittered: the API servers of a cluster that lost etcd together do
        # not all come back to it on the same ticks.
        backoff = Backoff(0.1, 2.0)
        need_list = True
        while not self._stopping:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._follow()
            except EtcdCompacted:
                log.warning("watch cache fell behind etcd compaction; re-listing")
                need_list = True
            except (EtcdUnavailable, EtcdError) as error:
                self.healthy = False
                delay = backoff.next()
                log.warning("watch cache lost etcd (%s); retrying in %.1fs", error, delay)
                await self.clock.sleep(delay)
                continue
            backoff.reset()

    async def _relist(self) -> None:
        key = self.prefix.encode()
        result = await self.etcd.range(key, prefix_end(key))
        # Set before any cache is created below: a new cache's window starts
        # at the revision the cache is known to be complete from.
        self.revision = result.revision
        for cache in self._resources.values():
            cache.reset(result.revision)
        for kv in result.kvs:
            parsed = self._parse(kv)
            if parsed is not None:
                resource, cached = parsed
                self.resource(resource).put(cached)
        await self._advance(result.revision)
        self.ready.set()

    async def _follow(self) -> None:
        key = self.prefix.encode()
        async with self.etcd.watch(key, prefix_end(key), start_revision=self.revision + 1) as watch:
            self.healthy = True
            async for batch in watch:
                self.apply(batch)
                if batch.events:
                    await self._advance(batch.events[-1].kv.mod_revision)

    def apply(self, batch: WatchBatch) -> None:
        for event in batch.events:
            kv = event.kv
            if kv.mod_revision <= self.revision:
                continue
            if event.kind == "DELETE":
                resource, namespace, name = self._split(kv.key)
                if resource is None:
                    continue
                cache = self.resource(resource)
                prev = cache.remove(kv.key.decode())
                if prev is None:
                    continue
                gone = CachedObject(
                    prev.key,
                    namespace,
                    name,
                    kv.mod_revision,
                    _with_revision(prev.obj, kv.mod_revision),
                )
                cache.record(CacheEvent("DELETED", kv.mod_revision, gone, prev))
                continue
            parsed = self._parse(kv)
            if parsed is None:
                continue
            resource, cached = parsed
            cache = self.resource(resource)
            prev = cache.put(cached)
            kind: EventType = "ADDED" if prev is None else "MODIFIED"
            cache.record(CacheEvent(kind, kv.mod_revision, cached, prev))

    async def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
        async with self._advanced:
            self._advanced.notify_all()

    def _split(self, key: bytes) -> tuple[str | None, str, str]:
        text = key.decode()
        if not text.startswith(self.prefix):
            return None, "", ""
        parts = text[len(self.prefix) :].split("/")
        if len(parts) == 2:
            return parts[0], "", parts[1]
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        return None, "", ""

    def _parse(self, kv: KeyValue) -> tuple[str, CachedObject] | None:
        resource, namespace, name = self._split(kv.key)
        if resource is None:
            return None
        try:
            value = self.codec.decode(kv.key, kv.value) if self.codec is not None else kv.value
            obj = orjson.loads(value)
        except EncryptionError as error:
            log.error("skipping unreadable value at %s: %s", kv.key.decode(errors="replace"), error)
            return None
        except orjson.JSONDecodeError:
            log.error("skipping undecodable value at %s", kv.key.decode(errors="replace"))
            return None
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        fill_read_defaults(kv.key, obj)
        return resource, CachedObject(kv.key.decode(), namespace, name, kv.mod_revision, obj)

    # --- reads --------------------------------------------------------------------

    async def wait_for(self, revision: int, timeout: float) -> bool:
        """Wait until the cache reflects ``revision``; False if it did not within ``timeout``."""
        if self.revision >= revision and self.ready.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self.ready.wait()
                async with self._advanced:
                    await self._advanced.wait_for(lambda: self.revision >= revision)
        except TimeoutError:
            return False
        return True

    async def fresh(self) -> bool:
        """Catch up with etcd's current revision, for a consistent read from the cache."""
        current = await self.etcd.current_revision()
        return await self.wait_for(current, self.fresh_wait)

    def snapshot(self, resource: str, namespace: str | None) -> tuple[list[CachedObject], int]:
        cache = self.resource(resource)
        items = sorted(cache.snapshot(namespace), key=_sort_key)
        return items, self.revision

    def get(self, resource: str, key: str) -> CachedObject | None:
        return self.resource(resource).objects.get(key)

    def watch(
        self,
        resource: str,
        namespace: str | None,
        predicate: Predicate,
        since: int | None,
    ) -> tuple[CacheWatcher, list[CacheEvent]]:
        """Subscribe, and return the events to replay first.

        ``since=None`` replays the current state as ADDED events; otherwise
        every event after ``since``. Subscribing and taking the replay happen
        with no await in between, which is what makes "no missed and no
        duplicated event" hold.
        """
        cache = self.resource(resource)
        watcher = CacheWatcher(resource, namespace, predicate, self.watcher_capacity)
        if since is None:
            replay = [
                CacheEvent("ADDED", c.revision, c, None)
                for c in sorted(cache.snapshot(namespace), key=_sort_key)
                if watcher.wants(c)
            ]
        else:
            if since < cache.window_start:
                raise Terminated(f"resource version {since} is older than the watch cache window")
            replay = [
                seen
                for event in _events_after(cache.history, since)
                if (seen := watcher.view(event)) is not None
            ]
        cache.watchers.add(watcher)
        return watcher, replay

    def unwatch(self, watcher: CacheWatcher) -> None:
        watcher.closed = True
        self.resource(watcher.resource).watchers.discard(watcher)

    def covers(self, resource: str, since: int) -> bool:
        return since >= self.resource(resource).window_start and self.ready.is_set()

    def watcher_count(self) -> int:
        return sum(len(c.watchers) for c in self._resources.values())


def _sort_key(cached: CachedObject) -> str:
    return cached.key


def _events_after(history: deque[CacheEvent], since: int) -> Iterator[CacheEvent]:
    # History is ordered by revision; the tail is what a resuming client wants.
    start = len(history)
    while start > 0 and history[start - 1].revision > since:
        start -= 1
    for index in range(start, len(history)):
        yield history[index]
