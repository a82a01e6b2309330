"""The installer on a read-only /usr: master and minion units that verify, start and run a pod.

systemd is not PID 1 here, so the test starts each installed unit's
ExecStart line itself, as systemd would, with the unit's EnvironmentFile.
Every path the installer writes is under the test's temporary directory;
the install runs in a mount namespace where /usr is remounted read-only.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.api.resources import REGISTRY
from corral.client import kubeconfig
from corral.client.rest import Client
from corralctl.processes import free_port, http_ok, wait_until
from tests.e2e.conftest import TEST_IMAGE, Dockerd
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PODS = REGISTRY.resolve("pods")
NODES = REGISTRY.resolve("nodes")
assert PODS is not None and NODES is not None


def _read_only_usr(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` where /usr is mounted read-only, as on an ostree host.

    A write there fails the install; and in case something reached /usr
    another way, nothing under it may be newer than the start of the run.
    """
    with tempfile.NamedTemporaryFile() as stamp:
        time.sleep(0.01)
        script = 'mount --bind /usr /usr && mount -o remount,ro,bind /usr && exec "$@"'
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv],
            capture_output=True,
            text=True,
            timeout=600,
        )
        changed = _changed_under_usr(Path(stamp.name))
    assert not changed, f"{argv[3:5]} changed {changed}"
    return done


def _exec_start(unit: Path) -> list[str]:
    match = re.search(r"^ExecStart=(.*)$", unit.read_text(), re.MULTILINE)
    assert match, unit
    return shlex.split(match[1])


def _environment(unit: Path) -> dict[str, str]:
    env = dict(os.environ)
    match = re.search(r"^EnvironmentFile=-?(.*)$", unit.read_text(), re.MULTILINE)
    if match and Path(match[1]).exists():
        for line in Path(match[1]).read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
    return env


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop ``processes`` in reverse order of starting, as systemd would; empty the list."""
    while processes:
        process = processes.pop()
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def started(tmp_path: Path, dockerd: Dockerd) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The units' processes; whatever the test did, stopped, and what the agent made removed."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    _stop(processes)
    # The agent's mounts (volumes) outlive it; tmp_path's cleanup must not follow them.
    subprocess.run(["umount", "-R", str(tmp_path / "state" / "agent")], capture_output=True)
    docker = dockerd.client()
    for container in docker.containers.list(all=True, filters={"label": f"io.corral.node={NODE}"}):
        container.remove(force=True)


NODE = "installed-minion"


# Two pip installs into a new venv (the master's and the minion's) come on top
# of a cluster's start; on a loaded machine that passes the default bound.
@pytest.mark.timeout(900)
async def test_install_master_and_minion_on_a_read_only_usr_and_run_a_pod(
    tmp_path: Path, dockerd: Dockerd, test_image: str, started: list[subprocess.Popen[bytes]]
) -> None:
    corral = [sys.executable, "-m", "corralctl.main"]
    port, etcd_port = free_port(), free_port()
    state, logs = tmp_path / "state", tmp_path / "log"
    master = {"etc": tmp_path / "master-etc", "units": tmp_path / "master-units"}
    minion = {"etc": tmp_path / "minion-etc", "units": tmp_path / "minion-units"}
    done = _read_only_usr(
        *corral, "install", "master", "--no-start",
        "--etc-dir", str(master["etc"]), "--state-dir", str(state), "--log-dir", str(logs),
        "--unit-dir", str(master["units"]), "--host", "127.0.0.1", "--port", str(port),
        "--etcd-port", str(etcd_port), "--advertise-address", "127.0.0.1",
        "--backup-dir", str(tmp_path / "backups"), "--backup-keep", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "token create --print-join-command --kubeconfig" in done.stdout
    unit_files = sorted(master["units"].iterdir())
    assert [u.name for u in unit_files] == [
        "corral-apiserver.service",
        "corral-backup.service",
        "corral-backup.timer",
        "corral-controller-manager.service",
        "corral-etcd.service",
        # journal-remote behind stunnel, which checks the agents' certificates.
        "corral-log-store-tls.service",
        "corral-log-store.service",
        "corral-scheduler.service",
    ]

    ca = master["etc"] / "pki" / "ca.crt"
    ready_url = f"https://127.0.0.1:{port}/readyz"
    # Each unit in dependency order, as systemd would start them.
    env = dict(os.environ)
    for name in ("etcd", "apiserver", "controller-manager", "scheduler"):
        unit = master["units"] / f"corral-{name}.service"
        started.append(_start(_exec_start(unit), env, tmp_path / f"{name}.log"))
        if name == "apiserver":
            wait_until(lambda: http_ok(ready_url, ca_file=ca), 60, "the installed API")

    # What the timer starts, three times: two backups stay, each with the keys.
    (tmp_path / "backups").mkdir()
    backup = master["units"] / "corral-backup.service"
    for _ in range(3):
        saved = subprocess.run(_exec_start(backup), capture_output=True, text=True, timeout=120)
        assert saved.returncode == 0, saved.stderr
    kept = sorted((tmp_path / "backups").iterdir())
    assert len(kept) == 2, kept

    admin = master["etc"] / "admin.kubeconfig"
    installed = state / "venv" / "bin" / "corral"
    join = subprocess.run(
        [str(installed), "token", "create", "--print-join-command", "--kubeconfig", str(admin)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert join.returncode == 0, join.stderr
    token = re.search(r"--bootstrap-token (\S+)", join.stdout)
    assert token, join.stdout

    node = NODE
    done = _read_only_usr(
        *corral, "install", "minion", "--no-start",
        "--etc-dir", str(minion["etc"]), "--state-dir", str(state),
        "--unit-dir", str(minion["units"]), "--server", f"https://127.0.0.1:{port}",
        "--token", token[1], "--ca-file", str(master["etc"] / "pki" / "ca.crt"),
        "--node-name", node, "--docker-host", dockerd.host, "--pod-network", "none",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    agent_unit = minion["units"] / "corral-agent.service"
    assert token[1] not in agent_unit.read_text(), "the token belongs in the root-only env file"
    assert (minion["etc"] / "agent.env").stat().st_mode & 0o077 == 0
    for unit in [*unit_files, agent_unit]:
        verified = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        problems = [
            line
            for line in verified.stderr.splitlines()
            # Units this machine does not have (no Docker package, no
            # systemd running) are the host's business, not the unit's.
            if "not found" not in line and "docker.service" not in line
        ]
        assert verified.returncode == 0 or not problems, (unit.name, verified.stderr)
        assert not problems, (unit.name, problems)

    agent_argv = [*_exec_start(agent_unit), "--listen-port", str(free_port())]
    started.append(_start(agent_argv, _environment(agent_unit), tmp_path / "agent.log"))
    async with Client(kubeconfig.load(str(admin))) as client:

        async def ready_node() -> bool:
            try:
                found = await client.get(NODES, node)
            except Exception:
                return False
            conditions = (found.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        await eventually(ready_node, timeout=90, message="the minion joined")
        await client.create(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "hello"},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": TEST_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"],
                        }
                    ]
                },
            },
            "default",
        )

        async def running() -> bool:
            pod = await client.get(PODS, "hello", "default")
            status = pod.get("status") or {}
            return pod["spec"].get("nodeName") == node and status.get("phase") == "Running"

        await eventually(running, timeout=90, message="the pod scheduled and running")
        await client.delete(PODS, "hello", "default", grace_period_seconds=0)

    _stop(started)
    subprocess.run(["umount", "-R", str(state / "agent")], capture_output=True, check=False)
    for role in (minion, master):
        removed = subprocess.run(
            [*corral, "uninstall", "--no-start", "--purge",
             "--etc-dir", str(role["etc"]), "--state-dir", str(state), "--log-dir", str(logs),
             "--unit-dir", str(role["units"])],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert removed.returncode == 0, removed.stderr
        assert not any(role["units"].iterdir()) and not role["etc"].exists()
    assert not state.exists()


def _changed_under_usr(stamp: Path) -> list[str]:
    found = subprocess.run(
        ["find", "/usr", "-xdev", "-newer", str(stamp), "-print", "-quit"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return found.stdout.split()
