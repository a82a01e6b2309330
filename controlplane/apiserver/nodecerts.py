"""Signing node certificates: how an agent joins with a bootstrap token, and serves.

``POST /corral/v1/node-certificate`` with ``{"nodeName": N, "csr": PEM}``
answers ``{"certificate": PEM, "ca": PEM}``. Kubernetes does this with
CertificateSigningRequest objects, an approver and a signer; corral folds
the three into one call with the same rules, as k3s does.

Two kinds of certificate, from two CAs:

- ``"usage": "client"`` (the default): the node's client certificate, from
  the cluster CA. The caller is a bootstrap token user whom RBAC lets
  ``create certificatesigningrequests`` (``system:node-bootstrapper``), or
  node N renewing its own. It is client-only and names no hosts.
- ``"usage": "serving"``: what the agent serves its logs and exec port
  with, from the node serving CA, which only the API server trusts. Only
  node N itself may ask (with its client certificate), after it has
  registered, and only for the addresses its Node lists.

The subject is always built here, ``system:node:<N>`` in ``system:nodes``;
a request whose subject says anything else is refused, not trimmed.

It is served over REST rather than the agents' gRPC port because that
port requires a client certificate on every connection, which a joining
node does not have yet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from controlplane.apiserver import http, requestcontext
from controlplane.apiserver.objects import Objects
from controlplane.auth.attributes import RequestAttributes, User
from controlplane.auth.authorizer import Decision
from corral import pki
from corral.api import errors
from corral.api.errors import ApiError, Cause
from corral.api.resources import Registry
from corral.api.validation import is_dns1123_subdomain
from corral.objects import status
from corral.pki import KeyPair, Subject

PATH = pki.NODE_CERTIFICATE_PATH
CLIENT, SERVING = "client", "serving"
Authorize = Callable[[RequestAttributes], Decision]
# A node's registered addresses (status.addresses), or None if it has no Node yet.
NodeAddresses = Callable[[str], Awaitable[Sequence[str] | None]]
_MAX_BODY = 64 * 1024


def registered_addresses(objects: Objects, registry: Registry) -> NodeAddresses:
    """Read a Node's addresses from storage, as they are at signing time."""
    nodes = registry.by_kind("v1", "Node")
    assert nodes is not None

    async def addresses(node_name: str) -> Sequence[str] | None:
        try:
            node = (await objects.get(nodes, None, node_name)).obj
        except ApiError as error:
            if error.code == 404:
                return None
            raise
        listed = status(node).get("addresses") or []
        return [a["address"] for a in listed if isinstance(a, dict) and a.get("address")]

    return addresses


def _host_key(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


class NodeCertificateSigner:
    def __init__(
        self,
        ca: KeyPair,
        authorize: Authorize,
        *,
        serving_ca: KeyPair | None = None,
        node_addresses: NodeAddresses | None = None,
    ) -> None:
        self.ca = ca
        self.authorize = authorize
        self.serving_ca = serving_ca
        self.node_addresses = node_addresses

    async def sign(
        self, user: User, node_name: str, csr_pem: bytes, usage: str = CLIENT
    ) -> tuple[bytes, KeyPair]:
        """The certificate, and the CA that signed it."""
        problems = is_dns1123_subdomain(node_name)
        if problems:
            raise _invalid(node_name, "nodeName", "; ".join(problems))
        subject = Subject(f"{pki.NODE_USER_PREFIX}{node_name}", (pki.NODES_GROUP,))
        if usage == CLIENT:
            if user.name != subject.user:
                self._check_bootstrapper(user)
            try:
                return pki.sign_client_request(self.ca, csr_pem, subject=subject), self.ca
            except pki.CertificateError as error:
                raise _invalid(node_name, "csr", str(error)) from None
        if usage == SERVING:
            return await self._sign_serving(user, node_name, subject, csr_pem)
        raise _invalid(node_name, "usage", f'must be "{CLIENT}" or "{SERVING}", not {usage!r}')

    async def _sign_serving(
        self, user: User, node_name: str, subject: Subject, csr_pem: bytes
    ) -> tuple[bytes, KeyPair]:
        if self.serving_ca is None or self.node_addresses is None:
            raise ApiError(
                404,
                "NotFound",
                "this API server signs no node serving certificates "
                "(no --node-serving-ca-file and --node-serving-ca-key-file)",
            )
        # A bootstrap token proves nothing about the machine; only the node's
        # own client certificate may ask to be served as that node.
        if user.name != subject.user or pki.NODES_GROUP not in user.groups:
            raise errors.forbidden(
                f'User "{user.name}" may not request a serving certificate for node '
                f'"{node_name}": only the node itself may'
            )
        addresses = await self.node_addresses(node_name)
        if addresses is None:
            raise _invalid(
                node_name,
                "nodeName",
                f"node {node_name!r} has not registered; a serving certificate names only "
                "the addresses of a registered Node",
            )
        registered = {_host_key(a) for a in addresses}

        def allowed(host: str) -> str | None:
            if _host_key(host) not in registered:
                return f"not an address of node {node_name!r} ({', '.join(addresses) or 'none'})"
            # The API server checks an agent by the DNS name it dials it as,
            # the node's name: a node may list any Hostname for itself, but
            # must not get a certificate in another node's name.
            if not _is_ip(host) and host.lower() != node_name:
                return f"a DNS name in a node's serving certificate must be its name, {node_name!r}"
            return None

        try:
            certificate = pki.sign_serving_request(
                self.serving_ca, csr_pem, subject=subject, allowed_hosts=allowed
            )
        except pki.CertificateError as error:
            raise _invalid(node_name, "csr", str(error)) from None
        return certificate, self.serving_ca

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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _invalid(node_name: str, field: str, message: str) -> ApiError:
    return errors.invalid(
        "NodeCertificateRequest", node_name, [Cause("FieldValueInvalid", message, field)]
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
    document = await http.decode_document(body, "application/json", _MAX_BODY)
    if not isinstance(document, dict):
        raise errors.bad_request("expected a JSON object with nodeName and csr")
    node_name, csr = document.get("nodeName"), document.get("csr")
    usage = document.get("usage", CLIENT)
    if not isinstance(node_name, str) or not isinstance(csr, str) or not isinstance(usage, str):
        raise errors.invalid(
            "NodeCertificateRequest",
            str(node_name or ""),
            [
                Cause("FieldValueRequired", "a string is required", field)
                for field, value in (("nodeName", node_name), ("csr", csr), ("usage", usage))
                if not isinstance(value, str)
            ],
        )
    certificate, ca = await signer.sign(attrs.user, node_name, csr.encode(), usage)
    return {"certificate": certificate.decode(), "ca": ca.cert_pem.decode()}
