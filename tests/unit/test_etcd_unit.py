"""The etcd unit corral install master writes: TLS both ways, and a joined member's promotion."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from corralctl import units
from tests.support import installed_layout


def _etcd_unit(tmp_path: Path, member: units.EtcdMember) -> tuple[str, Path]:
    etcd = shutil.which("etcd")
    if etcd is None:
        pytest.fail("etcd is not installed (./dev deps)")
    layout = installed_layout(tmp_path)
    text = units.master_units(layout, etcd_binary=etcd, port=6443, etcd=member, host=member.listen)[
        "corral-etcd.service"
    ]
    path = layout.unit_dir / "corral-etcd.service"
    path.write_text(text)
    return text, path


def _flags(text: str, prefix: str = "ExecStart=") -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return shlex.split(line.removeprefix(prefix))


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_a_first_member_serves_clients_and_peers_over_tls(tmp_path: Path) -> None:
    text, _ = _etcd_unit(tmp_path, units.EtcdMember("m1", "10.0.0.11", "0.0.0.0", 2379))
    argv = _flags(text)
    assert _value(argv, "--listen-client-urls") == "https://0.0.0.0:2379"
    assert _value(argv, "--advertise-client-urls") == "https://10.0.0.11:2379"
    assert _value(argv, "--listen-peer-urls") == "https://0.0.0.0:2380"
    assert _value(argv, "--initial-cluster") == "m1=https://10.0.0.11:2380"
    assert _value(argv, "--initial-cluster-state") == "new"
    assert "--client-cert-auth" in argv and "--peer-client-cert-auth" in argv
    assert _value(argv, "--peer-cert-file").endswith("pki/etcd/peer.crt")
    assert "ExecStartPost" not in text


def test_a_member_on_one_address_also_listens_on_loopback(tmp_path: Path) -> None:
    text, _ = _etcd_unit(tmp_path, units.EtcdMember("m1", "10.0.0.11", "10.0.0.11", 2379))
    argv = _flags(text)
    assert _value(argv, "--listen-client-urls") == ("https://127.0.0.1:2379,https://10.0.0.11:2379")
    assert _value(argv, "--listen-peer-urls") == "https://10.0.0.11:2380"


def test_a_joined_member_starts_existing_and_is_promoted(tmp_path: Path) -> None:
    cluster = "m1=https://10.0.0.11:2380,m2=https://10.0.0.12:2380"
    member = units.EtcdMember("m2", "10.0.0.12", "0.0.0.0", 2379, initial_cluster=cluster)
    text, path = _etcd_unit(tmp_path, member)
    argv = _flags(text)
    assert _value(argv, "--initial-cluster") == cluster
    assert _value(argv, "--initial-cluster-state") == "existing"
    post = _flags(text, "ExecStartPost=-")
    assert post[1:] == ["etcd-promote", "--etc-dir", str(tmp_path / "etc")]
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in verified.stderr.splitlines() if "not found" not in line]
    assert not problems, problems
