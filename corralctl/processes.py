"""Starting and stopping corral's processes: etcd and the control plane.

``corral up`` and the test fixtures both use these, so what the tests run
is what users run: real etcd and real ``python -m controlplane`` processes,
each with its own log file. The CLI starts the control plane by module name
and never imports it, which keeps ``corral/`` below ``controlplane/``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from corralctl.clusterpki import ClusterPki

# Sized for etcd on a busy 2-core machine; a bound on every wait keeps a
# broken start from hanging anything forever.
DEFAULT_READY_TIMEOUT = 60.0


class ProcessError(Exception):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LASTING_FLOOR = 20000


def ephemeral_floor(path: Path = _EPHEMERAL_RANGE) -> int:
    """The lowest port the kernel hands out to outgoing connections (32768 by default)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def lasting_ports(
    count: int, host: str = "127.0.0.1", *, rng: random.Random | None = None
) -> list[int]:
    """``count`` distinct free ports below the ephemeral range, for ports saved and reused.

    free_port() draws from the ephemeral range, where any process's outgoing
    connection may hold the port by the time a restart binds it again; below
    that range only a listener can.
    """
    rng = rng or random.Random()
    ceiling = ephemeral_floor()
    if ceiling - _LASTING_FLOOR < count * 4:
        # An unusual range leaves no room below it: fall back to the kernel's choice.
        return [free_port(host) for _ in range(count)]
    chosen: list[int] = []
    with contextlib.ExitStack() as held:
        # Held bound until all are chosen, so no port is picked twice.
        for _ in range(count * 50):
            if len(chosen) == count:
                break
            port = rng.randrange(_LASTING_FLOOR, ceiling)
            probe = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                probe.bind((host, port))
            except OSError:
                continue
            chosen.append(port)
    if len(chosen) < count:
        raise ProcessError(f"no {count} free ports between {_LASTING_FLOOR} and {ceiling}")
    return chosen


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    alive: Callable[[], bool] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise ProcessError(f"{what}: the process exited")
        time.sleep(interval)
    raise ProcessError(f"{what}: not ready after {timeout:.0f}s")


def http_ok(url: str, timeout: float = 1.0, *, ca_file: Path | None = None) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class ManagedProcess:
    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                # Its own process group: a Ctrl-C in the terminal reaches the
                # supervisor, which then stops children in order.
                start_new_session=True,
            )
        finally:
            log.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def find_etcd() -> str:
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if found is None:
        raise ProcessError(
            "etcd is not installed: install Debian's etcd-server (apt-get install etcd-server) "
            "or pass --etcd URL to use an existing cluster"
        )
    return found


@dataclass(frozen=True)
class EtcdCluster:
    """What makes an etcd a member of a cluster of several: its peers, and their mutual TLS.

    Peers authenticate each other with certificates from etcd's own CA
    (etcdpki), as kubeadm's stacked etcd does, so nothing else on the
    machine can join the cluster or read its replication stream.
    """

    initial_cluster: str
    """``name=https://host:peer_port`` for every member, comma separated."""
    token: str
    ca_file: Path
    cert_file: Path
    key_file: Path

    def peer_tls_args(self) -> list[str]:
        return [
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file", str(self.ca_file),
            "--peer-cert-file", str(self.cert_file),
            "--peer-key-file", str(self.key_file),
        ]  # fmt: skip


class Etcd(ManagedProcess):
    """An etcd on loopback, with its data under ``data_dir``: alone, or one of ``cluster``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        client_port: int | None = None,
        peer_port: int | None = None,
        host: str = "127.0.0.1",
        name: str = "corral",
        log_path: Path | None = None,
        cluster: EtcdCluster | None = None,
    ) -> None:
        self.host = host
        self.client_port = client_port or free_port(host)
        self.peer_port = peer_port or free_port(host)
        self.data_dir = data_dir
        client = f"http://{host}:{self.client_port}"
        peer = f"{'https' if cluster else 'http'}://{host}:{self.peer_port}"
        argv = [
            find_etcd(),
            "--name",
            name,
            "--data-dir",
            str(data_dir),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            cluster.initial_cluster if cluster else f"{name}={peer}",
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            cluster.token if cluster else f"corral-{name}",
            *(cluster.peer_tls_args() if cluster else ()),
            # A member cut off from its peers campaigns in vain; without pre-vote
            # each attempt raises its term, and on rejoining that term deposes the
            # leader: the partition fault test saw writes stop 5 s at every heal.
            # etcd 3.5 turns it on by default.
            *(("--pre-vote",) if cluster else ()),
            # corral compacts history itself, as the Kubernetes API server does.
            "--auto-compaction-retention",
            "0",
            "--quota-backend-bytes",
            str(8 * 1024 * 1024 * 1024),
            "--log-level",
            "warn",
            "--logger",
            "zap",
        ]
        super().__init__("etcd", argv, log_path or data_dir.parent / "etcd.log")
        self.endpoint = client

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        wait_until(lambda: http_ok(f"{self.endpoint}/health"), timeout, "etcd", alive=self.running)


class ApiServer(ManagedProcess):
    """``python -m controlplane apiserver`` in a child process.

    With ``pki`` it serves HTTPS with the cluster's certificates and static
    tokens, as ``corral up`` runs it; without, the development-only plain
    HTTP mode. ``workers``: its ``--workers`` (None: the server's default,
    one per usable core); 1 by default, so that tests and tools that start
    one get one process, whose /metrics count every request.
    """

    def __init__(
        self,
        etcd_endpoints: Sequence[str],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: Path,
        pki: ClusterPki | None = None,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        agent_port: int | None = None,
        workers: int | None = 1,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        # With a chosen port, agents expect the protocol on the next one; with
        # a random one, "port + 1" may belong to someone else: pick another.
        if agent_port is None:
            agent_port = self.port + 1 if port is not None else free_port(host)
        self.agent_port = agent_port
        self.pki = pki
        argv = [
            python, "-m", "controlplane", "apiserver",
            "--etcd", ",".join(etcd_endpoints),
            "--host", host,
            "--port", str(self.port),
            "--agent-port", str(self.agent_port),
            *(security_args(pki) if pki is not None else ["--insecure-dev-http"]),
            *([] if workers is None else ["--workers", str(workers)]),
            *extra_args,
        ]  # fmt: skip
        super().__init__("apiserver", argv, log_path)
        scheme = "https" if pki is not None else "http"
        self.url = f"{scheme}://{host}:{self.port}"

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        ca = self.pki.ca_cert if self.pki is not None else None
        wait_until(
            lambda: http_ok(f"{self.url}/readyz", ca_file=ca),
            timeout,
            "apiserver",
            alive=self.running,
        )


def security_args(pki: ClusterPki) -> list[str]:
    return [
        "--tls-cert-file", str(pki.apiserver_cert),
        "--tls-private-key-file", str(pki.apiserver_key),
        "--client-ca-file", str(pki.ca_cert),
        "--client-ca-key-file", str(pki.ca_key),
        "--token-auth-file", str(pki.tokens),
        "--service-account-signing-key-file", str(pki.service_account_key),
        "--service-account-key-file", str(pki.service_account_public_key),
        "--agent-client-certificate", str(pki.apiserver_client_cert),
        "--agent-client-key", str(pki.apiserver_client_key),
        "--node-serving-ca-file", str(pki.node_serving_ca_cert),
        "--node-serving-ca-key-file", str(pki.node_serving_ca_key),
    ]  # fmt: skip
