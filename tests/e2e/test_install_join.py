"""A second master joins with ``corral install master --join``, serves the same cluster, and leaves.

Both masters run on this machine, each with its own directories and ports on
127.0.0.1, installed on a read-only /usr; systemd is not PID 1 here, so the
test starts each unit's ExecStart (and ExecStartPost) line itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shlex
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.client import kubeconfig
from corral.client.rest import Client
from corralctl import etcdmembers
from corralctl.etcdpromote import credentials
from corralctl.processes import free_port, http_ok, wait_until
from tests.e2e.test_install import _exec_start, _read_only_usr, _start, _stop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIGMAPS = REGISTRY.resolve("configmaps")
assert CONFIGMAPS is not None
CORRAL = [sys.executable, "-m", "corralctl.main"]


def _port_pair() -> int:
    """A free port P with P+1 free too (etcd's client and peer ports), below the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 1):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise AssertionError("no free pair of ports")


class Master:
    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.etc = root / f"{name}-etc"
        self.state = root / f"{name}-state"
        self.log = root / f"{name}-log"
        self.units = root / f"{name}-units"
        self.port = _port_pair()
        self.etcd_port = _port_pair()
        self.backups = root / f"{name}-backups"

    def dirs(self) -> list[str]:
        return [
            "--etc-dir", str(self.etc), "--state-dir", str(self.state),
            "--log-dir", str(self.log), "--unit-dir", str(self.units),
        ]  # fmt: skip

    def install_args(self) -> list[str]:
        return [
            "install", "master", "--no-start", *self.dirs(), "--name", self.name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--etcd-port", str(self.etcd_port), "--advertise-address", "127.0.0.1",
            "--backup-dir", str(self.backups), "--backup-keep", "2",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin(self) -> Path:
        return self.etc / "admin.kubeconfig"

    def unit(self, component: str) -> Path:
        return self.units / f"corral-{component}.service"

    def start(self, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
        """Each unit in dependency order, as systemd would; metrics on ports of their own."""
        etcd = self.unit("etcd")
        processes.append(
            _start(_exec_start(etcd), dict(os.environ), logs / f"{self.name}-etcd.log")
        )
        post = re.search(r"^ExecStartPost=-(.*)$", etcd.read_text(), re.MULTILINE)
        if post:
            began = time.monotonic()
            promoted = subprocess.run(
                shlex.split(post[1]), capture_output=True, text=True, timeout=120
            )
            print(f"{self.name}: etcd start to voting member: {time.monotonic() - began:.1f}s")
            assert promoted.returncode == 0, promoted.stdout + promoted.stderr
            assert "promoted" in promoted.stdout, promoted.stdout
        api = [*_exec_start(self.unit("apiserver")), "--metrics-port", str(free_port())]
        processes.append(_start(api, dict(os.environ), logs / f"{self.name}-apiserver.log"))
        ca = self.etc / "pki" / "ca.crt"
        wait_until(lambda: http_ok(f"{self.url}/readyz", ca_file=ca), 90, f"{self.name}'s API")
        for component in ("controller-manager", "scheduler"):
            argv = [
                *_exec_start(self.unit(component)),
                "--metrics-bind-address",
                f"127.0.0.1:{free_port()}",
            ]
            processes.append(_start(argv, dict(os.environ), logs / f"{self.name}-{component}.log"))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    running: list[subprocess.Popen[bytes]] = []
    yield running
    _stop(running)


def _corral(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CORRAL, *argv], capture_output=True, text=True, timeout=300)


async def _members(master: Master) -> list[etcdmembers.Member]:
    creds = credentials(master.etc / "pki")
    return await etcdmembers.list_members(
        [f"https://127.0.0.1:{master.etcd_port}"], creds, timeout=10
    )


def _config_map(name: str, value: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"written": value},
    }


# Removing the member that leads leaves etcd without a leader for an
# election (about 1 s); the API answers 503 meanwhile, as it should, and a
# client retries. Longer than this is a failure.
UNAVAILABLE_FOR_AT_MOST = 30.0


async def _write_here_read_there(writer: Path, reader: Path, name: str) -> None:
    async with (
        Client(kubeconfig.load(str(writer))) as writing,
        Client(kubeconfig.load(str(reader))) as reading,
    ):
        started = time.monotonic()
        while True:
            try:
                await writing.create(CONFIGMAPS, _config_map(name, str(writer)), "default")
                break
            except ApiError as error:
                if error.code == 409:
                    break  # an attempt answered 503 had landed after all
                waited = time.monotonic() - started
                if error.code not in (503, 504) or waited > UNAVAILABLE_FOR_AT_MOST:
                    raise
                print(f"create {name}: {error.code} after {waited:.1f} s; retrying")
                await asyncio.sleep(0.3 + random.random() * 0.4)
        found = await reading.get(CONFIGMAPS, name, "default")
    assert found["data"]["written"] == str(writer)


def _served_certificate_verifies(master: Master, ca: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", master.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.getpeercert(), "the handshake verified against the cluster CA"


# Two pip installs into new venvs and two control planes on a shared machine.
@pytest.mark.timeout(900)
async def test_a_second_master_joins_serves_the_same_cluster_and_leaves(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    first, second = Master(tmp_path, "m1"), Master(tmp_path, "m2")
    done = _read_only_usr(*CORRAL, *first.install_args())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "token create --master" in done.stdout
    etcd_unit = first.unit("etcd").read_text()
    assert "--peer-client-cert-auth" in etcd_unit and "--client-cert-auth" in etcd_unit
    first.start(processes, tmp_path)
    ca = first.etc / "pki" / "ca.crt"

    # The backup timer's service, against etcd over TLS now.
    first.backups.mkdir()
    saved = subprocess.run(
        _exec_start(first.unit("backup")), capture_output=True, text=True, timeout=120
    )
    assert saved.returncode == 0, saved.stderr

    installed = first.state / "venv" / "bin" / "corral"
    made = subprocess.run(
        [str(installed), "token", "create", "--master", "--etc-dir", str(first.etc),
         "--kubeconfig", str(first.admin)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    join = re.search(r"--join (\S+) --token (\S+)", made.stdout)
    key = re.search(r"--certificate-key (\S+)", made.stdout)
    assert join and key, made.stdout
    assert join[1] == first.url

    # Refused before anything is written or any member added.
    wrong_key = "0" * 64
    bad = {
        "certificate key does not open": (join[2], wrong_key, join[1]),
        "--token: the API server does not accept it": ("abcdef.0123456789abcdef", key[1], join[1]),
        "cannot reach": (join[2], key[1], f"https://127.0.0.1:{_port_pair()}"),
    }
    for message, (token, certificate_key, url) in bad.items():
        refused = _corral(
            *second.install_args(), "--join", url, "--token", token,
            "--certificate-key", certificate_key, "--ca-file", str(ca),
        )  # fmt: skip
        assert refused.returncode != 0, refused.stdout
        assert message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr, refused.stderr
        assert not second.etc.exists() or not any(second.etc.iterdir())
        assert not any(p.name.startswith(".m2-etc-join-") for p in tmp_path.iterdir())
        assert len(await _members(first)) == 1

    began = time.monotonic()
    done = _read_only_usr(
        *CORRAL, *second.install_args(), "--join", join[1], "--token", join[2],
        "--certificate-key", key[1], "--ca-file", str(ca),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"corral install master --join (a new venv included): {time.monotonic() - began:.1f}s")
    assert "--initial-cluster-state existing" in second.unit("etcd").read_text()
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(second.unit("etcd"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in verified.stderr.splitlines() if "not found" not in line]
    assert not problems, problems
    added = await _members(first)
    assert len(added) == 2 and [m.learner for m in added].count(True) == 1, added

    second.start(processes, tmp_path)
    members = await _members(first)
    assert sorted(m.name for m in members) == ["m1", "m2"], members
    assert all(m.started and not m.learner for m in members), members
    assert (second.etc / "pki" / "ca.key").read_bytes() == (
        first.etc / "pki" / "ca.key"
    ).read_bytes()
    assert (second.etc / "pki" / "apiserver.key").read_bytes() != (
        first.etc / "pki" / "apiserver.key"
    ).read_bytes(), "each master mints its own serving key"
    _served_certificate_verifies(second, ca)

    await _write_here_read_there(second.admin, first.admin, "from-m2")
    await _write_here_read_there(first.admin, second.admin, "from-m1")

    # With the other member down, leaving would take the quorum with it: refused.
    first_etcd = processes.pop(0)
    _stop([first_etcd])
    refused = _corral("uninstall", "--no-start", "--purge", *second.dirs())
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert second.unit("etcd").exists() and second.etc.exists()
    processes.insert(
        0, _start(_exec_start(first.unit("etcd")), dict(os.environ), tmp_path / "m1-etcd-2.log")
    )
    wait_until(lambda: http_ok(f"{first.url}/readyz", ca_file=ca), 90, "m1's API again")

    # Leaving while its units run and its member leads: the leadership goes
    # to the other member first (MoveLeader), then the member, through it.
    creds = credentials(first.etc / "pki")
    m1, m2 = sorted(await _members(first), key=lambda m: m.name)
    if await etcdmembers.leader_id(m1.client_urls, creds) != m2.id:
        await etcdmembers.move_leader(m1, creds, m2.id)
    assert await etcdmembers.leader_id(m1.client_urls, creds) == m2.id
    left = _corral("uninstall", "--no-start", "--purge", *second.dirs())
    assert left.returncode == 0, left.stdout + left.stderr
    assert "handed etcd's leadership to m1" in left.stdout, left.stdout
    assert "removed etcd member m2" in left.stdout, left.stdout
    remaining = await _members(first)
    assert [m.name for m in remaining] == ["m1"], remaining
    assert not second.etc.exists()
    await _write_here_read_there(first.admin, first.admin, "after-m2-left")

    _stop(processes)
    # Losing quorum, docs/ha.md's way back: the backup from before m2 joined,
    # restored as a one-member cluster keeping m1's name and peer URL.
    backup = next(first.backups.iterdir())
    restore = tmp_path / "restore"
    peer_url = f"https://127.0.0.1:{first.etcd_port + 1}"
    restored = subprocess.run(
        [*CORRAL, "backup", "restore", str(backup), "--data-dir", str(restore),
         "--member-name", "m1", "--peer-url", peer_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    (first.state / "etcd").rename(tmp_path / "etcd.lost")
    (restore / "etcd").rename(first.state / "etcd")
    first.start(processes, tmp_path)
    back = await _members(first)
    assert [(m.name, m.peer_urls) for m in back] == [("m1", [peer_url])], back
    async with Client(kubeconfig.load(str(first.admin))) as client:
        with pytest.raises(ApiError) as missing:
            await client.get(CONFIGMAPS, "from-m2", "default")
        assert missing.value.code == 404, "written after the backup"
        await client.create(CONFIGMAPS, _config_map("after-restore", "m1"), "default")
    _stop(processes)

    gone = _corral("uninstall", "--no-start", "--purge", *first.dirs())
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not first.etc.exists()
