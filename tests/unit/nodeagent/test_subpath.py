"""subPath resolution against the symlink tricks of CVE-2017-1002101 and CVE-2021-25741.

These mount for real (bind mounts under pytest's temporary directory), so
they need root, which the suite runs as.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.subpath import SubPathError, bind_beneath, mount_points, open_beneath, release

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
MS_BIND = 4096

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


def _mounted(path: Path) -> bool:
    return str(path) in mount_points()


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "volume"
    root.mkdir()
    yield root
    release(tmp_path / "staging")


@pytest.fixture
def secret_outside(tmp_path: Path) -> Path:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "shadow").write_text("host secret")
    return outside


def test_a_plain_subpath_is_bind_mounted(volume: Path, tmp_path: Path) -> None:
    (volume / "conf").mkdir()
    (volume / "conf" / "app.ini").write_text("x=1")
    staged = bind_beneath(volume, "conf", tmp_path / "staging" / "c" / "0")
    assert _mounted(staged)
    assert (staged / "app.ini").read_text() == "x=1"


def test_a_missing_subpath_is_created_inside_the_volume(volume: Path, tmp_path: Path) -> None:
    staged = bind_beneath(volume, "logs/app", tmp_path / "staging" / "c" / "0")
    assert (volume / "logs" / "app").is_dir()
    (staged / "out").write_text("written through the mount")
    assert (volume / "logs" / "app" / "out").read_text() == "written through the mount"


def test_a_planted_symlink_cannot_reach_outside(
    volume: Path, secret_outside: Path, tmp_path: Path
) -> None:
    # CVE-2017-1002101: the volume's own content is a link to the host.
    (volume / "escape").symlink_to(secret_outside)
    with pytest.raises(SubPathError, match="symlink"):
        bind_beneath(volume, "escape", tmp_path / "staging" / "c" / "0")
    with pytest.raises(SubPathError, match="symlink"):
        bind_beneath(volume, "escape/shadow", tmp_path / "staging" / "c" / "1")
    assert not _mounted(tmp_path / "staging" / "c" / "0")


def test_a_symlink_swapped_in_after_the_check_changes_nothing(
    volume: Path, secret_outside: Path, tmp_path: Path
) -> None:
    # CVE-2021-25741: a directory checked, then replaced by a link before
    # the mount. The mount is of the descriptor opened during the check, so
    # what is mounted is the original directory, wherever the name now points.
    (volume / "data").mkdir()
    (volume / "data" / "mine").write_text("pod data")
    fd = open_beneath(volume, "data")
    try:
        (volume / "data").rename(volume / "moved")
        (volume / "data").symlink_to(secret_outside)
        mounted = tmp_path / "staging" / "c" / "0"
        mounted.mkdir(parents=True)
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        assert (
            libc.mount(f"/proc/self/fd/{fd}".encode(), str(mounted).encode(), None, 4096, None) == 0
        )
    finally:
        os.close(fd)
    assert (mounted / "mine").read_text() == "pod data"
    assert not (mounted / "shadow").exists()
    # And asked again now, the link is refused outright.
    with pytest.raises(SubPathError):
        bind_beneath(volume, "data", tmp_path / "staging" / "c" / "1")


@pytest.mark.parametrize("bad", ["/etc", "../host", "a/../../host", ".", ""])
def test_absolute_and_parent_paths_are_refused(volume: Path, tmp_path: Path, bad: str) -> None:
    with pytest.raises(SubPathError):
        bind_beneath(volume, bad, tmp_path / "staging" / "c" / "0")


def test_release_unmounts_everything(volume: Path, tmp_path: Path) -> None:
    (volume / "a").mkdir()
    (volume / "b").write_text("file")
    one = bind_beneath(volume, "a", tmp_path / "staging" / "c" / "0")
    two = bind_beneath(volume, "b", tmp_path / "staging" / "c" / "1")
    assert two.read_text() == "file"
    release(tmp_path / "staging")
    assert not _mounted(one) and not _mounted(two)
