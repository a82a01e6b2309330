"""What a request asks to do, in the terms authorizers speak: user, verb, resource.

``attributes_for`` is Kubernetes' ``RequestInfoFactory`` for corral's paths:

- ``/api/v1/...`` and ``/apis/<group>/<version>/...`` with a resource after
  the version are *resource requests*; the HTTP method becomes a verb (GET
  on one object ``get``, on a collection ``list``, or ``watch`` with
  ``watch=true``; POST ``create``; PUT ``update``; PATCH ``patch``; DELETE
  ``delete`` or, on a collection, ``deletecollection``).
- Everything else (``/healthz``, ``/version``, ``/api``, ``/apis/apps``,
  ``/openapi/v3``, ``/docs``, ``/ui/...``) is a *non-resource request* whose
  verb is the lower-cased method.

The user is anything with a ``name`` and ``groups`` (``User``), so the
authenticator's own user type can be passed as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from controlplane.query import Query
from corral.api.fields import SelectorError, parse_field_selector
from corral.api.resources import Registry

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"

_CORE = "/api/v1/"
_GROUPS = "/apis/"
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Read-only verbs: everything else changes something (the audit log and the
# in-flight limiter both need this split).
READ_VERBS = frozenset(("get", "list", "watch", "head", "options"))


class User(Protocol):
    """Who is asking: a name and the groups they belong to."""

    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    user: User
    verb: str
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True
    # The selectors of a list or watch: the node authorizer lets a node list
    # pods only with ``spec.nodeName=<itself>`` (Kubernetes 1.31 passes them
    # to authorizers the same way).
    field_selector: str = field(default="", compare=False)
    label_selector: str = field(default="", compare=False)

    @property
    def qualified_resource(self) -> str:
        """``pods`` or ``deployments.apps``: how a Status names the resource."""
        return f"{self.resource}.{self.api_group}" if self.api_group else self.resource

    @property
    def read_only(self) -> bool:
        return self.verb in READ_VERBS


def exact_field(selector: str, field_name: str) -> str | None:
    """The value a field selector requires of ``field_name`` with ``=``, if any.

    A selector that does not parse requires nothing here: the request is then
    refused with a 400 by the handler, whatever the authorizer said.
    """
    if not selector:
        return None
    try:
        return parse_field_selector(selector).exact(field_name)
    except SelectorError:
        return None


def _name_from_field_selector(selector: str) -> str:
    """``metadata.name=x`` narrows a list or watch to one object, as in Kubernetes.

    That lets a rule with ``resourceNames`` allow watching one named object.
    """
    name = exact_field(selector, "metadata.name") or ""
    if name in (".", "..") or "/" in name or "%" in name:
        return ""
    return name


def _split(path: str) -> tuple[str, str, list[str]] | None:
    """(group, version, parts after the version), or None for a non-resource path."""
    if path.startswith(_CORE):
        parts = path[len(_CORE) :].split("/")
        group, version = "", "v1"
    elif path.startswith(_GROUPS):
        segments = path[len(_GROUPS) :].split("/")
        if len(segments) < 3:
            return None
        group, version, parts = segments[0], segments[1], segments[2:]
    else:
        return None
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if not parts or not parts[0]:
        return None
    return group, version, parts


def attributes_for(
    method: str,
    path: str,
    query: Query,
    user: User,
    registry: Registry,
) -> RequestAttributes:
    """The attributes of one HTTP request (a WebSocket upgrade is a GET).

    ``query`` is the request's one parsed query (``query.request_query``), the object
    the handler reads too: what is authorized is what is served.
    """
    method = method.upper()
    split = _split(path)
    if split is None:
        return RequestAttributes(user, method.lower(), path=path, resource_request=False)
    group, version, parts = split
    namespace = ""
    if parts[0] == "namespaces" and len(parts) >= 2:
        namespace = parts[1]
        # /namespaces/ns/<resource>/... names a resource inside the namespace;
        # /namespaces/ns/status and /finalize are subresources of the
        # namespace itself. The registry decides, exactly as the router does.
        if len(parts) >= 3:
            inner = registry.by_plural(group, version, parts[2])
            if inner is not None and inner.namespaced:
                parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 else ""
    field_selector = query.text("fieldSelector")
    label_selector = query.text("labelSelector")
    if method in ("GET", "HEAD"):
        verb = "get"
        if not name:
            # The handler reads the same ``watch`` from the same Query.
            verb = "watch" if query.flag("watch") else "list"
            name = _name_from_field_selector(field_selector)
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
        if verb == "delete" and not name:
            verb = "deletecollection"
    return RequestAttributes(
        user,
        verb,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        path=path,
        resource_request=True,
        field_selector=field_selector,
        label_selector=label_selector,
    )


def with_verb(attrs: RequestAttributes, verb: str) -> RequestAttributes:
    """The same request, asking for another verb (a second check on the same target)."""
    return dataclasses.replace(attrs, verb=verb)


def with_user(attrs: RequestAttributes, user: User) -> RequestAttributes:
    """The same request, made by ``user`` (attributes worked out before authentication)."""
    return dataclasses.replace(attrs, user=user)
