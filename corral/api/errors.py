"""API errors as Kubernetes ``Status`` objects.

Every failure the API server reports is an ``ApiError``; it renders to the
``Status`` body that kubectl and client-go parse (``Error from server
(NotFound): pods "x" not found``), so the same class serves the server, the
REST client and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Cause:
    """One reason inside ``Status.details.causes``: what is wrong, and where."""

    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass(slots=True)
class ApiError(Exception):
    code: int
    reason: str
    message: str
    kind: str = ""
    name: str = ""
    group: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after_seconds: int | None = None

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict[str, Any]:
        # Keys in kube-apiserver's order (metav1.Status's fields): clients
        # that compare error bodies as text depend on it.
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after_seconds is not None:
            details["retryAfterSeconds"] = self.retry_after_seconds
        if details:
            status["details"] = details
        status["code"] = self.code
        return status

    @classmethod
    def from_status(cls, status: dict[str, Any], http_code: int) -> ApiError:
        """Rebuild an error from a Status body a server sent."""
        details = status.get("details") or {}
        causes = [
            Cause(c.get("reason", ""), c.get("message", ""), c.get("field", ""))
            for c in details.get("causes") or []
            if isinstance(c, dict)
        ]
        return cls(
            code=int(status.get("code") or http_code),
            reason=str(status.get("reason") or ""),
            message=str(status.get("message") or f"the server responded with HTTP {http_code}"),
            kind=str(details.get("kind") or ""),
            name=str(details.get("name") or ""),
            group=str(details.get("group") or ""),
            causes=causes,
            retry_after_seconds=details.get("retryAfterSeconds"),
        )


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        kind=resource,
        name=name,
        group=group,
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        kind=resource,
        name=name,
        group=group,
    )


def conflict(resource: str, name: str, detail: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
        kind=resource,
        name=name,
        group=group,
    )


STALE_OBJECT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> ApiError:
    summary = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
    subject = f'{kind} "{name}"' if name else kind
    return ApiError(
        422,
        "Invalid",
        f"{subject} is invalid: {summary}",
        kind=kind,
        name=name,
        group=group,
        causes=causes,
    )


def bad_request(message: str, causes: list[Cause] | None = None) -> ApiError:
    return ApiError(400, "BadRequest", message, causes=causes or [])


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        f'application/json, application/yaml (got "{content_type}")',
    )


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "RequestEntityTooLarge", f"the request body exceeds the limit of {limit} bytes"
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(message: str, resource: str = "", name: str = "", group: str = "") -> ApiError:
    return ApiError(403, "Forbidden", message, kind=resource, name=name, group=group)


def service_unavailable(message: str, retry_after_seconds: int = 1) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message, retry_after_seconds=retry_after_seconds)


def too_many_requests(message: str, retry_after_seconds: int = 1) -> ApiError:
    return ApiError(429, "TooManyRequests", message, retry_after_seconds=retry_after_seconds)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", message)
