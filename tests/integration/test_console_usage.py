"""The console's usage charts in a real headless Chromium, fed by a real (hollow) agent.

The charts poll /usage every few seconds; the agent reports every second,
so the CPU line of a node and of a pod must change while the page is open.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corralctl.processes import ManagedProcess, free_port
from tests.conftest import LocalCluster
from tests.integration.test_console import (  # noqa: F401 - fixtures used by name
    _click,
    _csp_violations,
    _screenshot,
    _sign_in,
    _wait,
    browser,
    console_cluster,
)
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PODS, NODES = REGISTRY.resolve("pods"), REGISTRY.resolve("nodes")
NODE = "usage-node"


def _points(driver: Any, selector: str) -> str:
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e && e.getAttribute('points');",
        selector,
    )
    return str(found or "")


async def test_the_console_charts_node_and_pod_usage_as_it_changes(
    console_cluster: LocalCluster,  # noqa: F811 - the fixture imported above
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    cluster = console_cluster
    assert PODS and NODES
    agent = ManagedProcess(
        NODE,
        [
            sys.executable, "-m", "nodeagent", *cluster.agent_args(NODE),
            "--runtime", "hollow",
            "--data-dir", str(tmp_path / "agent"),
            "--listen-port", str(free_port()),
            "--usage-interval", "1",
        ],
        tmp_path / "agent.log",
    )  # fmt: skip
    agent.start()
    try:
        async with Client(cluster.client_config()) as client:
            pod = {
                "metadata": {"name": "burn"},
                "spec": {
                    "nodeName": NODE,
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1",
                            "resources": {"requests": {"cpu": "300m"}},
                        }
                    ],
                },
            }
            await client.create(PODS, pod, "default")

            async def running() -> bool:
                got = await client.get(PODS, "burn", "default")
                return (got.get("status") or {}).get("phase") == "Running"

            await eventually(running, timeout=60, message="the pod runs on the hollow agent")

        _sign_in(browser, cluster, cluster.pki.admin_token())
        browser.get(f"{cluster.url}/ui/#nodes")
        node_line = "#view .card polyline.cpu"
        first = _wait(browser, lambda d: _points(d, node_line))
        _wait(browser, lambda d: _points(d, node_line) not in ("", first), timeout=20)
        _screenshot(browser, tmp_path, "console-usage-nodes.png")

        _click(browser, "nav a[href='#pods']")
        pod_line = "tr[data-pod='default/burn'] polyline.cpu"
        first = _wait(browser, lambda d: _points(d, pod_line))
        _wait(browser, lambda d: _points(d, pod_line) not in ("", first), timeout=20)
        caption = browser.execute_script(
            "return document.querySelector(arguments[0]).textContent",
            "tr[data-pod='default/burn'] figcaption b",
        )
        assert 250 <= int(caption.removesuffix("m")) <= 350, caption
        assert _csp_violations(browser) == []
    finally:
        agent.stop()
