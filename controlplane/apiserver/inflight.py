"""The in-flight limiter: a bound on concurrent requests, read-only and mutating apart.

Kubernetes' ``--max-requests-inflight`` and ``--max-mutating-requests-inflight``:
when either pool is full, a request is answered at once with 429
TooManyRequests, ``Retry-After: 1`` and a Status body, instead of queueing
until every request is slow. Clients (kubectl, client-go, corral's own)
retry after the delay.

Long-running requests are exempt, since they would hold a slot for their
whole life: watches and the streams ``log``, ``exec``, ``attach``,
``portforward`` and ``proxy``, and every WebSocket. As kube-apiserver's
``longRunningRequestCheck`` does, that is decided from the request's
parsed path (a subresource the resource really has, not a last path
segment that happens to read ``log``: a ConfigMap or Namespace may be
named ``exec``) and from the parsed query (``request_query``, the very
object authorization and the handler read; a query that does not parse is
not a watch). So are the health checks, so a busy server is not also
declared dead by its probes.
A limit of 0 means no limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from controlplane.apiserver import http
from controlplane.apiserver.requestattributes import request_attributes
from controlplane.auth.attributes import RequestAttributes, UserInfo, attributes_for
from controlplane.query import Query, request_query
from corral.api import errors
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, Registry

READ_ONLY_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
LONG_RUNNING_VERBS = frozenset(("watch", "proxy"))
LONG_RUNNING_SUBRESOURCES = frozenset(("log", "exec", "attach", "portforward", "proxy"))
EXEMPT_PATHS = frozenset(("/healthz", "/livez", "/readyz"))
MESSAGE = "Too many requests, please try again later."
_NOBODY = UserInfo("")


def is_long_running(method: str, path: str, query: Query, registry: Registry = REGISTRY) -> bool:
    """Whether a request may hold its connection open indefinitely."""
    return long_running_request(attributes_for(method, path, query, _NOBODY, registry), registry)


def long_running_request(attrs: RequestAttributes, registry: Registry = REGISTRY) -> bool:
    """``is_long_running`` for a request whose attributes are worked out already."""
    if not attrs.resource_request:
        return False
    if attrs.verb in LONG_RUNNING_VERBS:
        return True
    if attrs.subresource not in LONG_RUNNING_SUBRESOURCES:
        return False
    rt = registry.by_plural(attrs.api_group, attrs.api_version, attrs.resource)
    return rt is not None and rt.has(attrs.subresource)


@dataclass(slots=True)
class Pool:
    limit: int
    in_use: int = 0
    rejected: int = 0

    def try_acquire(self) -> bool:
        if self.limit and self.in_use >= self.limit:
            self.rejected += 1
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use -= 1


class InflightLimiter:
    """ASGI middleware; put it outermost, so an overloaded server sheds load cheaply."""

    def __init__(
        self,
        app: ASGIApp,
        max_requests_inflight: int = 400,
        max_mutating_requests_inflight: int = 200,
        *,
        registry: Registry = REGISTRY,
        long_running: Callable[[RequestAttributes, Registry], bool] = long_running_request,
    ) -> None:
        self.app = app
        self.read_only = Pool(max_requests_inflight)
        self.mutating = Pool(max_mutating_requests_inflight)
        self.registry = registry
        self.long_running = long_running

    def pool_for(self, scope: Scope) -> Pool | None:
        """The pool a request counts against, or None when it is exempt."""
        if scope["type"] != "http":
            return None  # lifespan, and WebSockets (exec), which are long-running
        path: str = scope["path"]
        if path in EXEMPT_PATHS:
            return None
        method: str = scope["method"]
        try:
            query = request_query(scope)
        except ApiError:
            # Refused with its 400 further in; until then it counts like any request.
            query = None
        if query is not None and self.long_running(
            request_attributes(scope, self.registry), self.registry
        ):
            return None
        return self.read_only if method in READ_ONLY_METHODS else self.mutating

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pool = self.pool_for(scope)
        if pool is None:
            await self.app(scope, receive, send)
            return
        if not pool.try_acquire():
            # The event loop is single-threaded: the check and the increment
            # cannot interleave with another request's, so no lock is needed.
            response = http.status_response(
                errors.too_many_requests(MESSAGE, retry_after_seconds=1)
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            pool.release()
