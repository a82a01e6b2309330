"""Binding pods: a POST to ``pods/{name}/binding`` per pod, over lean keep-alive connections.

The bind is the one request the scheduler makes for every pod, and through
the general REST client (aiohttp) it cost about 300 us of the scheduler's
CPU; written as plain HTTP/1.1 on connections of its own it costs about
100 us. ``HttpBinder`` does only that: one request at a time per
connection, a pool of idle ones, ``Content-Length`` or chunked answers,
TLS and bearer tokens as the kubeconfig says. ``ClientBinder`` goes through
the general client instead, for tests and anything unusual.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import orjson

from corral.api.resources import REGISTRY
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import ConnectionFailed, api_error, ssl_context
from corral.version import VERSION

PODS = REGISTRY.resolve("pods")
# Answers larger than this are not bindings' answers: give up on them.
_MAX_HEADER = 64 * 1024
# Servers close idle keep-alive connections (uvicorn after 5 s); one idle
# this long is not worth the failed attempt.
MAX_IDLE_SECONDS = 4.0


class Binder(Protocol):
    async def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        """Bind the pod to ``node``; ``ApiError`` if the API refuses, ``ConnectionFailed``."""
        ...

    async def close(self) -> None: ...


def binding(namespace: str, name: str, uid: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


class ClientBinder:
    """Binds through anything with the REST client's ``subresource``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        await self.client.subresource(
            PODS, name, "binding", binding(namespace, name, uid, node), namespace
        )

    async def close(self) -> None:
        return None


class _ProtocolError(Exception):
    """The server's answer was not HTTP as expected."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False
        self.idle_since = 0.0

    async def request(self, data: bytes) -> tuple[int, bytes, bool]:
        """Send one request; the status, the body, and whether the connection may be reused."""
        self.writer.write(data)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _ProtocolError("the response headers are too large") from None
        if not head.startswith(b"HTTP/1.") or len(head) < 12:
            raise _ProtocolError(f"not an HTTP response: {head[:40]!r}")
        status = int(head[9:12])
        length: int | None = None
        chunked = False
        keep = head[7:8] == b"1"  # HTTP/1.1 keeps the connection unless told otherwise
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = value.strip().lower() != b"close"
        if chunked:
            body = await self._chunks()
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:
            body = await self.reader.read()
            keep = False
        return status, body, keep

    async def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # trailers are not expected
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class HttpBinder:
    def __init__(self, config: ClientConfig, *, max_idle: int = 128) -> None:
        url = urlsplit(config.server)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.prefix = url.path.rstrip("/")
        context = ssl_context(config)
        self._ssl: ssl.SSLContext | None = context if isinstance(context, ssl.SSLContext) else None
        self.max_idle = max_idle
        host_header = url.netloc.rsplit("@", 1)[-1]
        headers = [
            f"Host: {host_header}",
            f"User-Agent: corral-scheduler/{VERSION}",
            "Accept: application/json",
            "Content-Type: application/json",
        ]
        if config.token:
            headers.append(f"Authorization: Bearer {config.token}")
        self._headers = ("\r\n".join(headers) + "\r\n").encode()
        self._idle: list[_Connection] = []

    async def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        body = orjson.dumps(binding(namespace, name, uid, node))
        path = f"{self.prefix}/api/v1/namespaces/{quote(namespace, safe='')}/pods/" + (
            f"{quote(name, safe='')}/binding"
        )
        data = (
            f"POST {path} HTTP/1.1\r\n".encode()
            + self._headers
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        # A pooled connection the server has since closed fails at once:
        # that is worth one more try on a new connection, as browsers do. Were
        # the first request to have been bound after all, the retry is a 409.
        for attempt in range(2):
            connection = self._pooled() if attempt == 0 else None
            if connection is None:
                connection = await self._connect()
            try:
                status, payload, keep = await connection.request(data)
            except (OSError, asyncio.IncompleteReadError, _ProtocolError, ValueError) as error:
                connection.close()
                if attempt == 0 and connection.reused:
                    continue
                raise ConnectionFailed(f"binding {namespace}/{name}: {error}") from None
            except BaseException:
                # Cancelled or timed out mid-request: the connection's state is unknown.
                connection.close()
                raise
            if keep and len(self._idle) < self.max_idle:
                connection.reused = True
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
            if status >= 300:
                raise api_error(status, payload, "")
            return

    def _pooled(self) -> _Connection | None:
        """The most recently used idle connection, dropping any idle too long."""
        horizon = time.monotonic() - MAX_IDLE_SECONDS
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_since >= horizon:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl else None,
                limit=_MAX_HEADER,
            )
        except OSError as error:
            raise ConnectionFailed(
                f"the connection to the server {self.host}:{self.port} was refused ({error})"
            ) from None
        return _Connection(reader, writer)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        for connection in idle:
            # Idle connections carry no request: one that fails to close
            # cleanly loses nothing.
            with contextlib.suppress(OSError, ssl.SSLError):
                await connection.writer.wait_closed()
