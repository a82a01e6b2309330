"""``corral up --simulated-hosts``: a two-node cluster from one command, and ``corral down``.

The real ``corral up`` runs with the test session's dockerd: two node agents
on two simulated hosts (network namespaces crl-sim-0 and crl-sim-1), an RC
of two busybox httpd pods and a NodePort Service, ``--wait`` until they are
ready and ``--publish`` of the NodePort on a loopback port. A request through
that port must reach a pod; ``corral down --purge`` must then leave no
process, namespace, container or data dir behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corralctl import down
from corralctl.dockerd import Dockerd
from corralctl.processes import free_port
from nodeagent.network.testbed import cleanup, namespaces, root_links
from tests.conftest import unique_name
from tests.e2e.conftest import TEST_IMAGE
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PREFIX = "crl-sim"
NODE_PORT = 31380
HOSTS = 2


def _manifest() -> dict[str, Any]:
    script = "mkdir -p /www; hostname > /www/index.html; httpd -f -p 8080 -h /www"
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "echo"},
                "spec": {
                    "replicas": 2,
                    "selector": {"app": "echo"},
                    "template": {
                        "metadata": {"labels": {"app": "echo"}},
                        "spec": {
                            "terminationGracePeriodSeconds": 1,
                            "containers": [
                                {
                                    "name": "httpd",
                                    "image": TEST_IMAGE,
                                    "imagePullPolicy": "Never",
                                    "command": ["sh", "-c", script],
                                    "ports": [{"containerPort": 8080}],
                                    "readinessProbe": {
                                        "httpGet": {"path": "/", "port": 8080},
                                        "periodSeconds": 1,
                                    },
                                }
                            ],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "echo"},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": "echo"},
                    "ports": [{"port": 80, "targetPort": 8080, "nodePort": NODE_PORT}],
                },
            },
        ],
    }


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    data: Path
    log: Path
    node_name: str
    local_port: int
    dockerd: Dockerd

    @property
    def nodes(self) -> list[str]:
        return [f"{self.node_name}-{i}" for i in range(HOSTS)]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def corral(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "corralctl.main", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def containers(self) -> list[str]:
        found = self.dockerd.client().containers.list(all=True, filters={"label": down.NODE_LABEL})
        return [c.name for c in found if c.labels.get(down.NODE_LABEL) in self.nodes]


def _ours() -> set[str]:
    return {name for name in namespaces() if name.startswith(f"{PREFIX}-")}


@pytest.fixture
async def up(dockerd: Dockerd, test_image: str, tmp_path: Path) -> AsyncIterator[Up]:
    if _ours():
        pytest.fail(f"{PREFIX}-* namespaces exist already (another corral up?): {_ours()}")
    links_before = root_links()
    manifest = tmp_path / "echo.json"
    manifest.write_text(json.dumps(_manifest()))
    data = tmp_path / "data"
    log = tmp_path / "up.log"
    local_port = free_port()
    node_name = unique_name("up")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "corralctl.main", "up",
                "--data-dir", str(data),
                "--port", str(free_port()),
                "--docker-host", dockerd.host,
                "--node-name", node_name,
                "--simulated-hosts", str(HOSTS),
                "--pod-network", "bridge",
                "--apply", str(manifest),
                "--wait", "--wait-timeout", "300",
                "--publish", f"{local_port}:{NODE_PORT}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    handle = Up(process, data, log, node_name, local_port, dockerd)
    try:
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(180)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        # Whatever the test got to: corral down is also the cleanup.
        handle.corral("down", "--data-dir", str(data), "--purge")
        await cleanup(prefix=PREFIX)
        for container in dockerd.client().containers.list(all=True):
            if container.labels.get(down.NODE_LABEL) in handle.nodes:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
    assert root_links() <= links_before, root_links() - links_before


def _get(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            body: bytes = response.read()
            return body.decode().strip() or None
    except OSError:
        return None


async def test_up_runs_simulated_hosts_publishes_a_node_port_and_down_removes_it_all(
    up: Up,
) -> None:
    def started() -> bool:
        if up.process.poll() is not None:
            raise AssertionError(f"corral up exited ({up.process.returncode}):\n{up.output()}")
        return "corral is up" in up.output()

    try:
        await eventually(started, timeout=540, interval=1, message="corral is up")
    except AssertionError:
        print(up.output()[-6000:])
        raise
    output = up.output()
    for index, node in enumerate(up.nodes):
        assert f"agent         node {node} on {PREFIX}-{index} (192.168.240.{index + 1})" in (
            output
        ), output
    assert "  replicationcontroller/echo 2/2 ready" in output, output
    assert "all 1 workloads ready in " in output, output
    assert f"  open http://127.0.0.1:{up.local_port}/" in output, output
    assert _ours() == {f"{PREFIX}-0", f"{PREFIX}-1", f"{PREFIX}-ul"}
    assert (up.data / down.PID_FILE).read_text().strip() == str(up.process.pid)

    # Through the loopback relay, into crl-sim-0, to the NodePort, to a pod.
    body = await eventually(
        lambda: asyncio.to_thread(_get, up.local_port),
        timeout=60,
        interval=1,
        message="a response through the published port",
    )
    assert body.startswith("echo-"), body
    assert len(up.containers()) >= 4  # two pods: an infra and an app container each

    done = up.corral("down", "--data-dir", str(up.data), "--purge")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"stopped corral up (pid {up.process.pid})" in done.stdout, done.stdout
    assert f"deleted {up.data}" in done.stdout, done.stdout
    assert up.process.wait(30) == 0
    assert "stopped." in up.output()
    assert not _ours()
    assert up.containers() == []
    assert not up.data.exists()
    assert down.leftover_processes(up.data) == {}

    again = up.corral("down", "--data-dir", str(up.data), "--purge")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
