"""The front door every request passes: authentication, authorization, audit.

In order: who is asking (a 401 for a bad credential, or for no credential
on anything but the health and version endpoints), whether they may (a 403
from the node authorizer and RBAC), then the request itself, and finally an
audit line for anything that changed state or was refused, or touched a
Secret. The request's attributes stay with the task serving it, for
admission.

The query string is parsed once (``query.request_query``) and the parsed
object kept in the ASGI scope: the attributes authorization decides on are
read from it, and so is every parameter the handler serves, so a request
cannot be authorized as one thing and served as another. A query that does
not parse (a single-valued parameter given twice) is a 400.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.apiserver import http, nodecerts, requestcontext
from controlplane.apiserver.authn import ANONYMOUS, INSECURE_ADMIN, Authenticator, unauthorized
from controlplane.apiserver.requestattributes import request_attributes
from controlplane.audit import AuditLog, new_request_id
from controlplane.auth.attributes import RequestAttributes, with_user
from controlplane.auth.authorizer import Authorizer, require
from controlplane.query import request_query
from controlplane.usage import paths as usage_paths
from corral.api.errors import ApiError
from corral.api.resources import Registry
from corral.clock import Clock

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset(("/healthz", "/livez", "/readyz", "/version"))
# The web console's static files: the same for everyone and free of cluster
# data, so a browser can load the sign-in page; every API call the page
# makes carries the user's token and meets RBAC like any other.
CONSOLE_PREFIX = "/ui"


def is_console_asset(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and (
        path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
    )


# Endpoints that decide for themselves whom to serve (any authenticated user
# may ask; the handler checks what they ask for).
SELF_AUTHORIZING_PATHS = frozenset((nodecerts.PATH, *usage_paths.PATHS))


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class Gate:
    """ASGI middleware around the whole API.

    ``authenticator=None`` is the development-only plain HTTP mode: every
    request is the administrator, and nothing is checked or audited.
    """

    def __init__(
        self,
        app: ASGIApp,
        registry: Registry,
        clock: Clock,
        *,
        authenticator: Authenticator | None,
        authorizer: Authorizer | None,
        audit: AuditLog | None = None,
    ) -> None:
        self.app = app
        self.registry = registry
        self.clock = clock
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        received = self.clock.now()
        websocket = scope["type"] == "websocket"
        method = "GET" if websocket else scope["method"]
        attrs, refusal = self.admit(scope, method, websocket)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal, websocket)
            self._record(scope, attrs, refusal.code, received)
            return
        if self.audit is None:
            await self.app(scope, receive, send)
            return
        code = 0

        async def send_observed(message: Message) -> None:
            nonlocal code
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                code = message["status"]
            elif message["type"] == "websocket.accept":
                code = 101
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            self._record(scope, attrs, code or 500, received)

    def admit(
        self, scope: Scope, method: str, websocket: bool
    ) -> tuple[RequestAttributes, ApiError | None]:
        """The request's attributes, and the error that refuses it (None: let it in).

        The query is parsed, and the attributes worked out from it, once per
        request (here, or already by the metrics or the in-flight limiter) and
        kept in the scope; the handlers read that same query. A query that
        does not parse (a repeated single-valued parameter) cannot be
        authorized at all: it is refused with its 400 once the caller is
        known, and its attributes (for the audit line) read no parameters.
        """
        path: str = scope["path"]
        malformed: ApiError | None = None
        try:
            request_query(scope)
        except ApiError as error:
            malformed = error
        unknown = request_attributes(scope, self.registry)
        if is_console_asset(method, path):
            return with_user(unknown, ANONYMOUS), malformed
        if self.authenticator is None:
            attrs = with_user(unknown, INSECURE_ADMIN)
            if malformed is None:
                requestcontext.enter(attrs)
            return attrs, malformed
        try:
            user = self.authenticator.authenticate(scope)
        except ApiError as error:
            return with_user(unknown, ANONYMOUS), error
        attrs = with_user(unknown, user)
        if user.anonymous and path not in PUBLIC_PATHS:
            return attrs, unauthorized()
        if malformed is not None:
            return attrs, malformed
        if user.anonymous:
            return attrs, None
        if self.authorizer is not None and path not in SELF_AUTHORIZING_PATHS:
            try:
                require(self.authorizer, attrs, websocket=websocket)
            except ApiError as error:
                return attrs, error
        requestcontext.enter(attrs)
        return attrs, None

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, error: ApiError, websocket: bool
    ) -> None:
        response = http.status_response(error)
        if not websocket:
            await response(scope, receive, send)
            return
        # Before the handshake is accepted, a WebSocket can still be answered
        # with a plain HTTP response, Status body and all.
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status_code,
                    "headers": response.raw_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await send({"type": "websocket.close", "code": 1008})

    def _record(
        self, scope: Scope, attrs: RequestAttributes, code: int, received: datetime
    ) -> None:
        if self.audit is None:
            return
        client: Any = scope.get("client") or ("", 0)
        query = scope.get("query_string") or b""
        uri = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        self.audit.record_request(
            attrs,
            request_uri=uri,
            source_ip=str(client[0]),
            code=code,
            request_id=new_request_id(),
            user_agent=_header(scope, b"user-agent"),
            received=received,
        )
