"""LIST: from the watch cache when it can be consistent, from etcd otherwise.

- No resourceVersion: the cache first catches up with etcd's current
  revision, then serves (a consistent read without moving every object over
  the wire).
- resourceVersion=0: whatever the cache holds now.
- resourceVersion=N (NotOlderThan): the cache once it has reached N.
- resourceVersionMatch=Exact, limit/continue: etcd, at one revision for all
  pages, so a paginated list is a snapshot; a compacted page is 410 Gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from controlplane.apiserver.objects import Objects
from controlplane.apiserver.params import ListOptions, encode_continue
from controlplane.storage.etcd import EtcdCompacted, EtcdFutureRevision
from controlplane.storage.watchcache import CachedObject
from corral.api import errors
from corral.api.resources import ResourceType
from corral.objects import Obj

Predicate = Callable[[Obj], bool]

# How long a list waits for the cache to reach a requested revision before
# the request is answered from etcd instead.
_CACHE_WAIT_SECONDS = 3.0


@dataclass(slots=True)
class ListResult:
    items: list[Obj]
    raw_items: list[bytes]
    revision: int
    continue_token: str = ""
    remaining: int | None = None

    def body(self, rt: ResourceType) -> bytes:
        metadata: Obj = {"resourceVersion": str(self.revision)}
        if self.continue_token:
            metadata["continue"] = self.continue_token
        if self.remaining:
            metadata["remainingItemCount"] = self.remaining
        head = orjson.dumps(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata}
        )
        items = self.raw_items
        if rt.converts:
            items = [orjson.dumps(rt.served(orjson.loads(raw))) for raw in items]
        return head[:-1] + b',"items":[' + b",".join(items) + b"]}"


def make_predicate(objects: Objects, rt: ResourceType, options: ListOptions) -> Predicate:
    labels = options.labels
    fields = options.fields
    strategy = objects.strategy(rt)
    if fields is not None:
        supported = set(strategy.field_values({"metadata": {}}))
        for name in fields.fields():
            if name not in supported:
                raise errors.bad_request(
                    f'"{name}" is not a known field selector: only "'
                    + '", "'.join(sorted(supported))
                    + '"'
                )
    if labels is None and fields is None:
        return _everything
    if fields is None:
        assert labels is not None

        def by_labels(obj: Obj) -> bool:
            return labels.matches(obj.get("metadata", {}).get("labels") or {})

        return by_labels

    def by_both(obj: Obj) -> bool:
        if labels is not None and not labels.matches(obj.get("metadata", {}).get("labels") or {}):
            return False
        return fields.matches(strategy.field_values(obj))

    return by_both


def _everything(obj: Obj) -> bool:
    return True


async def list_objects(
    objects: Objects, rt: ResourceType, namespace: str | None, options: ListOptions
) -> ListResult:
    predicate = make_predicate(objects, rt, options)
    rv = options.resource_version
    exact = options.resource_version_match == "Exact"
    paged = options.limit > 0 or options.continue_ is not None
    if rv == "0" and not exact and options.continue_ is None:
        return _from_cache(objects, rt, namespace, predicate)
    if not paged and not exact:
        fresh = (
            await objects.cache.fresh()
            if not rv
            else await objects.cache.wait_for(int(rv), _CACHE_WAIT_SECONDS)
        )
        if fresh:
            return _from_cache(objects, rt, namespace, predicate)
        if rv:
            raise too_large_resource_version(int(rv))
    return await _from_etcd(objects, rt, namespace, predicate, options)


def _from_cache(
    objects: Objects, rt: ResourceType, namespace: str | None, predicate: Predicate
) -> ListResult:
    cached, revision = objects.cache.snapshot(
        rt.storage_resource, namespace if rt.namespaced else None
    )
    chosen: list[CachedObject] = (
        cached if predicate is _everything else [c for c in cached if predicate(c.obj)]
    )
    return ListResult([c.obj for c in chosen], [c.raw() for c in chosen], revision)


async def _from_etcd(
    objects: Objects,
    rt: ResourceType,
    namespace: str | None,
    predicate: Predicate,
    options: ListOptions,
) -> ListResult:
    prefix = objects.store.resource_prefix(
        rt.storage_resource, namespace if rt.namespaced else None
    )
    revision = 0
    start: bytes | None = None
    if options.continue_ is not None:
        revision = options.continue_.revision
        start = prefix + options.continue_.start.encode()
    elif options.resource_version and options.resource_version_match == "Exact":
        revision = int(options.resource_version)
    limit = options.limit
    items: list[Obj] = []
    last_key: bytes | None = None
    more = False
    remaining: int | None = None
    fetch = limit
    while True:
        try:
            page = await objects.store.page(prefix, revision=revision, limit=fetch, start=start)
        except EtcdCompacted:
            if options.continue_ is not None:
                raise errors.gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                ) from None
            raise errors.gone(
                f"The resourceVersion for the provided list is too old: {revision}"
            ) from None
        except EtcdFutureRevision:
            raise too_large_resource_version(revision) from None
        revision = page.revision if revision == 0 else revision
        for stored in page.items:
            if limit and len(items) >= limit:
                more = True
                break
            last_key = objects.key(
                rt, stored.obj["metadata"].get("namespace"), stored.obj["metadata"]["name"]
            )
            if predicate(stored.obj):
                items.append(stored.obj)
        else:
            more = page.more
            if not limit or len(items) >= limit or not page.more:
                remaining = page.remaining if page.more and predicate is _everything else None
                break
            # Filtering left the page short: fetch on from where this one stopped,
            # asking for more each time so sparse matches do not cost one round trip each.
            start = (last_key or prefix) + b"\0"
            fetch = min(fetch * 2, 10_000)
            continue
        break
    token = ""
    if more and last_key is not None:
        token = encode_continue(revision, (last_key + b"\0")[len(prefix) :].decode())
    return ListResult(items, [orjson.dumps(o) for o in items], revision, token, remaining)


def too_large_resource_version(revision: int) -> errors.ApiError:
    return errors.ApiError(
        504,
        "Timeout",
        f"Too large resource version: {revision}, current: unknown",
        causes=[errors.Cause("ResourceVersionTooLarge", "Too large resource version")],
        retry_after_seconds=1,
    )
