"""`corral up`: a cluster from one command, and nothing left running after SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from corral.client import kubeconfig
from corral.client.rest import Client
from corralctl.processes import free_port
from tests.integration.test_crud import DEPLOYMENTS, RCS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gluster.json"


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


async def test_up_serves_applies_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "corralctl.main",
            "up",
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--apply",
            str(EXAMPLE),
            # The pod network changes the host's links and routes; the e2e
            # tests cover it inside network namespaces of their own.
            "--pod-network",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as up:
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
        # etcd, the API server, the controller manager, the scheduler, a
        # dockerd of its own (this machine runs none on the system socket)
        # and the node agent.
        names = sorted(Path(f"/proc/{pid}/comm").read_text().strip() for pid in children)
        assert names == ["dockerd", "etcd", "python", "python", "python", "python"], names

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


async def test_up_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    argv = [
        sys.executable,
        "-m",
        "corralctl.main",
        "up",
        "--data-dir",
        str(data),
        "--port",
        str(port),
        "--no-agent",
    ]
    for round_ in range(2):
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as up:
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
