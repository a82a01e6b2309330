"""The request's attributes, worked out once per request and kept in its ASGI scope.

The request metrics (labels), the in-flight limiter (is it long-running?)
and the gate (authorization, audit) all need what ``attributes_for`` reads
from the path and query. Each used to work it out again, about 6 µs a time;
now the first asks and the rest reuse it. The kept attributes carry no user:
the gate adds the one it authenticated (``with_user``).
"""

from __future__ import annotations

from typing import Final

from starlette.types import Scope

from controlplane.auth.attributes import RequestAttributes, UserInfo, attributes_for
from controlplane.query import EMPTY, request_query
from corral.api.errors import ApiError
from corral.api.resources import Registry

SCOPE_KEY: Final = "corral.attributes"
NOBODY: Final = UserInfo("")


def request_attributes(scope: Scope, registry: Registry) -> RequestAttributes:
    """The attributes of this HTTP or WebSocket request, with no user.

    A query that does not parse reads as an empty one (its 400 comes later,
    from the gate). Kept per registry: a server's parts that hold another
    registry (none in ``corral up``) get attributes of their own.
    """
    path: str = scope["path"]
    kept = scope.get(SCOPE_KEY)
    if kept is not None and kept[0] is registry and kept[1].path == path:
        attrs: RequestAttributes = kept[1]
        return attrs
    method = "GET" if scope["type"] == "websocket" else scope["method"]
    try:
        query = request_query(scope)
    except ApiError:
        query = EMPTY
    attrs = attributes_for(method, path, query, NOBODY, registry)
    scope[SCOPE_KEY] = (registry, attrs)
    return attrs
