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
from pathlib import Path

import pytest

from corral.cli.main import parser

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
