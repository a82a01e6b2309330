"""etcd behind client certificates from its own CA, as ``corral init`` sets it up.

A real etcd serves TLS with ``--client-cert-auth`` and the files ``corral
init`` wrote; the API server's etcd client (``controlplane.storage.etcd``)
gets in with its etcd client certificate and nobody else does: not a client
without a certificate, not one speaking plaintext, and not the cluster's
admin, whose certificate the cluster CA signed rather than etcd's.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.storage.etcd import EtcdClient, EtcdError, EtcdTLS
from corralctl.clusterpki import ClusterPki
from corralctl.etcdpki import EtcdPki
from corralctl.processes import ManagedProcess, find_etcd, free_port, wait_until

pytestmark = pytest.mark.integration

SECRET_FILES = {"ca.key", "tokens.csv", "encryption.yaml", "admin.key", "apiserver.key"}


def corral_init(data: Path, bundles: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "corralctl.main", "init", "--data-dir", str(data),
         "--san", "localhost", "--etcd-san", "localhost", "--bundles-dir", str(bundles)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("init")
    corral_init(root / "data", root / "bundles")
    return root / "data", root / "bundles"


def version_over_tls(port: int, ca: Path, pair: tuple[Path, Path] | None) -> bytes:
    """etcd's ``/version`` over HTTPS, showing ``pair`` (cert, key) if given."""
    context = ssl.create_default_context(cafile=str(ca))
    if pair is not None:
        context.load_cert_chain(str(pair[0]), str(pair[1]))
    request = b"GET /version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return answer


@pytest.fixture(scope="module")
def tls_etcd(initialised: tuple[Path, Path]) -> Iterator[int]:
    data, bundles = initialised
    etcd_files = bundles / "etcd"
    port, peer = free_port(), free_port()
    process = ManagedProcess(
        "etcd",
        [find_etcd(), "--name", "corral", "--data-dir", str(data / "etcd"),
         "--listen-client-urls", f"https://127.0.0.1:{port}",
         "--advertise-client-urls", f"https://localhost:{port}",
         "--client-cert-auth", "--trusted-ca-file", str(etcd_files / "ca.crt"),
         "--cert-file", str(etcd_files / "server.crt"),
         "--key-file", str(etcd_files / "server.key"),
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"corral=http://127.0.0.1:{peer}",
         "--log-level", "warn", "--logger", "zap"],
        data / "etcd.log",
    )  # fmt: skip
    etcd_pki = EtcdPki(data / "pki")
    client_pair = (etcd_pki.apiserver_client_cert, etcd_pki.apiserver_client_key)

    def answers() -> bool:
        try:
            return b"etcdserver" in version_over_tls(port, etcd_pki.ca_cert, client_pair)
        except OSError:
            return False

    process.start()
    try:
        wait_until(answers, 60, "etcd over TLS", alive=process.running)
        yield port
    finally:
        process.stop()


def test_init_writes_each_bundle_with_only_what_its_process_reads(
    initialised: tuple[Path, Path],
) -> None:
    data, bundles = initialised
    listing = {d.name: sorted(f.name for f in d.iterdir()) for d in bundles.iterdir()}
    assert listing == {
        "node": ["ca.crt"],
        "etcd": ["ca.crt", "server.crt", "server.key"],
        "scheduler": ["kubeconfig"],
        "controller-manager": ["kubeconfig"],
    }
    cluster, etcd = ClusterPki(data / "pki"), EtcdPki(data / "pki")
    assert (bundles / "node" / "ca.crt").read_bytes() == cluster.ca_cert.read_bytes()
    assert (bundles / "etcd" / "ca.crt").read_bytes() == etcd.ca_cert.read_bytes()
    # Two CAs: what one signs, the other does not vouch for.
    assert etcd.ca_cert.read_bytes() != cluster.ca_cert.read_bytes()
    assert not any(f.name in SECRET_FILES for f in bundles.rglob("*"))


def test_init_run_again_keeps_the_etcd_ca(initialised: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = initialised
    etcd = EtcdPki(data / "pki")
    before = etcd.ca_cert.read_bytes(), etcd.server_cert.read_bytes()
    corral_init(data, tmp_path / "bundles")
    assert (etcd.ca_cert.read_bytes(), etcd.server_cert.read_bytes()) == before


async def test_the_api_servers_etcd_client_gets_in_with_its_certificate(
    initialised: tuple[Path, Path], tls_etcd: int
) -> None:
    data, _ = initialised
    etcd = EtcdPki(data / "pki")
    tls = EtcdTLS(
        str(etcd.ca_cert), str(etcd.apiserver_client_cert), str(etcd.apiserver_client_key)
    )
    client = EtcdClient([f"https://localhost:{tls_etcd}"], tls=tls)
    try:
        await client.put(b"/registry/tls-check", b"through TLS")
        found, _ = await client.get(b"/registry/tls-check")
        assert found is not None and found.value == b"through TLS"
    finally:
        await client.close()


@pytest.mark.parametrize("who", ["no certificate", "the cluster admin's certificate", "plaintext"])
async def test_etcd_refuses_every_other_client(
    initialised: tuple[Path, Path], tls_etcd: int, who: str
) -> None:
    data, _ = initialised
    etcd, cluster = EtcdPki(data / "pki"), ClusterPki(data / "pki")
    tls: EtcdTLS | None = {
        "no certificate": EtcdTLS(str(etcd.ca_cert)),
        # Signed by the cluster CA, which etcd does not trust.
        "the cluster admin's certificate": EtcdTLS(
            str(etcd.ca_cert), str(cluster.admin_cert), str(cluster.admin_key)
        ),
        "plaintext": None,
    }[who]
    scheme = "http" if tls is None else "https"
    client = EtcdClient([f"{scheme}://localhost:{tls_etcd}"], tls=tls, timeout=3)
    try:
        with pytest.raises(EtcdError):
            await client.get(b"/registry/tls-check")
    finally:
        await client.close()


def test_etcd_refuses_a_tls_handshake_without_a_client_certificate(
    initialised: tuple[Path, Path], tls_etcd: int
) -> None:
    data, _ = initialised
    etcd = EtcdPki(data / "pki")
    pair = (etcd.apiserver_client_cert, etcd.apiserver_client_key)
    assert b"etcdserver" in version_over_tls(tls_etcd, etcd.ca_cert, pair)
    with pytest.raises(ssl.SSLError):
        version_over_tls(tls_etcd, etcd.ca_cert, None)
