"""The cluster log store in ``corral up``: systemd-journal-remote beside the control plane.

It listens on the loopback (the agents of a local cluster run on this
machine), over HTTPS with a certificate of the cluster CA, which the agents
verify. Debian's journal-remote cannot check client certificates, so the
loopback is what keeps writers to this machine. It writes journal files into ``D/logstore``, beside
``D/kubeconfig``, where ``corral logs`` looks for them. Without journal-remote
installed the cluster runs as before, with a note: logs then stay on the nodes.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from corral import pki
from corralctl import logstore, processes
from corralctl.clusterpki import ClusterPki
from corralctl.supervisor import Supervisor


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def store_tls(cluster_pki: ClusterPki, hosts: Sequence[str]) -> logstore.StoreTLS:
    """The store's serving pair, issued by the cluster CA once (kept while it lasts)."""
    cert, key = cluster_pki.root / "log-store.crt", cluster_pki.root / "log-store.key"
    ca = cluster_pki.ca()
    if not (cert.exists() and key.exists() and pki.issued_by(cert.read_bytes(), ca.cert_pem)):
        wanted = sorted({"localhost", "127.0.0.1", *hosts})
        pair = pki.issue(ca, "corral-log-store", server=True, client=False, hosts=wanted)
        pki.write_pair(pair, cert, key)
    return logstore.StoreTLS(cert=cert, key=key)


def start(
    directory: Path,
    host: str,
    port: int,
    log_path: Path,
    tls: logstore.StoreTLS | None = None,
) -> processes.ManagedProcess:
    """journal-remote taking uploads at host:port, once it listens; raises ProcessError."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = logstore.journal_remote_argv(directory, f"{host}:{port}", tls)
    process = processes.ManagedProcess("log-store", argv, log_path)
    process.start()
    try:
        processes.wait_until(
            lambda: listening(host, port), 10, "the log store", alive=process.running
        )
    except processes.ProcessError:
        process.stop(5)
        raise
    return process


def agent_flags(
    supervisor: Supervisor, data_dir: Path, logs: Path, cluster_pki: ClusterPki
) -> list[str]:
    """Start the store under ``supervisor``; the agents' flags to ship to it ([] without it)."""
    try:
        logstore.journal_remote_binary()
    except logstore.LogStoreError as error:
        print(f"log store     none: {error}")
        return []
    host, port = "127.0.0.1", processes.free_port()
    tls = store_tls(cluster_pki, [host])
    process = start(data_dir / "logstore", host, port, logs / "log-store.log", tls)
    supervisor.add(process)
    url = f"https://{host}:{port}"
    print(f"log store     {url} into {data_dir / 'logstore'}")
    return ["--log-store", url]
