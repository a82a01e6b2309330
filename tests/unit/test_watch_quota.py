"""The per-user watch cap: 429 over it, and the slot back however a stream ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controlplane.apiserver.watches import WatchQuota, WatchResponse
from corral.api.errors import ApiError

Message = dict[str, Any]
SCOPE = {"type": "http", "asgi": {"spec_version": "2.3"}}


def test_the_cap_is_per_user_and_release_is_idempotent() -> None:
    quota = WatchQuota(2)
    first = quota.acquire("alice")
    quota.acquire("alice")
    with pytest.raises(ApiError) as refused:
        quota.acquire("alice")
    status = refused.value.to_status()
    assert (status["code"], status["reason"]) == (429, "TooManyRequests")
    assert refused.value.retry_after_seconds == 1 and "alice" in status["message"]
    quota.acquire("bob")
    first()
    first()  # a second release gives nothing more back
    assert quota.open == {"alice": 1, "bob": 1}
    quota.acquire("alice")
    assert quota.rejected == 1


def test_zero_means_no_cap() -> None:
    quota = WatchQuota(0)
    for _ in range(1000):
        quota.acquire("alice")
    assert quota.open["alice"] == 1000


async def events(n: int, gate: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    for i in range(n):
        yield b"%d\n" % i
    if gate is not None:
        await gate.wait()


async def test_a_stream_that_ends_frees_its_slot_before_its_last_chunk() -> None:
    quota = WatchQuota(1)
    response = WatchResponse(events(2), quota.acquire("alice"))
    open_at_end: list[dict[str, int]] = []

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client never leaves
        return {}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            open_at_end.append(dict(quota.open))

    await response(SCOPE, receive, send)
    assert open_at_end == [{}]


async def test_a_client_that_leaves_frees_the_slot_and_closes_the_stream() -> None:
    quota = WatchQuota(1)
    closed = asyncio.Event()

    async def forever() -> AsyncIterator[bytes]:
        try:
            yield b"{}\n"
            await asyncio.Event().wait()
        finally:
            closed.set()

    response = WatchResponse(forever(), quota.acquire("alice"))
    streaming = asyncio.Event()

    async def receive() -> Message:
        await streaming.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            streaming.set()

    await asyncio.wait_for(response(SCOPE, receive, send), 5)
    assert quota.open == {} and closed.is_set()


async def test_a_stream_that_never_started_frees_the_slot() -> None:
    quota = WatchQuota(1)
    response = WatchResponse(events(1), quota.acquire("alice"))

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise OSError("the client is gone")

    with pytest.raises(OSError):
        await response(SCOPE, receive, send)
    assert quota.open == {}
