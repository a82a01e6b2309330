"""The in-flight limiter: separate pools, exemptions, and the 429 it answers with."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from controlplane.apiserver.inflight import InflightLimiter, is_long_running
from controlplane.query import SCOPE_KEY, Query, request_query

Message = dict[str, Any]


class Blocking:
    """An app whose requests stay in flight until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self._changed = asyncio.Condition()

    async def wait_started(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.started >= n)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async with self._changed:
            self.started += 1
            self._changed.notify_all()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def scope(
    method: str = "GET", path: str = "/api/v1/pods", query: bytes = b"", kind: str = "http"
) -> Any:
    return {"type": kind, "method": method, "path": path, "query_string": query, "headers": []}


async def call(app: Any, s: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(s, receive, send)
    return sent


def status_of(sent: list[Message]) -> int:
    return int(sent[0]["status"])


async def fill(
    limiter: InflightLimiter, inner: Blocking, s: Any, n: int
) -> list[asyncio.Task[list[Message]]]:
    tasks = [asyncio.create_task(call(limiter, s)) for _ in range(n)]
    await inner.wait_started(n)
    return tasks


async def test_read_only_pool_answers_429_when_full() -> None:
    inner = Blocking()
    limiter = InflightLimiter(inner, max_requests_inflight=2, max_mutating_requests_inflight=1)
    tasks = await fill(limiter, inner, scope("GET"), 2)
    refused = await call(limiter, scope("GET"))
    assert status_of(refused) == 429
    headers = dict(refused[0]["headers"])
    assert headers[b"retry-after"] == b"1"
    body = json.loads(refused[1]["body"])
    assert body["kind"] == "Status"
    assert (body["code"], body["reason"]) == (429, "TooManyRequests")
    assert body["message"] == "Too many requests, please try again later."
    assert body["details"] == {"retryAfterSeconds": 1}
    assert limiter.read_only.rejected == 1
    inner.release.set()
    assert [status_of(await t) for t in tasks] == [200, 200]


async def test_pools_are_separate() -> None:
    inner = Blocking()
    limiter = InflightLimiter(inner, max_requests_inflight=1, max_mutating_requests_inflight=1)
    reads = await fill(limiter, inner, scope("GET"), 1)
    write = asyncio.create_task(call(limiter, scope("POST")))
    await inner.wait_started(2)
    assert status_of(await call(limiter, scope("PATCH"))) == 429
    assert status_of(await call(limiter, scope("GET"))) == 429
    inner.release.set()
    assert status_of(await write) == 200
    assert status_of(await reads[0]) == 200


async def test_slots_are_released() -> None:
    inner = Blocking()
    inner.release.set()
    limiter = InflightLimiter(inner, max_requests_inflight=1, max_mutating_requests_inflight=1)
    for _ in range(5):
        assert status_of(await call(limiter, scope("DELETE"))) == 200
    assert (limiter.mutating.in_use, limiter.read_only.in_use) == (0, 0)


async def test_slot_released_when_the_app_fails() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    limiter = InflightLimiter(broken, 1, 1)
    with pytest.raises(RuntimeError):
        await call(limiter, scope("POST"))
    assert limiter.mutating.in_use == 0


@pytest.mark.parametrize(
    "s",
    [
        scope("GET", "/api/v1/pods", b"watch=true"),
        scope("GET", "/api/v1/namespaces/p/pods", b"labelSelector=a&watch=1"),
        scope("GET", "/api/v1/namespaces/p/pods/web/log", b"follow=true"),
        scope("POST", "/api/v1/namespaces/p/pods/web/exec"),
        scope("GET", "/healthz"),
        scope("GET", "/readyz"),
        scope("GET", "/api/v1/namespaces/p/pods/web/exec", kind="websocket"),
    ],
)
async def test_long_running_and_health_requests_are_exempt(s: Any) -> None:
    inner = Blocking()
    inner.release.set()
    limiter = InflightLimiter(inner, max_requests_inflight=1, max_mutating_requests_inflight=1)
    limiter.read_only.in_use = limiter.mutating.in_use = 1  # both pools full
    sent = await call(limiter, s)
    assert status_of(sent) == 200


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await InflightLimiter(app, 1, 1)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


async def test_zero_means_no_limit() -> None:
    inner = Blocking()
    limiter = InflightLimiter(inner, max_requests_inflight=0, max_mutating_requests_inflight=0)
    tasks = await fill(limiter, inner, scope("POST"), 50)
    inner.release.set()
    assert {status_of(await t) for t in tasks} == {200}


def long_running(method: str, path: str, query: bytes = b"") -> bool:
    return is_long_running(method, path, Query.parse(query))


def test_long_running_detection() -> None:
    assert long_running("GET", "/api/v1/pods", b"watch=true")
    assert long_running("GET", "/api/v1/namespaces/p/pods/web/log")
    assert long_running("POST", "/api/v1/namespaces/p/pods/web/exec", b"command=ls")
    assert not long_running("GET", "/api/v1/pods", b"watch=false")
    assert not long_running("GET", "/api/v1/pods", b"fieldSelector=metadata.name%3Dwatch")
    assert not long_running("POST", "/api/v1/pods", b"watch=true")
    assert not long_running("GET", "/ui/log")


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        # Parameters merely named like a stream, or valued like a watch.
        ("GET", "/api/v1/namespaces/p/pods", b"xlog=1"),
        ("GET", "/api/v1/namespaces/p/pods", b"exec=true&log=true"),
        ("GET", "/api/v1/namespaces/p/pods", b"xwatch=true"),
        # Objects (and a namespace) named like a stream: not a subresource.
        ("GET", "/api/v1/namespaces/p/configmaps/log", b""),
        ("PUT", "/api/v1/namespaces/p/configmaps/exec", b""),
        ("GET", "/api/v1/namespaces/exec", b""),
        ("DELETE", "/api/v1/namespaces/log", b""),
        # A stream's name on a resource that has no such subresource.
        ("GET", "/apis/apps/v1/namespaces/p/deployments/web/log", b""),
        ("GET", "/apis/apps/v1/namespaces/x/deployments/y/proxy", b""),
        # A named object read with watch=true is a get, and is served as one.
        ("GET", "/api/v1/namespaces/p/pods/web", b"watch=true"),
    ],
)
def test_only_parsed_watches_and_real_stream_subresources_are_long_running(
    method: str, path: str, query: bytes
) -> None:
    assert not long_running(method, path, query)


@pytest.mark.parametrize(
    "query",
    [b"xlog=1", b"watch=true&watch=false", b"watch=true&watch=", b"watch=1&watch=1"],
)
async def test_a_list_named_or_repeated_like_a_watch_still_counts(query: bytes) -> None:
    """Full pools refuse it: neither a parameter's name nor a second ``watch`` exempts a list.

    ``watch=true&watch=false`` was exempt (the limiter took any ``watch=true``)
    and then served as a list (the handler took the last value).
    """
    inner = Blocking()
    inner.release.set()
    limiter = InflightLimiter(inner, max_requests_inflight=1, max_mutating_requests_inflight=1)
    limiter.read_only.in_use = 1
    sent = await call(limiter, scope("GET", "/api/v1/namespaces/p/pods", query))
    assert status_of(sent) == 429
    assert limiter.read_only.rejected == 1


async def test_the_limiter_parses_the_query_once_for_everyone_after_it() -> None:
    seen: list[Query] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(request_query(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    s = scope("GET", "/api/v1/pods", b"watch=true")
    await call(InflightLimiter(app, 1, 1), s)
    assert seen[0] is s[SCOPE_KEY]
    assert seen[0].get("watch") == "true"
