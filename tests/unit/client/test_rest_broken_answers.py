"""A server that dies mid-answer: the REST client says ConnectionFailed, not an aiohttp error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client, ConnectionFailed
from tests.unit.controllers.fakes import rt

PODS = rt("Pod")


async def _head_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Promise a body, send none, and close: what a SIGKILLed API server looks like."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    writer.write(b"Content-Length: 584\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    listener = await asyncio.start_server(_head_then_hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with Client(ClientConfig(server=f"http://127.0.0.1:{port}")) as c:
        yield c
    listener.close()
    await listener.wait_closed()


async def test_a_delete_cut_off_mid_body_is_connection_failed(client: Client) -> None:
    with pytest.raises(ConnectionFailed, match="before the whole answer"):
        await client.delete(PODS, "p", "default")


async def test_a_get_cut_off_mid_body_is_connection_failed(client: Client) -> None:
    with pytest.raises(ConnectionFailed, match="before the whole answer"):
        await client.get(PODS, "p", "default")
