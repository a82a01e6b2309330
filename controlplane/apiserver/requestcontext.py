"""The request being served, for code deep in a write that must know who asked.

Admission (a node may create only its own Node) needs the requester while
``Objects`` knows only objects. Rather than thread a user through every
storage call, the front door sets it here for the task serving the request,
as Kubernetes carries it in the request's context.
"""

from __future__ import annotations

from contextvars import ContextVar

from controlplane.auth.attributes import RequestAttributes

_current: ContextVar[RequestAttributes | None] = ContextVar("corral_request", default=None)


def current() -> RequestAttributes | None:
    """The attributes of the request being served; None inside the server's own work."""
    return _current.get()


def enter(attrs: RequestAttributes) -> None:
    # Each ASGI request runs in its own task with a copied context, so the
    # value never leaks into another request and needs no reset.
    _current.set(attrs)
