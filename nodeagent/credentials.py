"""The node's certificate: obtained once with a bootstrap token, kept in ``--cert-dir``.

On start the agent reuses a certificate that the cluster CA issued for this
node and that is not about to expire. Otherwise it makes a new key and asks
the control plane to sign a request for ``system:node:<name>``: with its
current certificate when it has one (renewal), else with the bootstrap
token. The key never leaves the node.

The same certificate authenticates the agent on the gRPC channel and on
REST (``CERT_DIR/kubeconfig``), and serves its logs and exec port, where it
in turn accepts only the API server's client certificate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from corral import pki
from corral.api.errors import ApiError
from corral.client import kubeconfig
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client, ConnectionFailed
from corral.clock import Clock
from corral.pki import KeyPair, Subject

log = logging.getLogger(__name__)

_RENEW_BEFORE_SECONDS = 30 * 24 * 3600
# Who may call the agent's logs and exec service: the API server's proxy
# (and any other cluster administrator).
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

    def server(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.pair.key_pem, self.pair.cert_pem)],
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
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"


def node_subject(node_name: str) -> Subject:
    return Subject(f"{pki.NODE_USER_PREFIX}{node_name}", (pki.NODES_GROUP,))


def _usable(pair: KeyPair, ca_pem: bytes, node_name: str) -> bool:
    return (
        pki.issued_by(pair.cert_pem, ca_pem)
        and pki.subject_of(pair.cert_pem) == node_subject(node_name)
        and not pki.expires_within(pair.cert_pem, _RENEW_BEFORE_SECONDS)
    )


def _current(cert_dir: CertDir, ca_pem: bytes, node_name: str) -> KeyPair | None:
    if not (cert_dir.cert.exists() and cert_dir.key.exists()):
        return None
    pair = pki.read_pair(cert_dir.cert, cert_dir.key)
    if pki.issued_by(pair.cert_pem, ca_pem) and pki.subject_of(pair.cert_pem) == node_subject(
        node_name
    ):
        return pair
    return None


async def obtain(
    *,
    node_name: str,
    server_url: str,
    ca_pem: bytes,
    cert_dir: CertDir,
    bootstrap_token: str | None,
    hosts: Sequence[str],
    clock: Clock,
    timeout: float = 300.0,
) -> NodeCredentials:
    """The node's credentials, asking the control plane to sign only when needed."""
    current = _current(cert_dir, ca_pem, node_name)
    if current is not None and _usable(current, ca_pem, node_name):
        _write_kubeconfig(cert_dir, server_url, ca_pem, current, node_name)
        return NodeCredentials(ca_pem, current)
    if current is None and not bootstrap_token:
        raise CredentialsError(
            f"no certificate for node {node_name!r} in {cert_dir.root}; "
            "pass --bootstrap-token (see `corral token create`)"
        )
    csr, key = pki.new_request(node_subject(node_name).user, [pki.NODES_GROUP], hosts)
    if current is not None:
        config = NodeCredentials(ca_pem, current).client_config(server_url)
    else:
        config = ClientConfig(server=server_url, ca_data=ca_pem, token=bootstrap_token)
    async with Client(config, user_agent=f"corral-agent/{node_name}") as client:
        reply = await _request(client, {"nodeName": node_name, "csr": csr.decode()}, clock, timeout)
    pair = KeyPair(str(reply["certificate"]).encode(), key)
    pki.write_pair(pair, cert_dir.cert, cert_dir.key)
    _write_kubeconfig(cert_dir, server_url, ca_pem, pair, node_name)
    log.info("node certificate for %s issued; kept in %s", node_name, cert_dir.root)
    return NodeCredentials(ca_pem, pair)


async def _request(
    client: Client, body: dict[str, str], clock: Clock, timeout: float
) -> dict[str, object]:
    """Ask until the control plane answers; a refusal is final, an outage is waited out."""
    deadline = clock.monotonic() + timeout
    delay = 0.5
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
        if clock.monotonic() + delay > deadline:
            raise CredentialsError(
                f"the control plane did not answer within {timeout:.0f}s: {problem}"
            )
        log.warning("certificate request failed (%s); retrying", problem)
        await clock.sleep(delay)
        delay = min(delay * 2, 5.0)


def _write_kubeconfig(
    cert_dir: CertDir, server_url: str, ca_pem: bytes, pair: KeyPair, node_name: str
) -> None:
    kubeconfig.write(
        cert_dir.kubeconfig,
        kubeconfig.build(
            f"node-{node_name}",
            server_url,
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
    return _AGENT_CALLERS_GROUP in pki.subject_of(bytes(certs[0])).groups
