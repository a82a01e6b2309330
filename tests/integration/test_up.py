"""`corral up`: a cluster from one command, and nothing left running after SIGTERM.

Whatever a test asserts, what its ``corral up`` started is stopped and
removed when it ends: the process gets SIGTERM (SIGKILL if it will not go),
and ``corral down --purge`` then removes what is left, such as the nodes'
containers, which an agent leaves for the next start to adopt, in the
system's Docker when one answers.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.client import kubeconfig
from corral.client.rest import Client
from corralctl.dockerd import responds
from tests.integration.test_crud import DEPLOYMENTS, RCS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gluster.json"
CORRAL = [sys.executable, "-m", "corralctl.main"]
# Where corral up looks for the machine's Docker; it starts a dockerd of its own
# only when none answers there.
SYSTEM_DOCKER = Path("/var/run/docker.sock")
# corral up stops its children in turn, each within its own bound.
STOP_TIMEOUT = 120


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """A data dir for corral up; whatever the test did, corral down removes what is left."""
    data = tmp_path / "data"
    yield data
    sweep(data)


def sweep(data: Path) -> None:
    """``corral down --purge``: whatever corral up left behind in ``data``, gone."""
    down = subprocess.run(
        [*CORRAL, "down", "--data-dir", str(data), "--purge"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert down.returncode == 0, f"corral down left something: {down.stdout}{down.stderr}"


@contextlib.contextmanager
def running(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    """``corral up argv``, stopped when the block ends, however it ends."""
    up = subprocess.Popen(
        [*CORRAL, "up", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield up
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                # Its children carry corral up's marker: corral down finds them.
                up.kill()
                up.wait(10)
        assert up.stdout is not None
        up.stdout.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it only waits for its parent to reap it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _api_and_agent_ports() -> int:
    """A free port P whose P+1, the agent's, is free too: corral up refuses otherwise.

    Below the kernel's ephemeral range (32768 and up by default), where
    free_port() draws from: there any process's outgoing connection may take
    P+1 before corral up binds it, as two runs saw.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 1):
                    probe = stack.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise AssertionError("no free pair of ports")


async def test_up_serves_applies_and_stops_cleanly(data: Path) -> None:
    port = _api_and_agent_ports()
    system_docker = responds(SYSTEM_DOCKER)
    argv = ["--data-dir", str(data), "--port", str(port), "--apply", str(EXAMPLE)]
    # The pod network changes the host's links and routes; the e2e tests
    # cover it inside network namespaces of their own.
    argv += ["--pod-network", "none"]
    with running(argv) as up:
        assert up.stdout is not None
        output = ""
        deadline = time.monotonic() + 120
        for line in up.stdout:
            output += line
            if "corral is up" in line or time.monotonic() > deadline:
                break
        assert "corral is up" in output, output
        assert "deployment.apps/mediawiki created" in output
        assert "replicationcontroller/website created" in output
        assert "service/varnish" in output and "80:30080/TCP" in output
        children = _children(up.pid)
        # etcd, the API server, the controller manager, the scheduler, the node
        # agent and the log store (systemd-journal-remote, its name cut to 15
        # characters); and a dockerd of its own iff the machine's Docker did not answer.
        names = sorted(Path(f"/proc/{pid}/comm").read_text().strip() for pid in children)
        expected = ["etcd", "python", "python", "python", "python", "systemd-journal"]
        assert names == sorted(expected + ([] if system_docker else ["dockerd"])), names
        assert ("corral's own" in output) is not system_docker, output
        assert "log store     https://127.0.0.1:" in output, output
        if system_docker:
            assert f"on unix://{SYSTEM_DOCKER}" in output, output

        config = kubeconfig.load(str(data / "kubeconfig"))
        assert config.server == f"https://127.0.0.1:{port}"
        assert config.ca_data and config.client_cert_data
        async with Client(config) as client:
            wiki = await client.get(DEPLOYMENTS, "mediawiki", "default")
            assert wiki["spec"]["replicas"] == 2

        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
        rest = up.stdout.read()
        assert "stopped." in rest
    for pid in children:
        assert not _alive(pid), f"child {pid} survived corral up"


async def test_up_keeps_data_across_restarts(data: Path) -> None:
    port = _api_and_agent_ports()
    argv = ["--data-dir", str(data), "--port", str(port), "--no-agent"]
    for round_ in range(2):
        with running(argv) as up:
            assert up.stdout is not None
            output = ""
            for line in up.stdout:
                output += line
                if "corral is up" in line:
                    break
            assert "corral is up" in output, output
            async with Client(kubeconfig.load(str(data / "kubeconfig"))) as client:
                if round_ == 0:
                    await client.create(
                        RCS,
                        {
                            "apiVersion": "v1",
                            "kind": "ReplicationController",
                            "metadata": {"name": "kept"},
                            "spec": {
                                "selector": {"a": "b"},
                                "template": {
                                    "metadata": {"labels": {"a": "b"}},
                                    "spec": {"containers": [{"name": "c", "image": "x:1"}]},
                                },
                            },
                        },
                        "default",
                    )
                else:
                    assert (await client.get(RCS, "kept", "default"))["metadata"]["name"] == "kept"
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0
