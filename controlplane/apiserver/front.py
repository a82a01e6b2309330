"""The ASGI entry point: resource paths straight to their handlers, the rest to FastAPI.

Resource requests are the hot path (every create, list and watch), and
FastAPI's routing and dependency injection cost about a third of the CPU of
a small create while adding nothing: corral's handlers parse their own
parameters. Discovery, OpenAPI and /docs stay FastAPI routes.
"""

from __future__ import annotations

import logging
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from controlplane.apiserver import http
from controlplane.apiserver.routes import ResourceRoutes, Target, parse_target
from controlplane.storage.etcd import EtcdError, EtcdUnavailable
from corral.api import errors
from corral.api.errors import ApiError
from corral.api.resources import Registry

log = logging.getLogger(__name__)

_CORE = "/api/v1/"
_GROUPS = "/apis/"


def error_response(request: Request, error: Exception) -> Response:
    """Every failure as a Status: a 4xx or 503 that says what is wrong, never a traceback."""
    if isinstance(error, ApiError):
        return http.status_response(error)
    if isinstance(error, EtcdUnavailable):
        return http.status_response(errors.service_unavailable(f"storage is unavailable: {error}"))
    if isinstance(error, EtcdError):
        message = str(error)
        if "too large" in message:
            return http.status_response(
                ApiError(413, "RequestEntityTooLarge", f"storage refused the write: {message}")
            )
        log.error("etcd error on %s %s: %s", request.method, request.url.path, message)
        return http.status_response(errors.service_unavailable(f"storage error: {message}"))
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return http.status_response(
        errors.internal(f"an internal error occurred: {type(error).__name__}")
    )


class ResourceHandler(Protocol):
    async def serve(self, request: Request, target: Target) -> Response: ...


# Groups served from memory rather than storage (metrics.k8s.io: controlplane/usage).
_UNSTORED_GROUPS = ("metrics.k8s.io",)


class ApiFront:
    def __init__(
        self,
        app: ASGIApp,
        routes: ResourceRoutes,
        registry: Registry,
        *,
        unstored: dict[str, ResourceHandler] | None = None,
    ) -> None:
        self.app = app
        self.routes = routes
        self.registry = registry
        self.unstored = unstored or {}

    def target(self, path: str) -> Target | None:
        """The resource a path names, or None when it is not a resource path at all."""
        if path.startswith(_CORE):
            rest = path[len(_CORE) :].split("/")
            if not rest[0]:
                return None
            return parse_target(self.registry, "", "v1", rest)
        if path.startswith(_GROUPS):
            parts = path[len(_GROUPS) :].split("/")
            if len(parts) < 3 or not parts[2]:
                return None
            return parse_target(self.registry, parts[0], parts[1], parts[2:])
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith((_CORE, _GROUPS)):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            target = self.target(path)
            if target is None:
                await self.app(scope, receive, send)
                return
            group = target.rt.group
            if group in _UNSTORED_GROUPS:
                # Never fall through to storage: these kinds share plurals with stored ones.
                handler = self.unstored.get(group)
                if handler is None:
                    raise errors.ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                response = await handler.serve(request, target)
            else:
                response = await self.routes.serve(request, target)
        except Exception as error:
            response = error_response(request, error)
        await response(scope, receive, send)
