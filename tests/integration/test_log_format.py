"""--log-format json with real processes: every line each component writes is a JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.conftest import LocalCluster


def _json_lines(text: str, component: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, f"{component} wrote nothing"
    parsed = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"{component} wrote a line that is not JSON: {line!r}") from None
        assert {"ts", "level", "logger", "msg"} <= set(entry), line
        assert isinstance(entry["ts"], float)
        parsed.append(entry)
    return parsed


def _run_for(argv: list[str], seconds: float, log: Path) -> str:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        time.sleep(seconds)
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return log.read_text()


def test_the_api_server_logs_json_lines(cluster_factory: Callable[..., LocalCluster]) -> None:
    local = cluster_factory(apiserver_args=("--log-format", "json", "--log-level", "debug"))
    with urllib.request.urlopen(f"{local.url}/healthz", context=local.ssl_context()) as response:
        assert response.status == 200
    entries = _json_lines(local.apiserver.log_path.read_text(), "the API server")
    assert any(str(e["logger"]).startswith("controlplane") for e in entries)


def test_controllers_scheduler_and_agent_log_json_lines(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    kubeconfig = str(cluster.kubeconfig)
    components = {
        "controller-manager": [sys.executable, "-m", "controlplane", "controller-manager"],
        "scheduler": [sys.executable, "-m", "scheduler", "--leader-elect", "false"],
    }
    for name, argv in components.items():
        output = _run_for(
            [*argv, "--kubeconfig", kubeconfig, "--log-format", "json", "--log-level", "debug"],
            4,
            tmp_path / f"{name}.log",
        )
        _json_lines(output, name)
    agent = [
        sys.executable, "-m", "nodeagent", "--server", "http://127.0.0.1:1",
        "--runtime", "hollow", "--network", "none", "--data-dir", str(tmp_path / "agent"),
        "--log-format", "json",
    ]  # fmt: skip
    entries = _json_lines(_run_for(agent, 3, tmp_path / "agent.log"), "the agent")
    assert any(e["level"] == "warning" for e in entries)
