"""A controller manager whose work crashes exits non-zero, with the traceback on record."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from corral.client.rest import Client
from tests.conftest import LocalCluster, unique_name
from tests.support import resource

pytestmark = pytest.mark.integration

LEASES = resource("leases")

# A controller manager with one more controller, "crash", whose run fails at
# once, as a controller with a bug would.
CRASHING_MANAGER = """
import sys

from controlplane.controllers import main, registry


class Crash:
    def __init__(self, ctx):
        pass

    async def run(self, stop):
        raise RuntimeError("the crash this test asked for")


registry.CONTROLLERS["crash"] = Crash
sys.exit(main.main(sys.argv[1:]))
"""


async def _run_crashing_manager(kubeconfig: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_MANAGER,
        "--kubeconfig",
        str(kubeconfig),
        "--controllers",
        "crash",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("the controller manager did not exit after its work crashed") from None
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_the_elected_leader_exits_non_zero_with_the_traceback_and_hands_back_the_lease(
    cluster: LocalCluster,
) -> None:
    lease = unique_name("crash-lease")
    code, output = await _run_crashing_manager(
        cluster.component_kubeconfig("controller-manager"),
        "--lease-name",
        lease,
        "--identity",
        "crasher",
    )
    assert code != 0, output
    assert "Traceback (most recent call last)" in output
    assert "RuntimeError: the crash this test asked for" in output
    async with Client(cluster.client_config()) as client:
        held = await client.get(LEASES, lease, "kube-system")
    # Handed back, so a standby need not wait out the lease of a dead leader.
    assert held["spec"]["holderIdentity"] == ""


async def test_without_leader_election_the_crash_also_ends_the_process(
    cluster: LocalCluster,
) -> None:
    code, output = await _run_crashing_manager(
        cluster.component_kubeconfig("controller-manager"), "--leader-elect", "false"
    )
    assert code != 0, output
    assert "RuntimeError: the crash this test asked for" in output
