"""A real scheduler process reacts to cluster events: pods that came before any node."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from corral.client.rest import Client
from corral.objects import Obj
from corralctl.processes import ManagedProcess, free_port
from tests.conftest import LocalCluster
from tests.integration.test_scheduler_processes import scheduler_process
from tests.support import eventually, resource
from tests.unit.scheduler.builders import node

PODS = resource("pods")
NODES = resource("nodes")


def _pod(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
    }


def _scheduled_message(obj: Obj) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "PodScheduled":
            return str(condition.get("message") or "")
    return None


async def test_a_pod_that_came_before_the_nodes_is_placed_when_one_joins(
    cluster_factory: Any, tmp_path: Path
) -> None:
    local: LocalCluster = cluster_factory()
    async with Client(local.client_config()) as client:
        with scheduler_process(local, tmp_path / "scheduler.log", "--leader-elect", "false"):
            await client.create(PODS, _pod("early"), "default")

            async def explained() -> str | None:
                message = _scheduled_message(await client.get(PODS, "early", "default"))
                return message or None

            message = await eventually(explained, timeout=30, message="the 0/0 explanation")
            assert message.startswith("0/0 nodes are available")
            await client.create(NODES, node("joined", ready=False))
            ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
            await client.patch(NODES, "joined", ready, subresource="status")

            async def bound() -> str | None:
                obj = await client.get(PODS, "early", "default")
                return (obj.get("spec") or {}).get("nodeName") or None

            # Far below the 5-minute bound for unschedulable pods: the join moved it.
            assert await eventually(bound, timeout=20, message="the bind") == "joined"


@pytest.mark.parametrize("lifecycle", [False, True], ids=["agent", "agent-and-taints"])
async def test_a_pod_that_came_before_the_nodes_lands_on_a_real_agent_that_joins(
    cluster_factory: Any, tmp_path: Path, lifecycle: bool
) -> None:
    local: LocalCluster = cluster_factory()
    # With the node lifecycle controller, the joining node is tainted
    # not-ready until its agent reports Ready, and the taint is then lifted.
    controllers = ManagedProcess(
        "controller-manager",
        [
            sys.executable, "-m", "controlplane", "controller-manager",
            "--kubeconfig", str(local.component_kubeconfig("controller-manager")),
            "--controllers", "nodelifecycle", "--leader-elect", "false",
        ],
        tmp_path / "controller-manager.log",
    )  # fmt: skip
    if lifecycle:
        controllers.start()
    agent = ManagedProcess(
        "joiner",
        [
            sys.executable, "-m", "nodeagent", *local.agent_args("joiner"),
            "--runtime", "hollow",
            "--data-dir", str(tmp_path / "joiner"),
            "--listen-port", str(free_port()),
        ],
        tmp_path / "joiner.log",
    )  # fmt: skip
    async with Client(local.client_config()) as client:
        with scheduler_process(local, tmp_path / "scheduler.log", "--leader-elect", "false"):
            await client.create(PODS, _pod("early"), "default")

            async def explained() -> str | None:
                message = _scheduled_message(await client.get(PODS, "early", "default"))
                return message or None

            message = await eventually(explained, timeout=30, message="the 0/0 explanation")
            assert message.startswith("0/0 nodes are available")
            agent.start()
            try:

                async def bound() -> str | None:
                    obj = await client.get(PODS, "early", "default")
                    return (obj.get("spec") or {}).get("nodeName") or None

                assert await eventually(bound, timeout=40, message="the bind") == "joiner"
            finally:
                agent.stop()
                controllers.stop()
