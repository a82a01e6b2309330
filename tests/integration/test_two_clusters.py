"""``corral up`` refuses a clash with another local cluster's names before starting anything."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from corralctl import localcluster, localnames
from corralctl.processes import free_port


def test_a_clashing_flag_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {**os.environ, localnames.REGISTRY_ENV: str(tmp_path / "registry")}
    os.environ[localnames.REGISTRY_ENV] = env[localnames.REGISTRY_ENV]
    try:
        first = localnames.choose(
            argparse.Namespace(
                node_name=None, bridge_name=None, cluster_cidr=None, service_cidr=None,
                no_agent=False, pod_network="bridge", simulated_hosts=0,
            ),
            tmp_path / "a",
        )  # fmt: skip
    finally:
        del os.environ[localnames.REGISTRY_ENV]
    second = tmp_path / "b"
    done = subprocess.run(
        [
            sys.executable, "-m", "corralctl.main", "up",
            "--data-dir", str(second), "--port", str(free_port()),
            "--bridge-name", first.bridge, "--cluster-cidr", "10.244.128.0/17",
        ],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    error = done.stderr
    assert "another local cluster is in the way" in error, error
    assert f"bridge {first.bridge} is the local cluster {first.id}" in error, error
    assert "--bridge-name" in error and "--cluster-cidr 10.244.128.0/17 overlaps" in error, error
    # Nothing was started or recorded for it.
    assert sorted(p.name for p in second.iterdir()) == [], list(second.iterdir())
    assert localcluster.leftover_processes(second) == {}
