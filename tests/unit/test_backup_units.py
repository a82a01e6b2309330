"""The backup timer that `corral install master` writes: systemd accepts it, and it runs save."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from corralctl import units
from tests.support import installed_layout


def _write(tmp_path: Path, plan: units.BackupPlan) -> tuple[units.Layout, dict[str, Path]]:
    layout = installed_layout(tmp_path)
    written = {}
    for name, text in units.backup_units(
        layout, plan, units.EtcdMember("m1", "10.0.0.1", "0.0.0.0", 2379)
    ).items():
        written[name] = layout.unit_dir / name
        written[name].write_text(text)
    return layout, written


def _verify(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True, timeout=60
    )


def test_the_timer_and_its_service_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    _, written = _write(tmp_path, units.BackupPlan(tmp_path / "backups", 7, "daily"))
    result = _verify(*written.values())
    problems = [line for line in result.stderr.splitlines() if "corral-etcd" not in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_a_schedule_systemd_cannot_read_is_caught_by_the_same_check(tmp_path: Path) -> None:
    _, written = _write(tmp_path, units.BackupPlan(tmp_path / "backups", 7, "every full moon"))
    result = _verify(written["corral-backup.timer"])
    assert result.returncode != 0 or "OnCalendar" in result.stderr, result.stderr


@pytest.mark.parametrize("keep", [1, 7, 30])
def test_the_service_saves_into_the_directory_keeping_n_with_the_keys(
    tmp_path: Path, keep: int
) -> None:
    layout, written = _write(tmp_path, units.BackupPlan(tmp_path / "mounted backups", keep))
    lines = written["corral-backup.service"].read_text().splitlines()
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[:4] == [str(layout.corral), "backup", "save", str(tmp_path / "mounted backups")]
    assert argv[argv.index("--keep") + 1] == str(keep)
    assert argv[argv.index("--pki-dir") + 1] == str(layout.pki)
    assert "[Install]\nWantedBy=timers.target" in written["corral-backup.timer"].read_text()
