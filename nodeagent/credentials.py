"""The node's certificates: obtained with a bootstrap token, kept in ``--cert-dir``.

Two certificates, as a kubelet has:

- the client certificate (``node.crt``), from the cluster CA, client-only:
  it authenticates the agent on the gRPC channel and on REST
  (``CERT_DIR/kubeconfig``). On start the agent reuses one the cluster CA
  issued for this node that is not about to expire; otherwise it makes a
  new key and asks the control plane to sign a request for
  ``system:node:<name>``, with its current certificate when it has one
  (renewal), else with the bootstrap token.
- the serving certificate (``node-serving.crt``), from the node serving
  CA, serving-only: what the logs and exec port shows the API server, which
  alone trusts that CA. The node asks for it with its client certificate
  once it has registered, for its registered addresses only; see
  ``Agent._serve_agent_port``.

Keys never leave the node.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.x509.oid import ExtendedKeyUsageOID

from corral import pki
from corral.api.errors import ApiError
from corral.backoff import Backoff
from corral.client import kubeconfig
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client, ConnectionFailed
from corral.clock import Clock
from corral.pki import KeyPair, Subject

log = logging.getLogger(__name__)

_RENEW_BEFORE_SECONDS = 30 * 24 * 3600
# Who may call the agent's own service: the API server's proxy (and any
# other cluster administrator).
_AGENT_CALLERS_GROUP = pki.MASTERS_GROUP


class CredentialsError(Exception):
    """The agent cannot get a certificate; the message says what to pass."""


@dataclass(frozen=True)
class NodeCredentials:
    ca_pem: bytes
    pair: KeyPair

    def channel(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.pair.key_pem,
            certificate_chain=self.pair.cert_pem,
        )

    def client_config(self, server_url: str) -> ClientConfig:
        """The REST API as this node, with its own certificate."""
        return ClientConfig(
            server=server_url,
            ca_data=self.ca_pem,
            client_cert_data=self.pair.cert_pem,
            client_key_data=self.pair.key_pem,
        )

    def server(self, serving: KeyPair) -> grpc.ServerCredentials:
        """The logs and exec port: the serving certificate; callers need one from the cluster CA."""
        return grpc.ssl_server_credentials(
            [(serving.key_pem, serving.cert_pem)],
            root_certificates=self.ca_pem,
            require_client_auth=True,
        )


@dataclass(frozen=True)
class CertDir:
    root: Path

    @property
    def cert(self) -> Path:
        return self.root / "node.crt"

    @property
    def key(self) -> Path:
        return self.root / "node.key"

    @property
    def serving_cert(self) -> Path:
        return self.root / "node-serving.crt"

    @property
    def serving_key(self) -> Path:
        return self.root / "node-serving.key"

    @property
    def serving_ca(self) -> Path:
        """The CA that signed the serving certificate, as the control plane handed it over."""
        return self.root / "node-serving-ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"


def node_subject(node_name: str) -> Subject:
    return Subject(f"{pki.NODE_USER_PREFIX}{node_name}", (pki.NODES_GROUP,))


def _names_node(cert_pem: bytes, node_name: str) -> bool:
    try:
        return pki.identity_of_pem(cert_pem) == node_subject(node_name)
    except pki.CertificateError:
        return False


def _client_only(cert_pem: bytes) -> bool:
    # Certificates issued before client and serving were split name hosts
    # and may serve; they are renewed (with themselves) into client-only ones.
    return not pki.hosts_of(cert_pem) and ExtendedKeyUsageOID.SERVER_AUTH not in (
        pki.extended_usages(cert_pem)
    )


def _usable(pair: KeyPair, ca_pem: bytes, node_name: str) -> bool:
    return (
        pki.issued_by(pair.cert_pem, ca_pem)
        and _names_node(pair.cert_pem, node_name)
        and _client_only(pair.cert_pem)
        and not pki.expires_within(pair.cert_pem, _RENEW_BEFORE_SECONDS)
    )


def _current(cert_dir: CertDir, ca_pem: bytes, node_name: str) -> KeyPair | None:
    if not (cert_dir.cert.exists() and cert_dir.key.exists()):
        return None
    pair = pki.read_pair(cert_dir.cert, cert_dir.key)
    if pki.issued_by(pair.cert_pem, ca_pem) and _names_node(pair.cert_pem, node_name):
        return pair
    return None


async def obtain(
    *,
    node_name: str,
    server_url: str,
    ca_pem: bytes,
    cert_dir: CertDir,
    bootstrap_token: str | None,
    clock: Clock,
    timeout: float = 300.0,
) -> NodeCredentials:
    """The node's client credentials, asking the control plane to sign only when needed."""
    current = _current(cert_dir, ca_pem, node_name)
    if current is not None and _usable(current, ca_pem, node_name):
        _write_kubeconfig(cert_dir, server_url, ca_pem, current, node_name)
        return NodeCredentials(ca_pem, current)
    if current is None and not bootstrap_token:
        raise CredentialsError(
            f"no certificate for node {node_name!r} in {cert_dir.root}; "
            "pass --bootstrap-token (see `corral token create`)"
        )
    csr, key = pki.new_request(node_subject(node_name).user, [pki.NODES_GROUP])
    if current is not None:
        config = NodeCredentials(ca_pem, current).client_config(server_url)
    else:
        config = ClientConfig(server=server_url, ca_data=ca_pem, token=bootstrap_token)
    async with Client(config, user_agent=f"corral-agent/{node_name}") as client:
        reply = await _request(client, {"nodeName": node_name, "csr": csr.decode()}, clock, timeout)
    pair = KeyPair(str(reply["certificate"]).encode(), key)
    pki.write_pair(pair, cert_dir.cert, cert_dir.key)
    if current is None:
        # A new identity (a first join, or a cluster with another CA): a
        # serving certificate kept from before belongs to the old one.
        for stale in (cert_dir.serving_cert, cert_dir.serving_key, cert_dir.serving_ca):
            stale.unlink(missing_ok=True)
    _write_kubeconfig(cert_dir, server_url, ca_pem, pair, node_name)
    log.info("node client certificate for %s issued; kept in %s", node_name, cert_dir.root)
    return NodeCredentials(ca_pem, pair)


def _current_serving(cert_dir: CertDir, node_name: str, hosts: Sequence[str]) -> KeyPair | None:
    paths = (cert_dir.serving_cert, cert_dir.serving_key, cert_dir.serving_ca)
    if not all(path.exists() for path in paths):
        return None
    pair = pki.read_pair(cert_dir.serving_cert, cert_dir.serving_key)
    if (
        pki.issued_by(pair.cert_pem, cert_dir.serving_ca.read_bytes())
        and _names_node(pair.cert_pem, node_name)
        and sorted(pki.hosts_of(pair.cert_pem)) == sorted(hosts)
        and not pki.expires_within(pair.cert_pem, _RENEW_BEFORE_SECONDS)
    ):
        return pair
    return None


async def obtain_serving(
    credentials: NodeCredentials,
    *,
    node_name: str,
    server_url: str,
    cert_dir: CertDir,
    hosts: Sequence[str],
) -> KeyPair:
    """The serving certificate for ``hosts``: the one kept if it still fits, else a new one.

    One attempt: the node must have registered ``hosts`` first, and the
    caller retries while it has not (or the control plane is away).
    """
    current = _current_serving(cert_dir, node_name, hosts)
    if current is not None:
        return current
    csr, key = pki.new_request(node_subject(node_name).user, [pki.NODES_GROUP], hosts)
    body = {"nodeName": node_name, "csr": csr.decode(), "usage": "serving"}
    config = credentials.client_config(server_url)
    try:
        async with Client(config, user_agent=f"corral-agent/{node_name}") as client:
            reply = await client.request("POST", pki.NODE_CERTIFICATE_PATH, body=body, timeout=30)
    except ApiError as error:
        raise CredentialsError(
            f"the control plane refused the serving certificate request: {error.message}"
        ) from None
    except ConnectionFailed as error:
        raise CredentialsError(f"the control plane is unreachable: {error}") from None
    if not isinstance(reply, dict) or "certificate" not in reply or "ca" not in reply:
        raise CredentialsError("the control plane answered without a serving certificate")
    pair = KeyPair(str(reply["certificate"]).encode(), key)
    pki.write_pair(pair, cert_dir.serving_cert, cert_dir.serving_key)
    pki.write_private(cert_dir.serving_ca, str(reply["ca"]).encode())
    log.info("node serving certificate for %s issued for %s", node_name, ", ".join(hosts))
    return pair


async def _request(
    client: Client, body: dict[str, str], clock: Clock, timeout: float
) -> dict[str, object]:
    """Ask until the control plane answers; a refusal is final, an outage is waited out."""
    deadline = clock.monotonic() + timeout
    backoff = Backoff(0.5, 5.0)
    while True:
        try:
            reply = await client.request("POST", pki.NODE_CERTIFICATE_PATH, body=body, timeout=30)
            if not isinstance(reply, dict) or "certificate" not in reply:
                raise CredentialsError("the control plane answered without a certificate")
            return reply
        except ApiError as error:
            if error.code not in (429, 500, 503, 504):
                raise CredentialsError(
                    f"the control plane refused the certificate request: {error.message}"
                ) from None
            problem = error.message
        except ConnectionFailed as error:
            problem = str(error)
        delay = backoff.next()
        if clock.monotonic() + delay > deadline:
            raise CredentialsError(
                f"the control plane did not answer within {timeout:.0f}s: {problem}"
            )
        log.warning("certificate request failed (%s); retrying", problem)
        await clock.sleep(delay)


def _write_kubeconfig(
    cert_dir: CertDir, server_url: str, ca_pem: bytes, pair: KeyPair, node_name: str
) -> None:
    # kubectl reads one URL: the first server, the rest in corral's extension.
    first, *others = kubeconfig.split_servers(server_url) or [server_url]
    kubeconfig.write(
        cert_dir.kubeconfig,
        kubeconfig.build(
            f"node-{node_name}",
            first,
            servers=tuple(others),
            ca_data=ca_pem,
            client_cert_data=pair.cert_pem,
            client_key_data=pair.key_pem,
        ),
    )


def caller_allowed(context: object) -> bool:
    """Whether a call to the agent's own service comes from the API server."""
    certs = context.auth_context().get("x509_pem_cert")  # type: ignore[attr-defined]
    if not certs:
        return False
    try:
        identity = pki.identity_of_pem(bytes(certs[0]))
    except pki.CertificateError as error:
        log.warning("a caller's certificate is refused: %s", error)
        return False
    return _AGENT_CALLERS_GROUP in identity.groups
