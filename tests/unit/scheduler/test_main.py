"""``corral scheduler``'s command line: flags, and config mistakes caught before connecting."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.main import main, parser


def test_defaults() -> None:
    args = parser().parse_args(["--server", "http://127.0.0.1:1"])
    assert args.leader_elect == "true"
    assert (args.lease_name, args.lease_namespace) == ("corral-scheduler", "kube-system")
    assert args.leader_elect_lease_duration == 15.0
    assert args.metrics_bind_address == ""


def test_a_bad_config_file_exits_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scheduler.yaml"
    config.write_text("plugins:\n  filter:\n    enabled: [NoSuchPlugin]\n")
    assert main(["--server", "http://127.0.0.1:1", "--config", str(config)]) == 2
    assert "unknown plugin NoSuchPlugin" in capsys.readouterr().err


def test_bad_plugin_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "scheduler.yaml"
    config.write_text(
        "plugins:\n  score:\n    enabled: [{name: SelectorSpread, weight: 1}]\n"
        "pluginConfig:\n  - name: SelectorSpread\n    args: {zoneWeight: 3}\n"
    )
    assert main(["--server", "http://127.0.0.1:1", "--config", str(config)]) == 2
    assert "zoneWeight" in capsys.readouterr().err


def test_inconsistent_lease_timings_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--server", "http://127.0.0.1:1", "--leader-elect-renew-deadline", "20"]
    assert main(argv) == 2
    assert "lease duration > renew deadline" in capsys.readouterr().err
