"""The files a cluster's master keeps under ``DATA_DIR/pki``.

``corral up`` and ``corral init`` create what is missing and keep what is
there, so restarting a cluster keeps its CA (and every issued certificate
stays valid) while a serving certificate that no longer covers the
master's addresses is reissued.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from corral import pki
from corral.client import kubeconfig
from corral.pki import KeyPair

_RENEW_SECONDS = 30 * 24 * 3600
# The control plane's own clients, each with the identity its default
# ClusterRoleBinding names (controlplane.auth.defaults).
COMPONENT_USERS = {
    "scheduler": "system:kube-scheduler",
    "controller-manager": "system:kube-controller-manager",
}


@dataclass(frozen=True)
class ClusterPki:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def node_serving_ca_cert(self) -> Path:
        """Signs node agents' serving certificates; trusted only by the API server."""
        return self.root / "node-serving-ca.crt"

    @property
    def node_serving_ca_key(self) -> Path:
        return self.root / "node-serving-ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def apiserver_client_cert(self) -> Path:
        """What the API server shows node agents when it proxies logs and exec."""
        return self.root / "apiserver-agent-client.crt"

    @property
    def apiserver_client_key(self) -> Path:
        return self.root / "apiserver-agent-client.key"

    @property
    def admin_cert(self) -> Path:
        return self.root / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.root / "admin.key"

    @property
    def tokens(self) -> Path:
        """The static token file: ``token,user,uid,"group1,group2"`` per line."""
        return self.root / "tokens.csv"

    @property
    def encryption_key_file(self) -> Path:
        return self.root / "encryption.yaml"

    @property
    def service_account_key(self) -> Path:
        """Signs bound service account tokens (--service-account-signing-key-file)."""
        return self.root / "sa.key"

    @property
    def service_account_public_key(self) -> Path:
        """Verifies them (--service-account-key-file)."""
        return self.root / "sa.pub"

    def component_cert(self, component: str) -> Path:
        return self.root / f"{component}.crt"

    def component_key(self, component: str) -> Path:
        return self.root / f"{component}.key"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"

    def ca(self) -> KeyPair:
        return pki.read_pair(self.ca_cert, self.ca_key)

    def node_serving_ca(self) -> KeyPair:
        return pki.read_pair(self.node_serving_ca_cert, self.node_serving_ca_key)

    def admin(self) -> KeyPair:
        return pki.read_pair(self.admin_cert, self.admin_key)

    def admin_token(self) -> str:
        for row in csv.reader(io.StringIO(self.tokens.read_text())):
            if len(row) >= 2 and row[1] == pki.ADMIN_USER:
                return row[0]
        raise pki.CertificateError(f"{self.tokens} has no token for {pki.ADMIN_USER}")

    def ensure(self, hosts: Sequence[str]) -> None:
        """Create the CA and the master's certificates and tokens, where missing or stale."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        if not (self.ca_cert.exists() and self.ca_key.exists()):
            pki.write_pair(pki.new_ca(), self.ca_cert, self.ca_key)
        # Also made on an existing data dir that predates it: an upgraded
        # cluster keeps its cluster CA and gains the serving CA.
        if not (self.node_serving_ca_cert.exists() and self.node_serving_ca_key.exists()):
            pki.write_pair(
                pki.new_ca("corral-node-serving-ca"),
                self.node_serving_ca_cert,
                self.node_serving_ca_key,
            )
        ca = self.ca()
        wanted_hosts = sorted({"localhost", "127.0.0.1", *hosts})
        if self._stale(self.apiserver_cert, ca) or not _covers(
            self.apiserver_cert.read_bytes(), wanted_hosts
        ):
            pair = pki.issue(ca, "corral-apiserver", server=True, client=False, hosts=wanted_hosts)
            pki.write_pair(pair, self.apiserver_cert, self.apiserver_key)
        if self._stale(self.apiserver_client_cert, ca):
            pair = pki.issue(ca, pki.APISERVER_CLIENT_USER, [pki.MASTERS_GROUP])
            pki.write_pair(pair, self.apiserver_client_cert, self.apiserver_client_key)
        if self._stale(self.admin_cert, ca):
            pair = pki.issue(ca, pki.ADMIN_USER, [pki.MASTERS_GROUP])
            pki.write_pair(pair, self.admin_cert, self.admin_key)
        for component, user in COMPONENT_USERS.items():
            if self._stale(self.component_cert(component), ca):
                pair = pki.issue(ca, user)
                pki.write_pair(pair, self.component_cert(component), self.component_key(component))
        if not self.tokens.exists():
            line = f'{pki.new_token()},{pki.ADMIN_USER},{pki.ADMIN_USER},"{pki.MASTERS_GROUP}"\n'
            pki.write_private(self.tokens, line.encode())
        self._ensure_service_account_key()

    def _ensure_service_account_key(self) -> None:
        """An ECDSA P-256 key for ES256 tokens, made once: a new one would void every token."""
        if not self.service_account_key.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            pki.write_private(self.service_account_key, pem)
        if not self.service_account_public_key.exists():
            private = serialization.load_pem_private_key(
                self.service_account_key.read_bytes(), password=None
            )
            public = private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            pki.write_private(self.service_account_public_key, public)

    def write_kubeconfigs(self, server: str, servers: tuple[str, ...] = ()) -> None:
        """A kubeconfig per control plane component, each with its own identity.

        ``servers``: every API server behind ``server``, for failing over past it.
        """
        ca_pem = self.ca_cert.read_bytes()
        for component in COMPONENT_USERS:
            pair = pki.read_pair(self.component_cert(component), self.component_key(component))
            kubeconfig.write(
                self.component_kubeconfig(component),
                kubeconfig.build(
                    f"corral-{component}",
                    server,
                    ca_data=ca_pem,
                    client_cert_data=pair.cert_pem,
                    client_key_data=pair.key_pem,
                    servers=servers,
                ),
            )

    def admin_config(
        self, server: str, namespace: str = "default", servers: tuple[str, ...] = ()
    ) -> kubeconfig.ClientConfig:
        """The administrator as a client: the cluster CA and the system:masters certificate."""
        admin = self.admin()
        return kubeconfig.ClientConfig(
            server=server,
            fallback_servers=servers,
            namespace=namespace,
            ca_data=self.ca_cert.read_bytes(),
            client_cert_data=admin.cert_pem,
            client_key_data=admin.key_pem,
        )

    def admin_kubeconfig(
        self, server: str, name: str = "corral", servers: tuple[str, ...] = ()
    ) -> dict[str, object]:
        admin = self.admin()
        return kubeconfig.build(
            name,
            server,
            servers=servers,
            ca_data=self.ca_cert.read_bytes(),
            client_cert_data=admin.cert_pem,
            client_key_data=admin.key_pem,
        )

    def _stale(self, cert: Path, ca: KeyPair) -> bool:
        if not cert.exists():
            return True
        data = cert.read_bytes()
        return not pki.issued_by(data, ca.cert_pem) or pki.expires_within(data, _RENEW_SECONDS)


def _covers(cert_pem: bytes, hosts: Sequence[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= have
