"""vagrant/ and docker-compose.yml, checked the way their users would before sharing them.

Here, quickly: the syntax checks their own tools offer, and that the
commands they run are ones corral's CLI accepts. The compose stack also runs
for real in tests/e2e/test_compose.py (slow); the Vagrantfile cannot (no
hypervisor).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from corralctl.main import parser

ROOT = Path(__file__).resolve().parents[2]
VAGRANT = ROOT / "vagrant"


def test_the_vagrantfile_is_valid_ruby() -> None:
    if shutil.which("ruby") is None:
        pytest.skip("ruby is not installed")
    checked = subprocess.run(
        ["ruby", "-c", str(VAGRANT / "Vagrantfile")], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr


def test_the_provisioning_script_is_valid_bash() -> None:
    checked = subprocess.run(
        ["bash", "-n", str(VAGRANT / "provision.sh")], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr


def _installer_lines(script: str) -> list[str]:
    joined = script.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if '"$corral" install' in line]


def test_provisioning_runs_the_tested_installer_with_flags_it_accepts() -> None:
    lines = _installer_lines((VAGRANT / "provision.sh").read_text())
    assert {shlex.split(line)[2] for line in lines} == {"master", "minion"}
    for line in lines:
        line = line.replace('"$(cat "$join/token")"', "abcdef.0123456789abcdef")
        line = re.sub(r'"[^"]*\$[^"]*"|\$[a-z_]+', "x", line)
        argv = shlex.split(line)[1:]
        args = parser().parse_args(argv)  # exits, failing the test, on an unknown flag
        assert args.command == "install"


def test_compose_file_validates() -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    env = {**os.environ, "CORRAL_JOIN_TOKEN": "abcdef.0123456789abcdef"}
    checked = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr


def test_compose_commands_are_ones_corral_accepts() -> None:
    import yaml

    from controlplane.apiserver.main import parser as apiserver
    from controlplane.controllers.main import parser as controller_manager
    from nodeagent.main import parser as agent
    from scheduler.main import parser as scheduler

    programs = {
        "apiserver": apiserver,
        "controller-manager": controller_manager,
        "scheduler": scheduler,
        "agent": agent,
    }
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        if "entrypoint" in service:
            continue  # etcd itself
        command, *argv = service["command"]
        if command in programs:
            programs[command]().parse_args(argv)
        else:
            assert parser().parse_args(service["command"]).command == command, name
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) /src/", dockerfile, re.MULTILINE):
        for part in source.split():
            assert (ROOT / part).exists(), part


# --- docker-compose.yml: who reaches etcd, who holds which keys ----------------------

CONTROL_PLANE_NETWORK = "control-plane"
AGENTS = ("agent-1", "agent-2")
# What the cluster's secrets live in: the CAs' keys, tokens.csv, the
# Secrets encryption key. Only init writes it and only the API server reads it.
DATA_VOLUME = "corral-data"


def _compose() -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _flags(command: list[str]) -> dict[str, str]:
    """``--name=value`` and ``--name value`` arguments as one dict; bare flags map to ""."""
    flags: dict[str, str] = {}
    for i, arg in enumerate(command):
        if not arg.startswith("--"):
            continue
        name, eq, value = arg.partition("=")
        if not eq and i + 1 < len(command) and not command[i + 1].startswith("--"):
            value = command[i + 1]
        flags[name] = value
    return flags


def _named_mounts(service: dict[str, Any], volumes: set[str]) -> dict[str, tuple[str, bool]]:
    """A service's named volumes: ``{volume: (where, read_only)}``."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        if source in volumes:
            mounts[source] = (target, mode == ["ro"])
    return mounts


def _networks(service: dict[str, Any]) -> set[str]:
    return set(service.get("networks", ["default"]))


def test_compose_etcd_serves_tls_only_to_clients_with_certificates() -> None:
    etcd = _flags(_compose()["services"]["etcd"]["command"])
    assert etcd["--listen-client-urls"].startswith("https://")
    assert etcd["--advertise-client-urls"].startswith("https://")
    assert "--client-cert-auth" in etcd
    for flag in ("--trusted-ca-file", "--cert-file", "--key-file"):
        assert etcd[flag].startswith("/"), flag
    for flag in ("--listen-peer-urls", "--initial-advertise-peer-urls"):
        assert etcd[flag].startswith("http://127.0.0.1:"), flag


def test_compose_api_server_reaches_etcd_with_a_client_certificate() -> None:
    apiserver = _flags(_compose()["services"]["apiserver"]["command"])
    assert apiserver["--etcd"].startswith("https://")
    for flag in ("--etcd-cafile", "--etcd-certfile", "--etcd-keyfile"):
        assert apiserver[flag].startswith("/"), flag


def test_compose_etcd_is_on_a_network_only_the_control_plane_joins() -> None:
    compose = _compose()
    services = compose["services"]
    assert _networks(services["etcd"]) == {CONTROL_PLANE_NETWORK}
    assert compose["networks"][CONTROL_PLANE_NETWORK].get("internal") is True
    on_it = {name for name, s in services.items() if CONTROL_PLANE_NETWORK in _networks(s)}
    assert on_it == {"etcd", "apiserver", "scheduler", "controller-manager"}
    for agent in AGENTS:
        assert _networks(services[agent]) == {"default"}, agent


def test_compose_only_init_and_the_api_server_mount_the_cluster_secrets() -> None:
    compose = _compose()
    volumes = set(compose["volumes"])
    holders = {
        name: _named_mounts(service, volumes)[DATA_VOLUME]
        for name, service in compose["services"].items()
        if DATA_VOLUME in _named_mounts(service, volumes)
    }
    assert holders == {"init": ("/data", False), "apiserver": ("/data", True)}
    for agent in AGENTS:
        service = compose["services"][agent]
        assert {v: ro for v, (_, ro) in _named_mounts(service, volumes).items()} == {
            "corral-node-ca": True
        }
        # Nothing else of the control plane's either: no other volume, no bind of it.
        assert not any(":/data" in entry for entry in service["volumes"]), agent
    for name in ("etcd", "scheduler", "controller-manager"):
        mounts = _named_mounts(compose["services"][name], volumes)
        written = {"etcd": {"corral-etcd-data"}}.get(name, set())
        assert {v for v, (_, ro) in mounts.items() if not ro} == written, name


def _init_into(root: Path) -> dict[str, Path]:
    """Run compose's ``init`` command with each of its volumes a directory under ``root``.

    The container's file system is ``root/fs``, where each mount point is a
    link to its volume's directory.
    """
    compose = _compose()
    volumes = set(compose["volumes"])
    init = compose["services"]["init"]
    fs = root / "fs"
    for volume, (target, _) in _named_mounts(init, volumes).items():
        (root / volume).mkdir(parents=True)
        (fs / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (fs / target.lstrip("/")).symlink_to(root / volume)
    command = [str(fs / arg.lstrip("/")) if arg.startswith("/") else arg for arg in init["command"]]
    ran = subprocess.run(
        [sys.executable, "-m", "corralctl.main", *command],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return {volume: root / volume for volume in volumes}


def test_compose_services_find_every_file_they_name_where_init_put_it(tmp_path: Path) -> None:
    """Each path a service's command names inside a volume exists once init has run."""
    compose = _compose()
    volumes = set(compose["volumes"])
    written = _init_into(tmp_path)
    checked = 0
    for name, service in compose["services"].items():
        if name == "init":
            continue
        mounts = _named_mounts(service, volumes)
        for value in _flags(service["command"]).values():
            for volume, (target, read_only) in mounts.items():
                if value.startswith(target + "/") and read_only:
                    assert (written[volume] / value[len(target) + 1 :]).is_file(), (name, value)
                    checked += 1
    assert checked >= 15
