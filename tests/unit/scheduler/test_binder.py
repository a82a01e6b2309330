"""The lean binder against a tiny HTTP server: keep-alive, chunked answers, errors, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson
import pytest

from corral.api.errors import ApiError
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import ConnectionFailed
from scheduler.binder import HttpBinder

Reply = Callable[[bytes, dict[bytes, bytes], bytes], bytes]


def created(head: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
    payload = b'{"kind":"Status","status":"Success","code":201}'
    return b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)


@dataclass
class Server:
    reply: Reply = created
    requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = field(default_factory=list)
    connections: int = 0
    close_after: int | None = None
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines = head.split(b"\r\n")
                headers = {}
                for line in lines[1:]:
                    if b":" in line:
                        name, _, value = line.partition(b":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                self.requests.append((lines[0], headers, body))
                writer.write(self.reply(lines[0], headers, body))
                await writer.drain()
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    return
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    listener = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = listener.sockets[0].getsockname()[1]
    yield state
    listener.close()
    await listener.wait_closed()


def binder(server: Server, token: str | None = None) -> HttpBinder:
    return HttpBinder(ClientConfig(server=f"http://127.0.0.1:{server.port}", token=token))


async def test_a_bind_posts_a_binding_and_reuses_the_connection(server: Server) -> None:
    b = binder(server, token="secret")
    await b.bind("prod", "web-1", "uid-1", "node-a")
    await b.bind("prod", "web-2", "uid-2", "node-b")
    await b.close()
    assert server.connections == 1
    line, headers, body = server.requests[0]
    assert line == b"POST /api/v1/namespaces/prod/pods/web-1/binding HTTP/1.1"
    assert headers[b"authorization"] == b"Bearer secret"
    assert orjson.loads(body) == {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "web-1", "namespace": "prod", "uid": "uid-1"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"},
    }


async def test_a_refusal_is_an_api_error(server: Server) -> None:
    def conflict(head: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        status = orjson.dumps(
            {
                "kind": "Status",
                "status": "Failure",
                "reason": "Conflict",
                "code": 409,
                "message": 'pod web is already assigned to node "a"',
            }
        )
        return b"HTTP/1.1 409 Conflict\r\nContent-Length: %d\r\n\r\n%s" % (len(status), status)

    server.reply = conflict
    b = binder(server)
    with pytest.raises(ApiError) as caught:
        await b.bind("default", "web", "u", "b")
    await b.close()
    assert (caught.value.code, caught.value.reason) == (409, "Conflict")
    assert "already assigned" in caught.value.message


async def test_chunked_answers_and_connection_close(server: Server) -> None:
    def chunked(head: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        return (
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
        )

    server.reply = chunked
    server.close_after = 1
    b = binder(server)
    await b.bind("default", "a", "u", "n")
    await b.bind("default", "b", "u", "n")
    await b.close()
    assert server.connections == 2  # "Connection: close" is honoured


async def test_a_connection_the_server_dropped_is_retried_once(server: Server) -> None:
    server.close_after = 1  # closes without saying so
    b = binder(server)
    await b.bind("default", "a", "u", "n")
    await asyncio.sleep(0.05)
    await b.bind("default", "b", "u", "n")
    await b.close()
    assert [r[0].split(b" ")[1].split(b"/")[-2] for r in server.requests] == [b"a", b"b"]
    assert server.connections == 2


async def test_nothing_listening_is_connection_failed() -> None:
    b = HttpBinder(ClientConfig(server="http://127.0.0.1:1"))
    with pytest.raises(ConnectionFailed):
        await b.bind("default", "a", "u", "n")


async def test_garbage_is_connection_failed(server: Server) -> None:
    server.reply = lambda head, headers, body: b"SSH-2.0-OpenSSH\r\n\r\n"
    with pytest.raises(ConnectionFailed, match="not an HTTP response"):
        await binder(server).bind("default", "a", "u", "n")
