"""Docker's Engine API over its socket, with aiohttp: what the Docker runtime calls.

The agent used the docker SDK, which is synchronous: every call took one of
16 threads, and its imports (requests, urllib3, the SDK) and those threads
cost about 10 MiB of the agent's memory. aiohttp is loaded anyway (the REST
client, /metrics), and the dozen endpoints the runtime needs are plain JSON,
so the calls are made here on the event loop (docs/decisions.md).

Exec sessions with stdin need the connection hijacked (HTTP upgrade to a raw
stream), which aiohttp does not hand over; that one request is written by
hand on an asyncio stream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp

from corral.client.rest import body_lines

# What the SDK gave every call; a stop adds its grace period to it.
DEFAULT_TIMEOUT = 60.0
# A stream header: 1 byte stream (0 stdin, 1 stdout, 2 stderr), 3 zero bytes, 4 bytes size.
_FRAME_HEADER = 8


class DockerError(Exception):
    """dockerd answered with an error status; ``explanation`` is its message."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status}: {explanation}")
        self.status = status
        self.explanation = explanation


class NotFound(DockerError):
    pass


class Unreachable(Exception):
    """No answer from dockerd: its socket is missing, refused, or it timed out."""


def quote(name: str) -> str:
    """A name or reference as a path segment; image references keep their / and :."""
    return urllib.parse.quote(name, safe="/:@")


def registry_auth(username: str, password: str) -> str:
    """The X-Registry-Auth header: base64url of the credentials' JSON."""
    data = json.dumps({"username": username, "password": password}).encode()
    return base64.urlsafe_b64encode(data).decode()


def demux(data: bytes) -> bytes:
    """The payloads of a multiplexed (non-tty) stream, stdout and stderr in order."""
    out = bytearray()
    offset = 0
    while offset + _FRAME_HEADER <= len(data):
        size = int.from_bytes(data[offset + 4 : offset + 8], "big")
        out += data[offset + _FRAME_HEADER : offset + _FRAME_HEADER + size]
        offset += _FRAME_HEADER + size
    return bytes(out)


async def read_frame(
    content: aiohttp.StreamReader | asyncio.StreamReader,
) -> tuple[int, bytes] | None:
    """The next frame of a multiplexed stream as (stream, payload); None at its end."""
    try:
        header = await content.readexactly(_FRAME_HEADER)
    except asyncio.IncompleteReadError:
        return None
    size = int.from_bytes(header[4:8], "big")
    try:
        payload = await content.readexactly(size)
    except asyncio.IncompleteReadError as error:
        payload = error.partial
    return header[0], payload


def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif isinstance(value, dict | list):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out


class DockerAPI:
    """A pooled connection to one dockerd: ``unix:///path`` or ``tcp://host:port``."""

    def __init__(self, base_url: str, *, connections: int = 16) -> None:
        self.base_url = base_url
        self.connections = connections
        if base_url.startswith("unix://"):
            self._socket: str | None = base_url[len("unix://") :]
            self._origin = "http://docker"
        else:
            self._socket = None
            self._origin = "http://" + base_url.split("://", 1)[-1].rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._streams: aiohttp.ClientSession | None = None

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        connector: aiohttp.BaseConnector
        if self._socket is not None:
            connector = aiohttp.UnixConnector(path=self._socket, limit=limit)
        else:
            connector = aiohttp.TCPConnector(limit=limit)
        # Every request sets its own timeout (streams have none in total).
        return aiohttp.ClientSession(connector=connector)

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the event loop aiohttp requires.
        if self._session is None or self._session.closed:
            self._session = self._new_session(self.connections)
        return self._session

    def _stream_client(self) -> aiohttp.ClientSession:
        # Streams (the event stream, every followed log, pulls) hold their connection for
        # as long as they last: out of the bounded pool, or 16 followed logs would leave
        # no connection for a start. Each stream is one connection, made for it.
        if self._streams is None or self._streams.closed:
            self._streams = self._new_session(0)
        return self._streams

    async def close(self) -> None:
        for session in (self._session, self._streams):
            if session is not None:
                await session.close()
        self._session = self._streams = None

    async def _raise_for(self, response: aiohttp.ClientResponse) -> None:
        if response.status < 400:
            return
        body = await response.read()
        try:
            message = str(json.loads(body).get("message", ""))
        except (ValueError, AttributeError):
            message = body.decode(errors="replace").strip()
        kind = NotFound if response.status == 404 else DockerError
        raise kind(response.status, message or response.reason or "")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        raw: bool = False,
    ) -> Any:
        """One call: its JSON answer (None when empty), else its bytes.

        Raises DockerError, Unreachable.
        """
        sent = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        try:
            async with self._client().request(
                method,
                self._origin + path,
                params=_query(params),
                data=data,
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                await self._raise_for(response)
                answer = await response.read()
                is_json = response.content_type == "application/json"
        except (aiohttp.ClientConnectionError, OSError) as error:
            raise Unreachable(f"docker is unreachable at {self.base_url}: {error}") from None
        except TimeoutError:
            raise Unreachable(f"docker did not answer at {self.base_url} in {timeout} s") from None
        if raw or not is_json:
            # Raw streams, and answers that are plain text ("OK" from /_ping).
            return answer if raw or answer else None
        return json.loads(answer) if answer.strip() else None

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """A long response's body, for as long as the caller reads it (no total timeout)."""
        try:
            async with self._stream_client().request(
                method,
                self._origin + path,
                params=_query(params),
                headers=dict(headers or {}),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=DEFAULT_TIMEOUT),
            ) as response:
                await self._raise_for(response)
                yield response.content
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as error:
            # A payload error is a stream cut mid-body (dockerd restarting):
            # unreachable too, so the caller's reconnect loop takes over.
            raise Unreachable(f"docker is unreachable at {self.base_url}: {error}") from None

    async def json_lines(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, Any]]:
        """Each JSON object of a streamed answer (events, pull progress): one a line."""
        async with self.stream(method, path, params=params, **kwargs) as content:
            async for line in body_lines(content):
                try:
                    item = json.loads(line)
                except ValueError:
                    continue  # one garbled line costs that line, not the stream
                if isinstance(item, dict):
                    yield item

    async def hijack(
        self, path: str, body: Mapping[str, Any]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """POST ``body`` and take the connection over as a raw stream (exec with stdin)."""
        try:
            if self._socket is not None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(self._socket), DEFAULT_TIMEOUT
                )
            else:
                host, _, port = self._origin[len("http://") :].rpartition(":")
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, int(port)), DEFAULT_TIMEOUT
                )
        except (OSError, TimeoutError) as error:
            raise Unreachable(f"docker is unreachable at {self.base_url}: {error}") from None
        payload = json.dumps(body).encode()
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            ).encode()
            + payload
        )
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEFAULT_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as error:
            writer.close()
            raise Unreachable(f"docker closed an exec at {self.base_url}: {error}") from None
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status not in (101, 200):
            writer.close()
            raise DockerError(status, status_line)
        return reader, writer
