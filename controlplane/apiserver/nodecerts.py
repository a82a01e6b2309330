"""Signing node client certificates: how an agent joins with a bootstrap token.

``POST /corral/v1/node-certificate`` with ``{"nodeName": N, "csr": PEM}``
answers ``{"certificate": PEM, "ca": PEM}``. Kubernetes does this with
CertificateSigningRequest objects, an approver and a signer; corral folds
the three into one call with the same rules, as k3s does. The caller is a
bootstrap token user whom RBAC lets ``create certificatesigningrequests``
(the ``system:node-bootstrapper`` role), or node N renewing its own
certificate. The subject is fixed by the server: ``system:node:<N>`` in
``system:nodes``, whatever else the request says.

It is served over REST rather than the agents' gRPC port because that
port requires a client certificate on every connection, which a joining
node does not have yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controlplane.apiserver import http, requestcontext
from controlplane.auth.attributes import RequestAttributes, User
from controlplane.auth.authorizer import Decision
from corral import pki
from corral.api import errors
from corral.api.errors import ApiError, Cause
from corral.api.validation import is_dns1123_subdomain
from corral.pki import KeyPair, Subject

PATH = pki.NODE_CERTIFICATE_PATH
Authorize = Callable[[RequestAttributes], Decision]
_MAX_BODY = 64 * 1024


class NodeCertificateSigner:
    def __init__(self, ca: KeyPair, authorize: Authorize) -> None:
        self.ca = ca
        self.authorize = authorize

    def sign(self, user: User, node_name: str, csr_pem: bytes) -> bytes:
        problems = is_dns1123_subdomain(node_name)
        if problems:
            raise errors.invalid(
                "NodeCertificateRequest",
                node_name,
                [Cause("FieldValueInvalid", "; ".join(problems), "nodeName")],
            )
        if user.name != f"{pki.NODE_USER_PREFIX}{node_name}":
            self._check_bootstrapper(user)
        try:
            return pki.sign_request(
                self.ca,
                csr_pem,
                expected=Subject(f"{pki.NODE_USER_PREFIX}{node_name}", (pki.NODES_GROUP,)),
                # The same certificate serves the agent's logs and exec port.
                server=True,
            )
        except pki.CertificateError as error:
            raise errors.invalid(
                "NodeCertificateRequest", node_name, [Cause("FieldValueInvalid", str(error), "csr")]
            ) from None

    def _check_bootstrapper(self, user: User) -> None:
        decision = self.authorize(
            RequestAttributes(
                user,
                "create",
                api_group="certificates.k8s.io",
                api_version="v1",
                resource="certificatesigningrequests",
            )
        )
        if not decision.allowed:
            raise errors.forbidden(
                f'User "{user.name}" may not request node certificates'
                + (f": {decision.reason}" if decision.reason else "")
            )


async def handle(signer: NodeCertificateSigner | None, body: bytes) -> Any:
    """The route's work: parse, check, sign; every failure a Status."""
    if signer is None:
        raise ApiError(
            404, "NotFound", "this API server signs no node certificates (no --client-ca-key-file)"
        )
    attrs = requestcontext.current()
    if attrs is None:
        raise ApiError(401, "Unauthorized", "Unauthorized")
    if len(body) > _MAX_BODY:
        raise ApiError(413, "RequestEntityTooLarge", f"the request is over {_MAX_BODY} bytes")
    document = http.parse_document(body, "application/json")
    if not isinstance(document, dict):
        raise errors.bad_request("expected a JSON object with nodeName and csr")
    node_name, csr = document.get("nodeName"), document.get("csr")
    if not isinstance(node_name, str) or not isinstance(csr, str):
        raise errors.invalid(
            "NodeCertificateRequest",
            str(node_name or ""),
            [
                Cause("FieldValueRequired", "a string is required", field)
                for field, value in (("nodeName", node_name), ("csr", csr))
                if not isinstance(value, str)
            ],
        )
    certificate = signer.sign(attrs.user, node_name, csr.encode())
    return {"certificate": certificate.decode(), "ca": signer.ca.cert_pem.decode()}
