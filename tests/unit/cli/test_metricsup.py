"""corral up's metrics addresses: chosen once and kept, printed, and recorded in up.json."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from corralctl import localcluster, metricsup


@dataclass
class _Startup:
    args: argparse.Namespace
    data_dir: Path


def test_ports_are_chosen_once_and_kept(tmp_path: Path) -> None:
    first = metricsup.ports(tmp_path)
    assert set(first) == set(metricsup.COMPONENTS)
    assert len(set(first.values())) == len(first)
    assert metricsup.ports(tmp_path) == first
    assert metricsup.api_args(tmp_path) == ["--metrics-port", str(first["apiserver"])]


def test_report_prints_and_records_keeping_the_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    localcluster.write_state(tmp_path, {"pid": 1, "nodes": ["n"]})
    startup = _Startup(argparse.Namespace(host="0.0.0.0"), tmp_path)
    served = metricsup.report(startup, agent=False)
    chosen = metricsup.ports(tmp_path)
    assert served == {
        component: f"https://127.0.0.1:{chosen[component]}/metrics"
        for component in ("apiserver", "controller-manager", "scheduler")
    }
    state = json.loads((tmp_path / localcluster.STATE_FILE).read_text())
    assert state["metrics"] == served and state["pid"] == 1 and state["nodes"] == ["n"]
    printed = capsys.readouterr().out
    assert all(url in printed for url in served.values())
    assert "agent" not in served
    assert "agent" in metricsup.report(startup, agent=True)
