"""Informers: a local, watch-fed copy of one resource, as client-go keeps one.

An informer lists, then watches from the listed version, and keeps a store
that handlers and lookups read without touching the API. When the watch
breaks it resumes from the last version seen; when that version is gone
(410) it lists again and reports what changed meanwhile as adds, updates and
deletes, so a handler never misses a transition it could act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.backoff import Backoff
from corral.client.rest import Client, ConnectionFailed
from corral.clock import Clock, SystemClock
from corral.objects import Obj, meta

log = logging.getLogger(__name__)

AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
IndexFunc = Callable[[Obj], Iterable[str]]


def object_key(obj: Obj) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects: the store's key."""
    metadata = meta(obj)
    namespace = metadata.get("namespace")
    name = metadata.get("name", "")
    return f"{namespace}/{name}" if namespace else str(name)


def split_key(key: str) -> tuple[str | None, str]:
    namespace, _, name = key.rpartition("/")
    return (namespace or None), name


@dataclass
class Handlers:
    on_add: AddHandler | None = None
    on_update: UpdateHandler | None = None
    on_delete: DeleteHandler | None = None


@dataclass
class Informer:
    client: Client
    rt: ResourceType
    namespace: str | None = None
    label_selector: str = ""
    field_selector: str = ""
    clock: Clock = field(default_factory=SystemClock)
    # Watches end after this long (randomised up to twice it) and resume, so
    # a silently dead connection is noticed and load is spread.
    watch_timeout_seconds: int = 300
    backoff_initial: float = 0.2
    backoff_max: float = 10.0

    def __post_init__(self) -> None:
        self.store: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._handlers: list[Handlers] = []
        self._indexers: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}

    # --- registration ----------------------------------------------------------------

    def add_handlers(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        handlers = Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        # A handler added late still learns about everything already known.
        if on_add is not None:
            for obj in list(self.store.values()):
                on_add(obj)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._indexers[name] = func
        index: dict[str, set[str]] = {}
        for key, obj in self.store.items():
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        self._indexes[name] = index

    # --- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def items(self) -> list[Obj]:
        return [*self.store.values()]

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indexes.get(name, {}).get(value, set())
        return [self.store[k] for k in keys if k in self.store]

    # --- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """List and watch until ``stop`` is set."""
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        need_list = True
        while not stop.is_set():
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch(stop)
                backoff.reset()
            except ApiError as error:
                if error.code == 410:
                    log.info("%s: watch version expired; listing again", self.rt.plural)
                    need_list = True
                    continue
                log.warning("%s informer: %s", self.rt.plural, error.message)
                await self._sleep(backoff.next(), stop)
            except ConnectionFailed as error:
                # Resumes from self.resource_version, on whichever server the
                # client fails over to: no relist unless that answers 410.
                log.warning("%s informer: %s", self.rt.plural, error)
                await self._sleep(backoff.next(), stop)

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()

    async def _list(self) -> None:
        listed: list[Obj] = []
        continue_ = ""
        version = ""
        while True:
            page = await self.client.list(
                self.rt,
                self.namespace,
                all_namespaces=self.namespace is None,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=500,
                continue_=continue_,
            )
            for item in page.get("items") or []:
                item.setdefault("apiVersion", self.rt.api_version)
                item.setdefault("kind", self.rt.kind)
                listed.append(item)
            version = version or meta(page).get("resourceVersion", "")
            continue_ = meta(page).get("continue", "")
            if not continue_:
                break
        self.replace(listed, version)

    def replace(self, items: list[Obj], resource_version: str) -> None:
        """Make the store exactly ``items``, reporting the differences to handlers."""
        fresh = {object_key(item): item for item in items}
        for key, gone in list(self.store.items()):
            if key not in fresh:
                self._delete(key, gone)
        for key, obj in fresh.items():
            known = self.store.get(key)
            if known is None:
                self._add(key, obj)
            elif meta(known).get("resourceVersion") != meta(obj).get("resourceVersion"):
                self._update(key, known, obj)
        self.resource_version = resource_version
        self.synced.set()

    async def _watch(self, stop: asyncio.Event) -> None:
        timeout = int(self.watch_timeout_seconds * (1 + random.random()))
        stream = self.client.watch(
            self.rt,
            self.namespace,
            all_namespaces=self.namespace is None,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
            allow_bookmarks=True,
        )
        stopper = asyncio.ensure_future(stop.wait())
        step: asyncio.Future[Obj] | None = None
        try:
            while True:
                step = asyncio.ensure_future(stream.__anext__())
                done, _ = await asyncio.wait({step, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    return
                try:
                    event = step.result()
                except StopAsyncIteration:
                    return
                self.apply(event)
        finally:
            stopper.cancel()
            if step is not None and not step.done():
                # The generator runs inside ``step`` (on a stop, or when this
                # task itself is cancelled): it must unwind before it can be
                # closed, or aclose() raises "already running".
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
            await stream.aclose()

    def apply(self, event: Obj) -> None:
        """Fold one watch event into the store."""
        kind = event.get("type")
        obj = event.get("object") or {}
        version = meta(obj).get("resourceVersion", "")
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        obj.setdefault("apiVersion", self.rt.api_version)
        obj.setdefault("kind", self.rt.kind)
        key = object_key(obj)
        previous = self.store.get(key)
        if kind == "DELETED":
            if previous is not None:
                self._delete(key, obj)
        elif previous is None:
            self._add(key, obj)
        else:
            self._update(key, previous, obj)
        if version:
            self.resource_version = version

    # --- store changes ------------------------------------------------------------------

    def _index(self, key: str, obj: Obj | None, old: Obj | None) -> None:
        for name, func in self._indexers.items():
            index = self._indexes[name]
            if old is not None:
                for value in func(old):
                    bucket = index.get(value)
                    if bucket is not None:
                        bucket.discard(key)
                        if not bucket:
                            del index[value]
            if obj is not None:
                for value in func(obj):
                    index.setdefault(value, set()).add(key)

    def _add(self, key: str, obj: Obj) -> None:
        self.store[key] = obj
        self._index(key, obj, None)
        for handlers in self._handlers:
            if handlers.on_add is not None:
                handlers.on_add(obj)

    def _update(self, key: str, old: Obj, obj: Obj) -> None:
        self.store[key] = obj
        self._index(key, obj, old)
        for handlers in self._handlers:
            if handlers.on_update is not None:
                handlers.on_update(old, obj)

    def _delete(self, key: str, obj: Obj) -> None:
        old = self.store.pop(key, None)
        self._index(key, None, old)
        for handlers in self._handlers:
            if handlers.on_delete is not None:
                handlers.on_delete(obj)


async def wait_synced(informers: Iterable[Informer], timeout: float | None = None) -> None:
    """Wait until every informer has listed once; workers start only after that."""
    async with asyncio.timeout(timeout):
        for informer in informers:
            await informer.synced.wait()
