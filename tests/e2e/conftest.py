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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from corralctl import dockerd as dockerd_process
from corralctl.dockerd import Dockerd
from corralctl.processes import ManagedProcess, free_port, wait_until
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
    "ln",
    "id",
    "grep",
    "seq",
    "tail",
    "sed",
    "nslookup",
)


def _static(path: str) -> bool:
    from nodeagent.runtime.docker import is_static_elf

    return Path(path).exists() and is_static_elf(path)


def start_dockerd() -> Dockerd:
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed: apt-get install docker.io (./dev deps does)")
    return dockerd_process.start()


def restart_dockerd(daemon: Dockerd) -> None:
    dockerd_process.restart(daemon)


def stop_dockerd(daemon: Dockerd, *, clean: bool) -> None:
    dockerd_process.stop(daemon, clean=clean)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    given = os.environ.get("CORRAL_TEST_DOCKER_HOST")
    if given:
        external = Dockerd(given)
        yield external
        external.close()
        return
    daemon = start_dockerd()
    yield daemon
    stop_dockerd(daemon, clean=True)


def import_test_image(daemon: Dockerd) -> str:
    client = daemon.client()
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(TEST_IMAGE)
        return TEST_IMAGE
    repository, tag = TEST_IMAGE.rsplit(":", 1)
    client.api.import_image_from_data(busybox_rootfs(), repository=repository, tag=tag)
    return TEST_IMAGE


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
    return import_test_image(dockerd)


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
        self,
        *,
        node: str | None = None,
        backoff_base: float = 1.0,
        extra: tuple[str, ...] = (),
        docker_host: str | None = None,
    ) -> AgentProcess:
        name = node or unique_name("node")
        data = self.root / name
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "nodeagent",
            *self.cluster.agent_args(name),
            "--runtime",
            "docker",
            "--docker-host",
            docker_host or self.dockerd.host,
            "--data-dir",
            str(data),
            "--listen-port",
            str(port),
            "--backoff-base",
            str(backoff_base),
            "--resync",
            "2",
            # Several agents share this machine: each gets a pod network only
            # when the test gives it a namespace of its own (see network_args).
            *([] if "--network-netns" in extra else ["--network", "none"]),
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
            with urllib.request.urlopen(
                f"{cluster.url}/api/v1/nodes/{name}", context=cluster.ssl_context()
            ) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registered():
            return
        time.sleep(0.1)
    raise AssertionError(f"node {name} did not register")


@dataclass
class Registry:
    address: str
    username: str
    password: str
    process: ManagedProcess


@pytest.fixture(scope="session")
def registry(
    dockerd: Dockerd, test_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """Debian's docker-registry on loopback, with basic auth, holding a private image."""
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        pytest.fail("the registry tests need Debian's docker-registry and apache2-utils")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    username, password = "corral", "s3cret-pull"
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", username, password], capture_output=True, text=True, check=True
    ).stdout
    (root / "htpasswd").write_text(htpasswd)
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        f"auth: {{htpasswd: {{realm: corral-test, path: {root / 'htpasswd'}}}}}\n"
    )
    process = ManagedProcess(
        "registry", ["docker-registry", "serve", str(root / "config.yml")], root / "registry.log"
    )
    process.start()
    address = f"127.0.0.1:{port}"

    def up() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_until(up, 30, "docker-registry", alive=process.running)
    client = dockerd.client()
    private = f"{address}/corral/private"
    client.images.get(test_image).tag(private, tag="1")
    auth = {"username": username, "password": password}
    for line in client.api.push(private, tag="1", auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(f"push to the test registry failed: {line['error']}")
    # Gone locally: a pod can only get it by pulling, with credentials.
    client.images.remove(f"{private}:1")
    yield Registry(address, username, password, process)
    process.stop()


def control_plane(
    cluster: LocalCluster, root: Path, *, grace: float, toleration: float
) -> list[ManagedProcess]:
    """The controller manager (node grace and toleration as given) and the scheduler."""
    controllers = ManagedProcess(
        "controller-manager",
        [
            sys.executable, "-m", "controlplane", "controller-manager",
            "--kubeconfig", str(cluster.component_kubeconfig("controller-manager")),
            "--node-monitor-grace-period", str(grace),
            "--default-toleration-seconds", str(toleration),
        ],
        root / "controller-manager.log",
    )  # fmt: skip
    scheduler = ManagedProcess(
        "scheduler",
        [
            sys.executable, "-m", "scheduler",
            "--kubeconfig", str(cluster.component_kubeconfig("scheduler")),
        ],
        root / "scheduler.log",
    )  # fmt: skip
    return [controllers, scheduler]
