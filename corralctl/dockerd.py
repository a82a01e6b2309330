"""A dockerd of corral's own: its own data root and socket, leaving host networking alone.

``corral up``, the end-to-end tests and the benchmarks start Docker this way
when no Docker is given: bridge, iptables, IP forwarding and masquerading are
off (pods run with networking off and corral wires them itself), so the
daemon changes nothing about the host's network.

With ``netns``, the daemon runs inside that (existing) network namespace
instead, with Docker's usual bridge, iptables and NAT: they touch only that
namespace, which is how docker-compose, which needs a bridge network and DNS
between services, is tested without changing the host's network.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from corral.mounts import mounts_under
from corralctl.processes import ProcessError, wait_until

log = logging.getLogger(__name__)


@dataclass
class Dockerd:
    host: str
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None
    netns: str | None = None
    _client: docker.DockerClient | None = None

    def client(self) -> docker.DockerClient:
        """One shared client, closed with ``stop``."""
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.host, timeout=60)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def command(root: Path, socket_path: Path, netns: str | None = None) -> list[str]:
    """dockerd's command line: its own state under ``root``, host networking untouched.

    Without ``netns`` the daemon runs in the host's network namespace, so its
    networking is off. With it, the daemon runs in ``/run/netns/<netns>``
    with networking as usual: it can change nothing outside that namespace.
    """
    state = [
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "-H", f"unix://{socket_path}",
        "--pidfile", str(root / "docker.pid"),
        "--log-level=warn",
    ]  # fmt: skip
    if netns is not None:
        # nsenter, not `ip netns exec`: that also makes a mount namespace,
        # which would hide the daemon's mounts from the unmount on stop.
        return ["nsenter", f"--net=/run/netns/{netns}", "dockerd", *state]
    return [
        "dockerd",
        *state,
        "--bridge=none",
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--userland-proxy=false",
    ]


def responds(socket_path: Path, client: docker.DockerClient | None = None) -> bool:
    """Whether a dockerd answers on ``socket_path``."""
    # A plain connect first: the SDK leaks a socket for every refused attempt.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    try:
        if client is not None:
            return bool(client.ping())
        temporary = docker.DockerClient(base_url=f"unix://{socket_path}", timeout=10)
        try:
            return bool(temporary.ping())
        finally:
            temporary.close()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        # Listening, but not answering yet: still starting.
        return False


def short_root(preferred: Path) -> Path:
    """``preferred``, unless a socket under it would not fit in a unix socket address.

    The longest is containerd's, which dockerd puts under its exec root.
    """
    longest = preferred / "exec" / "containerd" / "containerd.sock.ttrpc"
    if len(str(longest)) < 104:
        return preferred
    # The same short place every time for the same data dir, so Docker's state
    # survives a restart of corral up.
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return Path("/tmp") / f"crl-dk-{digest}"


def start(
    root: Path | None = None, ready_timeout: float = 60.0, *, netns: str | None = None
) -> Dockerd:
    """Start a dockerd; ``netns`` names an existing namespace to run it in (see ``command``)."""
    if shutil.which("dockerd") is None:
        raise ProcessError("dockerd is not installed: apt-get install docker.io")
    root = (
        short_root(root)
        if root is not None
        else Path(tempfile.mkdtemp(prefix="crl-dk-", dir="/tmp"))
    )
    root.mkdir(parents=True, exist_ok=True)
    daemon = Dockerd(f"unix://{root / 'docker.sock'}", None, root, netns)
    restart(daemon, ready_timeout)
    return daemon


def restart(daemon: Dockerd, ready_timeout: float = 60.0) -> None:
    assert daemon.root is not None
    root = daemon.root
    socket_path = root / "docker.sock"
    log = open(root / "dockerd.log", "ab")  # noqa: SIM115 - held by the child
    process = subprocess.Popen(
        command(root, socket_path, daemon.netns),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    daemon.process = process

    def ready() -> bool:
        if process.poll() is not None:
            tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
            raise ProcessError(f"dockerd exited:\n{tail}")
        return responds(socket_path)

    try:
        wait_until(ready, ready_timeout, "dockerd")
    except BaseException:
        # A daemon that never became ready must not outlive the attempt.
        process.kill()
        process.wait(10)
        unmount(root)
        raise


def stop(daemon: Dockerd, *, clean: bool) -> None:
    """Stop the daemon; with ``clean``, also remove its containers and its whole data root."""
    if clean:
        try:
            for container in daemon.client().containers.list(all=True):
                container.remove(force=True)
        except Exception as error:
            # The data root goes next with everything in it; say what was left running.
            log.warning(
                "could not remove the containers of %s before stopping it: %s", daemon.host, error
            )
    daemon.close()
    if daemon.process is not None:
        daemon.process.terminate()
        try:
            daemon.process.wait(30)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait(10)
        daemon.process = None
    if daemon.root is not None:
        unmount(daemon.root)
        if clean:
            shutil.rmtree(daemon.root, ignore_errors=True)


def unmount(root: Path) -> None:
    """Remove the mounts a stopped dockerd leaves under its data and exec roots."""
    # Deepest first; the exec root's netns file is one dockerd leaves behind.
    for point in mounts_under(str(root.resolve())):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
