"""One vocabulary for Kubernetes objects in their wire form: the JSON dicts the API serves.

Controllers, the scheduler, the agent and the CLI pass objects around as the
API returns them rather than as the pydantic models of ``corral.api``, which
exist to validate what comes in. These accessors give every common field one
reading: a section that is absent, null or not an object at all reads as
empty, never as a ``KeyError`` or ``AttributeError``; admission and RBAC
read what clients sent, so that matters beyond tidiness.

A section that exists is returned as the object's own dict, so reads see the
object as it is. A missing one comes back as a fresh empty dict that belongs
to nobody, so code that writes says ``obj.setdefault("metadata", {})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
"""A Kubernetes object (or any part of one) as JSON: what the API sends and stores."""

ObjView = Mapping[str, Any]
"""An object that the code at hand only reads (admission and authorization look, never touch)."""


def meta(obj: Mapping[str, Any]) -> Obj:
    """``metadata``."""
    found = obj.get("metadata")
    return found if isinstance(found, dict) else {}


def spec(obj: Mapping[str, Any]) -> Obj:
    """``spec``."""
    found = obj.get("spec")
    return found if isinstance(found, dict) else {}


def status(obj: Mapping[str, Any]) -> Obj:
    """``status``."""
    found = obj.get("status")
    return found if isinstance(found, dict) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    """``metadata.namespace``; empty for cluster-scoped objects (no default is assumed)."""
    return str(meta(obj).get("namespace") or "")


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("uid") or "")


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = meta(obj).get("labels") or {}
    return found


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = meta(obj).get("annotations") or {}
    return found


def owner_references(obj: Mapping[str, Any]) -> list[Obj]:
    found: list[Obj] = meta(obj).get("ownerReferences") or []
    return found


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp field as an aware datetime; None when absent or unreadable.

    A timestamp without a zone is read as UTC, as Kubernetes writes every
    timestamp in UTC; comparing it with an aware ``now`` then works.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
