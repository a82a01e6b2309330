"""HTTPS with optional client certificates, and the verified subject in each request.

uvicorn checks a client certificate against the CA when one is offered
(``CERT_OPTIONAL``) but does not pass it to the application. These protocol
classes put the verified subject into the ASGI ``tls`` extension, so the
authenticator reads it like any other request attribute. A certificate is
checked once per connection, not per request, and its identity is read by
``pki.identity_of_certificate`` like everywhere else: a certificate whose
subject names several users is refused, and the connection is then
unauthenticated (a 401 for anything but the public health paths).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from corral import pki
from corral.pki import Subject

log = logging.getLogger(__name__)

TLS_EXTENSION = "tls"


@functools.lru_cache(maxsize=4096)
def _identity(cert_der: bytes) -> Subject | pki.CertificateError:
    try:
        return pki.identity_of_der(cert_der)
    except pki.CertificateError as error:
        return error


def peer_subject(transport: asyncio.BaseTransport) -> Subject | None:
    """Who the client's verified certificate names; None when it sent none or it is refused."""
    ssl_object: Any = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert_der = ssl_object.getpeercert(binary_form=True)
    if not cert_der:
        return None
    identity = _identity(cert_der)
    if isinstance(identity, pki.CertificateError):
        log.warning(
            "client certificate from %s refused, the connection is unauthenticated: %s",
            transport.get_extra_info("peername"),
            identity,
        )
        return None
    return identity


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # websockets parses Sec-WebSocket-Protocol as RFC 6455 tokens and
        # refuses kubectl's "SPDY/3.1+portforward.k8s.io" ('/' is no token
        # character), which Go servers take. The handlers choose the
        # subprotocol from the scope (split on commas) and uvicorn answers
        # it, so this parse only ever refused handshakes: skip it.
        self.conn.process_subprotocol = _no_subprotocol_parse  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._tls = _extension(transport)

    async def run_asgi(self) -> None:
        if self._tls is not None:
            self.scope.setdefault("extensions", {})[TLS_EXTENSION] = self._tls  # type: ignore[assignment]
        await super().run_asgi()


def _no_subprotocol_parse(headers: Any) -> None:
    return None


def client_subject(scope: Any) -> Subject | None:
    extensions = scope.get("extensions")
    if not extensions:
        return None
    tls = extensions.get(TLS_EXTENSION)
    return tls.get("client_subject") if tls else None
