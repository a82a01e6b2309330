"""HTTPS with optional client certificates, and the verified subject in each request.

uvicorn checks a client certificate against the CA when one is offered
(``CERT_OPTIONAL``) but does not pass it to the application. These protocol
classes put the verified subject into the ASGI ``tls`` extension, so the
authenticator reads it like any other request attribute. A certificate is
checked once per connection, not per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from corral.pki import Subject

TLS_EXTENSION = "tls"


def peer_subject(transport: asyncio.BaseTransport) -> Subject | None:
    """The subject of the client's verified certificate; None when it sent none."""
    cert: Any = transport.get_extra_info("peercert")
    if not cert:
        return None
    user = ""
    groups: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return Subject(user, tuple(groups))


def _extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    if transport.get_extra_info("sslcontext") is None:
        return None
    return {"client_subject": peer_subject(transport)}


class CertAwareHttpProtocol(HttpToolsProtocol):
    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = _extension(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {TLS_EXTENSION: self._tls}  # type: ignore[dict-item]


class CertAwareWebSocketProtocol(WebSocketsSansIOProtocol):
    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._tls = _extension(transport)

    async def run_asgi(self) -> None:
        if self._tls is not None:
            self.scope.setdefault("extensions", {})[TLS_EXTENSION] = self._tls  # type: ignore[assignment]
        await super().run_asgi()


def client_subject(scope: Any) -> Subject | None:
    extensions = scope.get("extensions")
    if not extensions:
        return None
    tls = extensions.get(TLS_EXTENSION)
    return tls.get("client_subject") if tls else None
