"""etcd's own certificate authority, its serving certificate and the API server's client one.

etcd holds every object, Secrets included, and answers anyone it lets
connect, so only the API server may. As kubeadm does, etcd trusts a CA of
its own rather than the cluster CA: a certificate the cluster CA signs (a
node's, the admin's, one the API server signs with ``ca.key`` for a joining
node) then opens nothing on etcd.

The files sit beside the cluster's, kubeadm's layout: ``pki/etcd/`` holds the
CA, etcd's serving pair and its peer pair (members of one cluster check
each other's), ``pki/apiserver-etcd-client.*`` the API server's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from corral import pki
from corral.pki import KeyPair

_RENEW_SECONDS = 30 * 24 * 3600
ETCD_CA_NAME = "corral-etcd-ca"
SERVER_NAME = "corral-etcd"
PEER_NAME = "corral-etcd-peer"
APISERVER_CLIENT_NAME = "corral-apiserver"


@dataclass(frozen=True)
class EtcdPki:
    root: Path
    """The cluster's ``pki`` directory."""

    @property
    def directory(self) -> Path:
        return self.root / "etcd"

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def peer_cert(self) -> Path:
        """For member-to-member traffic: each side presents it and checks the other's."""
        return self.directory / "peer.crt"

    @property
    def peer_key(self) -> Path:
        return self.directory / "peer.key"

    @property
    def apiserver_client_cert(self) -> Path:
        return self.root / "apiserver-etcd-client.crt"

    @property
    def apiserver_client_key(self) -> Path:
        return self.root / "apiserver-etcd-client.key"

    def ca(self) -> KeyPair:
        return pki.read_pair(self.ca_cert, self.ca_key)

    def ensure(self, hosts: Sequence[str]) -> None:
        """Create etcd's CA and both certificates, where missing, stale or short of ``hosts``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        if not (self.ca_cert.exists() and self.ca_key.exists()):
            pki.write_pair(pki.new_ca(ETCD_CA_NAME), self.ca_cert, self.ca_key)
        ca = self.ca()
        wanted_hosts = sorted({"localhost", "127.0.0.1", *hosts})
        if _stale(self.server_cert, ca) or not _covers(self.server_cert, wanted_hosts):
            # clientAuth too: etcd's HTTP gateway dials etcd's own gRPC port
            # with this certificate, and etcd checks it like any client's.
            pair = pki.issue(ca, SERVER_NAME, server=True, client=True, hosts=wanted_hosts)
            pki.write_pair(pair, self.server_cert, self.server_key)
        if _stale(self.peer_cert, ca) or not _covers(self.peer_cert, wanted_hosts):
            pair = pki.issue(ca, PEER_NAME, server=True, client=True, hosts=wanted_hosts)
            pki.write_pair(pair, self.peer_cert, self.peer_key)
        if _stale(self.apiserver_client_cert, ca):
            pair = pki.issue(ca, APISERVER_CLIENT_NAME)
            pki.write_pair(pair, self.apiserver_client_cert, self.apiserver_client_key)


def _stale(cert: Path, ca: KeyPair) -> bool:
    if not cert.exists():
        return True
    data = cert.read_bytes()
    return not pki.issued_by(data, ca.cert_pem) or pki.expires_within(data, _RENEW_SECONDS)


def _covers(cert: Path, hosts: Sequence[str]) -> bool:
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    try:
        san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= have
