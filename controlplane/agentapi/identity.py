"""Who is on the other end of a NodeControl call, and which node it may act for.

An agent proves it is node N with a client certificate from the cluster CA
naming ``system:node:N`` in group ``system:nodes``, checked by TLS itself
(the server asks for a certificate and verifies it against the CA). Every
request names the node it acts for; this module refuses one naming any
other node, so node A can neither read nor change node B's pods, Node or
Lease over gRPC, just as the node authorizer refuses it over REST.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import grpc

from corral import pki
from corral.pki import Subject

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1024)
def _identity(cert_pem: bytes) -> Subject | pki.CertificateError:
    try:
        return pki.identity_of_pem(cert_pem)
    except pki.CertificateError as error:
        return error


def peer_subject(context: Any) -> Subject | pki.CertificateError | None:
    """Who the verified client certificate names; None if the caller sent none.

    A certificate TLS accepted but whose identity is refused (several CNs)
    comes back as the error, so the caller can say why it is unauthenticated.
    """
    certs = context.auth_context().get("x509_pem_cert")
    if not certs:
        return None
    return _identity(bytes(certs[0]))


def node_of(subject: Subject | None) -> str | None:
    if subject is None or pki.NODES_GROUP not in subject.groups:
        return None
    if not subject.user.startswith(pki.NODE_USER_PREFIX):
        return None
    return subject.user[len(pki.NODE_USER_PREFIX) :] or None


class NodeIdentity:
    """Checks each call's certificate against the node the call names.

    ``secure=False`` is the development-only plain HTTP mode, where nothing is
    authenticated anywhere.
    """

    def __init__(self, secure: bool) -> None:
        self.secure = secure

    async def require(self, context: Any, node_name: str) -> None:
        if not self.secure:
            return
        subject = peer_subject(context)
        if isinstance(subject, pki.CertificateError):
            log.warning("agent client certificate from %s refused: %s", context.peer(), subject)
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, f"the client certificate is refused: {subject}"
            )
        if subject is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "a node client certificate is required (join with a bootstrap token first)",
            )
        assert not isinstance(subject, pki.CertificateError)
        node = node_of(subject)
        if node is None or node != node_name:
            assert subject is not None
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f'user "{subject.user}" may not act for node "{node_name}"',
            )
