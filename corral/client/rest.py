"""An asyncio REST client for the corral (and Kubernetes) API.

The CLI, the scheduler, the controllers and the node agent all talk to the
API server through this one client; non-2xx answers come back as
``ApiError`` built from the server's Status, so callers branch on
``error.code``/``error.reason`` exactly as client-go users do.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
import ssl
import tempfile
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from corral import tlspolicy
from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.client.kubeconfig import ClientConfig
from corral.objects import Obj, meta
from corral.version import VERSION

log = logging.getLogger(__name__)

TABLE_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class ConnectionFailed(Exception):
    """The API server could not be reached at all."""


class NotConnected(ConnectionFailed):
    """No connection was made: nothing was sent, so any request may go elsewhere."""


# A watch that asked for bookmarks hears from its server at least once per
# bookmark interval (60 s on corral's and kube's API servers); twice that and
# a margin of silence means the server is frozen or cut off, not idle.
WATCH_IDLE_TIMEOUT = 2 * 60.0 + 15.0
# TCP keepalive on every connection: a peer host that vanished (power, a
# partition) is noticed in about IDLE + INTERVAL * COUNT seconds even on a
# watch that asked for no bookmarks. A stopped server process still has its
# kernel answering probes: only the idle timeout above catches that.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3


def ssl_context(config: ClientConfig) -> ssl.SSLContext | bool:
    """The TLS settings a kubeconfig asks for; False for a plain-HTTP server."""
    if not config.server.startswith("https://"):
        return False
    if config.insecure_skip_tls_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif config.ca_data:
        context = ssl.create_default_context(cadata=config.ca_data.decode())
    else:
        context = ssl.create_default_context()
    tlspolicy.apply(context)
    if config.client_cert_data and config.client_key_data:
        # ssl can load a certificate chain only from files; keep them private
        # and gone as soon as they are loaded.
        with tempfile.TemporaryDirectory(prefix="corral-cert-") as scratch:
            cert = os.path.join(scratch, "cert.pem")
            key = os.path.join(scratch, "key.pem")
            for path, data in ((cert, config.client_cert_data), (key, config.client_key_data)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
            context.load_cert_chain(cert, key)
    return context


def resource_path(
    rt: ResourceType,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    root = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    parts = [root]
    if rt.namespaced and namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(rt.plural)
    if name is not None:
        parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
    return "/".join(parts)


def api_error(status: int, body: bytes, reason: str) -> ApiError:
    """The ``ApiError`` of a non-2xx answer: its Status if it sent one, else one made up."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and data.get("kind") == "Status":
        return ApiError.from_status(data, status)
    text = body.decode(errors="replace").strip()
    code_reason = {
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        429: "TooManyRequests",
        503: "ServiceUnavailable",
    }.get(status, reason or "Unknown")
    return ApiError(status, code_reason, text or f"the server responded with HTTP {status}")


class Client:
    def __init__(
        self,
        config: ClientConfig,
        *,
        timeout: float = 60.0,
        max_connections: int = 100,
        on_warning: Callable[[str], None] | None = None,
        user_agent: str = f"corral/{VERSION}",
        watch_idle_timeout: float | None = WATCH_IDLE_TIMEOUT,
    ) -> None:
        self.config = config
        # Several servers of one cluster: requests go to one until it cannot
        # be reached, then to the next (client-go leaves this to a load
        # balancer; agents and controllers here may have none).
        self.endpoints = config.endpoints or (config.server.rstrip("/"),)
        self._current = 0
        self.timeout = timeout
        self.watch_idle_timeout = watch_idle_timeout
        self.on_warning = on_warning
        headers = {"User-Agent": user_agent}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._headers = headers
        self._ssl = ssl_context(config)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    @property
    def base(self) -> str:
        """The server requests go to now."""
        return self.endpoints[self._current]

    def fail_over(self, failed: str) -> None:
        """Move on from ``failed`` to the next server (unless another caller already has)."""
        if len(self.endpoints) > 1 and self.base == failed:
            self._current = (self._current + 1) % len(self.endpoints)
            log.warning("API server %s unreachable; switching to %s", failed, self.base)

    def _new_socket(self, address: Any) -> socket.socket:
        family, kind, proto = address[0], address[1], address[2]
        sock = socket.socket(family=family, type=kind, proto=proto)
        if family in (socket.AF_INET, socket.AF_INET6):
            _keepalive(sock)
        self._sockets.add(sock)
        return sock

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Below uvicorn's 5 s keep-alive: a pooled connection is dropped by
            # the client before the server may close it under a request.
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                ssl=self._ssl,
                keepalive_timeout=4,
                socket_factory=self._new_socket,
            )
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    async def close(self, *, linger: float = 1.0) -> None:
        """Close every connection, waiting (at most ``linger`` seconds) until they are.

        A TLS connection closes with a goodbye exchanged with the server, so
        its socket outlives ``session.close()`` by a round trip; a loop closed
        in between would leak it.
        """
        if self._session is None:
            return
        await self._session.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + linger
        while any(s.fileno() != -1 for s in list(self._sockets)):
            if loop.time() > deadline:
                return
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _warn(self, headers: Mapping[str, str]) -> None:
        if self.on_warning is None:
            return
        for value in headers.getall("Warning", []) if hasattr(headers, "getall") else []:
            for part in _split_warnings(value):
                self.on_warning(part)

    # --- raw requests ---------------------------------------------------------------------

    async def request_bytes(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        data: bytes | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        headers = {"Accept": accept}
        if body is not None:
            data = orjson.dumps(body)
        if data is not None:
            headers["Content-Type"] = content_type
        query = {k: _param(v) for k, v in (params or {}).items() if v not in (None, "", False)}
        # A pooled connection may point at a server process that is gone; like
        # Go's transport, replay a request that is safe to replay, once.
        replays = 1 if method in ("GET", "HEAD") else 0
        # Each server once: a refused connection sent nothing, so even a
        # write may go to the next one.
        refusals = 0
        while True:
            base = self.base
            try:
                return await self._send(base, method, path, query, data, headers, timeout)
            except NotConnected:
                self.fail_over(base)
                refusals += 1
                if refusals >= len(self.endpoints):
                    raise
            except aiohttp.ServerDisconnectedError:
                if replays > 0:
                    replays -= 1
                    continue
                self.fail_over(base)
                raise ConnectionFailed(f"the connection to {base} broke") from None
            except ConnectionFailed:
                # Maybe sent, maybe not: not replayed here, but the caller's
                # retry goes to the next server.
                self.fail_over(base)
                raise

    async def _send(
        self,
        base: str,
        method: str,
        path: str,
        query: dict[str, str],
        data: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> tuple[int, bytes]:
        # aiohttp streams a large body from a file-like object instead of
        # writing it in one call that would stall the event loop.
        payload: bytes | io.BytesIO | None = (
            io.BytesIO(data) if data is not None and len(data) > 1024 * 1024 else data
        )
        try:
            async with self.session.request(
                method,
                base + path,
                params=query,
                data=payload,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            ) as response:
                payload = await response.read()
                self._warn(response.headers)
                if response.status >= 400:
                    raise api_error(response.status, payload, response.reason or "")
                return response.status, payload
        except aiohttp.ClientConnectorError as error:
            raise NotConnected(
                f"the connection to the server {base} was refused - did you specify the "
                f"right host or port? ({error.os_error})"
            ) from None
        except aiohttp.ClientOSError as error:
            raise ConnectionFailed(f"the connection to {base} broke: {error}") from None
        except aiohttp.ClientPayloadError:
            # The server went away between the head and the end of the body:
            # the write may or may not have happened, as with any broken link.
            raise ConnectionFailed(
                f"the connection to {base} broke before the whole answer came"
            ) from None
        except TimeoutError:
            raise ConnectionFailed(f"the request to {base}{path} timed out") from None

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        _, payload = await self.request_bytes(method, path, **kwargs)
        return orjson.loads(payload) if payload else None

    # --- typed verbs ----------------------------------------------------------------------

    def _ns(self, rt: ResourceType, namespace: str | None) -> str | None:
        if not rt.namespaced:
            return None
        return namespace if namespace is not None else self.config.namespace

    async def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj:
        result: Obj = await self.request("GET", resource_path(rt, self._ns(rt, namespace), name))
        return result

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_: str = "",
        resource_version: str = "",
    ) -> Obj:
        ns = None if all_namespaces else self._ns(rt, namespace)
        result: Obj = await self.request(
            "GET",
            resource_path(rt, ns),
            params={
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "limit": limit or None,
                "continue": continue_,
                "resourceVersion": resource_version,
            },
        )
        return result

    async def table(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        name: str | None = None,
        *,
        all_namespaces: bool = False,
        label_selector: str = "",
        field_selector: str = "",
        include_object: str = "Metadata",
    ) -> Obj:
        ns = None if all_namespaces else self._ns(rt, namespace)
        result: Obj = await self.request(
            "GET",
            resource_path(rt, ns, name),
            params={
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "includeObject": include_object,
            },
            accept=TABLE_ACCEPT,
        )
        return result

    async def create(
        self,
        rt: ResourceType,
        obj: Obj,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        field_validation: str = "Strict",
    ) -> Obj:
        ns = self._ns(rt, namespace or meta(obj).get("namespace"))
        result: Obj = await self.request(
            "POST",
            resource_path(rt, ns),
            body=obj,
            params={"dryRun": "All" if dry_run else None, "fieldValidation": field_validation},
        )
        return result

    async def replace(
        self,
        rt: ResourceType,
        obj: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Strict",
    ) -> Obj:
        ns = self._ns(rt, namespace or meta(obj).get("namespace"))
        name = meta(obj).get("name", "")
        result: Obj = await self.request(
            "PUT",
            resource_path(rt, ns, name, subresource),
            body=obj,
            params={"dryRun": "All" if dry_run else None, "fieldValidation": field_validation},
        )
        return result

    async def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Strict",
    ) -> Obj:
        result: Obj = await self.request(
            "PATCH",
            resource_path(rt, self._ns(rt, namespace), name, subresource),
            body=patch,
            content_type=PATCH_TYPES[patch_type],
            params={"dryRun": "All" if dry_run else None, "fieldValidation": field_validation},
        )
        return result

    async def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> Obj:
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if dry_run:
            options["dryRun"] = ["All"]
        result: Obj = await self.request(
            "DELETE", resource_path(rt, self._ns(rt, namespace), name), body=options
        )
        return result

    async def subresource(
        self,
        rt: ResourceType,
        name: str,
        subresource: str,
        body: Obj,
        namespace: str | None = None,
    ) -> Any:
        return await self.request(
            "POST", resource_path(rt, self._ns(rt, namespace), name, subresource), body=body
        )

    # --- watch ------------------------------------------------------------------------------

    async def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = False,
        send_initial_events: bool | None = None,
        as_table: bool = False,
    ) -> AsyncGenerator[Obj, None]:
        """Yield watch events until the server ends the stream.

        An ERROR event (such as 410 Gone once the version is compacted) is
        raised as the ``ApiError`` it carries.
        """
        ns = None if all_namespaces else self._ns(rt, namespace)
        params: dict[str, Any] = {
            "watch": "true",
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": "true" if allow_bookmarks else None,
        }
        if send_initial_events is not None:
            params["sendInitialEvents"] = "true" if send_initial_events else "false"
        query = {k: _param(v) for k, v in params.items() if v not in (None, "")}
        headers = {"Accept": TABLE_ACCEPT if as_table else "application/json"}
        # Silence is a fault only when the server promised bookmarks.
        idle = self.watch_idle_timeout if allow_bookmarks else None
        replayed = refusals = 0
        while True:
            received = False
            base = self.base
            try:
                # Closed explicitly, so a caller that stops early releases the
                # connection at once rather than whenever the GC gets to it.
                async with contextlib.aclosing(  # type: ignore[type-var]
                    self._watch_once(base, rt, ns, query, headers, idle)
                ) as events:
                    async for event in events:
                        received = True
                        yield event
                return
            except NotConnected:
                # Nothing sent: the next server, at once, each server once.
                self.fail_over(base)
                refusals += 1
                if refusals >= len(self.endpoints):
                    raise
            except aiohttp.ServerDisconnectedError:
                # Before any event: a dead pooled connection, worth one replay.
                # After events: the server ended the stream; the caller resumes.
                if received or replayed:
                    return
                replayed += 1

    async def _watch_once(
        self,
        base: str,
        rt: ResourceType,
        ns: str | None,
        query: dict[str, str],
        headers: dict[str, str],
        idle: float | None,
    ) -> AsyncIterator[Obj]:
        try:
            async with self.session.get(
                base + resource_path(rt, ns),
                params=query,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=idle),
            ) as response:
                if response.status >= 400:
                    raise api_error(response.status, await response.read(), response.reason or "")
                async with contextlib.aclosing(body_lines(response.content)) as lines:  # type: ignore[type-var]
                    async for line in lines:
                        event = orjson.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object") or {}
                            raise ApiError.from_status(status, int(status.get("code") or 500))
                        yield event
        except aiohttp.ClientConnectorError as error:
            raise NotConnected(
                f"the connection to the server {base} was refused ({error.os_error})"
            ) from None
        except TimeoutError:
            # Silent past the bookmark interval: frozen or cut off. The caller
            # resumes from its last version, on the next server.
            self.fail_over(base)
            raise ConnectionFailed(f"the watch on {base} went silent for {idle}s") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientOSError):
            # The connection broke mid-stream: the watch ends as if the
            # server had closed it, and the caller watches again from the
            # last version it saw, as client-go's reflectors do.
            return

    async def stream_text(self, path: str, params: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """Stream a plain-text body (pod logs) chunk by chunk."""
        query = {k: _param(v) for k, v in params.items() if v not in (None, "", False)}
        async with self.session.get(
            self.base + path,
            params=query,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        ) as response:
            if response.status >= 400:
                raise api_error(response.status, await response.read(), response.reason or "")
            # A body cut short (the agent's stream ended, the server stopped)
            # ends the text there: everything received was yielded already.
            with contextlib.suppress(aiohttp.ClientPayloadError):
                async for chunk in response.content.iter_any():
                    yield chunk


async def body_lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The non-blank lines of a streamed body (newline-delimited JSON), each without its newline."""
    buffer = b""
    async for chunk in content.iter_any():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def _keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Linux names; elsewhere the system's keepalive defaults apply.
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_warnings(value: str) -> list[str]:
    """``299 - "a", 299 - "b"`` into the two messages."""
    out = []
    rest = value
    while rest:
        start = rest.find('"')
        if start < 0:
            break
        i = start + 1
        text = []
        while i < len(rest):
            if rest[i] == "\\" and i + 1 < len(rest):
                text.append(rest[i + 1])
                i += 2
                continue
            if rest[i] == '"':
                break
            text.append(rest[i])
            i += 1
        out.append("".join(text))
        rest = rest[i + 1 :]
    return out
