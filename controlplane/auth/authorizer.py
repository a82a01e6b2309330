"""Decisions, the authorizer chain, and the 403 a refusal becomes.

An authorizer allows, denies, or has no opinion. The chain asks each in
turn: the first that allows or denies decides, and when none has an opinion
the request is refused with every reason given, as Kubernetes' union
authorizer does. corral's chain is node authorizer, then RBAC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from controlplane.auth.attributes import RequestAttributes, with_verb
from corral.api import errors
from corral.api.errors import ApiError


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""
    # True when the authorizer neither allows nor denies, and the next in the
    # chain should be asked; a refusal at the end of the chain is final.
    no_opinion: bool = False


def allow(reason: str = "") -> Decision:
    return Decision(True, reason)


def deny(reason: str = "") -> Decision:
    return Decision(False, reason)


def no_opinion(reason: str = "") -> Decision:
    return Decision(False, reason, no_opinion=True)


class Authorizer(Protocol):
    def authorize(self, attrs: RequestAttributes) -> Decision: ...


class Chain:
    """Ask each authorizer in order; the first allow or deny wins."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)

    def authorize(self, attrs: RequestAttributes) -> Decision:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            decision = authorizer.authorize(attrs)
            if not decision.no_opinion:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return deny(", ".join(reasons))


# Streams that run a process or attach to one: Kubernetes (1.31 on) also
# requires ``create`` for their WebSocket GET, so that a role granting only
# ``get pods/*`` does not quietly grant a shell in every pod.
_UPGRADE_SUBRESOURCES = frozenset(("exec", "attach", "portforward"))


def authorize_request(
    authorizer: Authorizer, attrs: RequestAttributes, *, websocket: bool = False
) -> Decision:
    """Authorize one request, adding the ``create`` check a WebSocket exec needs."""
    return _authorize_upgrade(authorizer, attrs, websocket)[0]


def _authorize_upgrade(
    authorizer: Authorizer, attrs: RequestAttributes, websocket: bool
) -> tuple[Decision, RequestAttributes]:
    """The decision, and the attributes it was made on (``create``'s for an upgrade)."""
    decision = authorizer.authorize(attrs)
    if (
        decision.allowed
        and websocket
        and attrs.resource == "pods"
        and attrs.subresource in _UPGRADE_SUBRESOURCES
        and attrs.verb == "get"
    ):
        creating = with_verb(attrs, "create")
        return authorizer.authorize(creating), creating
    return decision, attrs


def require(
    authorizer: Authorizer, attrs: RequestAttributes, *, websocket: bool = False
) -> Decision:
    """Authorize, or raise the 403 that refuses the request (naming the verb refused)."""
    decision, decided = _authorize_upgrade(authorizer, attrs, websocket)
    if not decision.allowed:
        raise forbidden_error(decided, decision.reason)
    return decision


def forbidden_message(attrs: RequestAttributes) -> str:
    """``User "ci" cannot delete resource "pods" in API group "" in the namespace "prod"``."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = attrs.resource
    if attrs.subresource:
        resource = f"{resource}/{attrs.subresource}"
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'User "{user}" cannot {attrs.verb} resource "{resource}" '
        f'in API group "{attrs.api_group}" {where}'
    )


def forbidden_error(attrs: RequestAttributes, reason: str = "") -> ApiError:
    """The 403 Status for a refused request, worded as Kubernetes words it.

    ``pods "web" is forbidden: User "ci" cannot delete resource "pods" in API
    group "" in the namespace "prod"``; the reason, when there is one, follows
    after a colon.
    """
    message = forbidden_message(attrs)
    if reason:
        message = f"{message}: {reason}"
    if not attrs.resource_request:
        return errors.forbidden(f"forbidden: {message}")
    subject = attrs.qualified_resource
    if attrs.name:
        subject = f'{subject} "{attrs.name}"'
    return errors.forbidden(
        f"{subject} is forbidden: {message}", attrs.resource, attrs.name, attrs.api_group
    )
