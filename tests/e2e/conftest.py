"""End-to-end fixtures: a real dockerd, a locally built image, and node agent processes.

dockerd is started by the tests (or taken from CORRAL_TEST_DOCKER_HOST) with
its own data root and with bridge, iptables and masquerading off, so it
changes nothing about the host's networking. No registry is reachable, so
the test image is imported from Debian's static busybox.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from corral.processes import ManagedProcess, free_port, wait_until
from tests.conftest import LocalCluster, unique_name

BUSYBOX = "/bin/busybox"
TEST_IMAGE = "corral-test/busybox:1"
APPLETS = (
    "sh",
    "httpd",
    "sleep",
    "echo",
    "cat",
    "ls",
    "mkdir",
    "wget",
    "head",
    "yes",
    "rm",
    "touch",
    "test",
    "true",
    "false",
    "kill",
    "nc",
    "hostname",
    "date",
    "env",
    "dd",
)


@dataclass
class Dockerd:
    host: str
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None
    _client: docker.DockerClient | None = None

    def client(self) -> docker.DockerClient:
        """One shared client; closed with the daemon fixture."""
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.host, timeout=60)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _static(path: str) -> bool:
    from nodeagent.runtime.docker import is_static_elf

    return Path(path).exists() and is_static_elf(path)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    given = os.environ.get("CORRAL_TEST_DOCKER_HOST")
    if given:
        external = Dockerd(given)
        yield external
        external.close()
        return
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed: apt-get install docker.io (./dev deps does)")
    # A short path: dockerd's sockets under it must fit in sun_path.
    root = Path(tempfile.mkdtemp(prefix="crl-dk-", dir="/tmp"))
    socket_path = root / "docker.sock"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - held by the child
    process = subprocess.Popen(
        [
            "dockerd",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "-H",
            f"unix://{socket_path}",
            "--pidfile",
            str(root / "docker.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--log-level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    daemon = Dockerd(f"unix://{socket_path}", process, root)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited:\n{(root / 'dockerd.log').read_text()[-2000:]}")
        # A plain connect first: the SDK leaks a socket for every refused attempt.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(socket_path))
            except OSError:
                return False
        return bool(daemon.client().ping())

    wait_until(ready, 60, "dockerd")
    yield daemon
    with contextlib.suppress(Exception):
        client = daemon.client()
        for container in client.containers.list(all=True):
            container.remove(force=True)
    daemon.close()
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    subprocess.run(["umount", "-R", str(root / "data")], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


def busybox_rootfs(extra: dict[str, bytes] | None = None) -> bytes:
    if not _static(BUSYBOX):
        pytest.fail("a static busybox is needed for the test image: apt-get install busybox-static")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for directory in ("bin", "tmp", "www", "etc", "proc", "dev", "sys"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            archive.addfile(info)
        data = Path(BUSYBOX).read_bytes()
        binary = tarfile.TarInfo("bin/busybox")
        binary.size = len(data)
        binary.mode = 0o755
        archive.addfile(binary, io.BytesIO(data))
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            archive.addfile(link)
        for name, content in (extra or {}).items():
            entry = tarfile.TarInfo(name)
            entry.size = len(content)
            entry.mode = 0o644
            archive.addfile(entry, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture(scope="session")
def test_image(dockerd: Dockerd) -> str:
    client = dockerd.client()
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(TEST_IMAGE)
        return TEST_IMAGE
    repository, tag = TEST_IMAGE.rsplit(":", 1)
    client.api.import_image_from_data(busybox_rootfs(), repository=repository, tag=tag)
    return TEST_IMAGE


@dataclass
class AgentProcess:
    node: str
    process: ManagedProcess
    data_dir: Path
    listen_port: int

    def kill(self) -> None:
        self.process.kill()

    def start(self) -> None:
        self.process.start()


@dataclass
class Agents:
    cluster: LocalCluster
    dockerd: Dockerd
    root: Path
    started: list[AgentProcess] = field(default_factory=list)

    def start(
        self, *, node: str | None = None, backoff_base: float = 1.0, extra: tuple[str, ...] = ()
    ) -> AgentProcess:
        name = node or unique_name("node")
        data = self.root / name
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "nodeagent",
            "--server",
            self.cluster.url,
            "--node-name",
            name,
            "--runtime",
            "docker",
            "--docker-host",
            self.dockerd.host,
            "--data-dir",
            str(data),
            "--listen-port",
            str(port),
            "--backoff-base",
            str(backoff_base),
            "--resync",
            "2",
            *extra,
        ]
        process = ManagedProcess(f"agent-{name}", argv, self.root / f"{name}.log")
        agent = AgentProcess(name, process, data, port)
        process.start()
        self.started.append(agent)
        return agent

    def stop_all(self) -> None:
        for agent in self.started:
            agent.process.stop(15)
        client = self.dockerd.client()
        names = {a.node for a in self.started}
        for container in client.containers.list(all=True):
            if container.labels.get("io.corral.node") in names:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
        for agent in self.started:
            subprocess.run(["umount", "-R", str(agent.data_dir)], capture_output=True, check=False)


@pytest.fixture
def agents(
    cluster: LocalCluster, dockerd: Dockerd, test_image: str, tmp_path: Path
) -> Iterator[Agents]:
    pool = Agents(cluster, dockerd, tmp_path)
    yield pool
    pool.stop_all()


def wait_for_node(cluster: LocalCluster, name: str, timeout: float = 30) -> None:
    import urllib.request

    def registered() -> bool:
        try:
            with urllib.request.urlopen(f"{cluster.url}/api/v1/nodes/{name}") as response:
                return bool(response.status == 200)
        except OSError:
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registered():
            return
        time.sleep(0.1)
    raise AssertionError(f"node {name} did not register")
