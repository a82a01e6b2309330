"""An etcd member's data directory on a small tmpfs, to fill to ENOSPC (the fault tests).

The member's data is moved while the member is stopped (SIGSTOP, so no
write is under way while it is copied), a tmpfs is mounted over its data
directory with the copy inside, and the stopped member is killed: ``corral
up``'s supervisor restarts it, as it would any crashed member, and it opens
its data from the tmpfs. Filling the tmpfs then makes the member's own
writes (WAL, bbolt) fail with ENOSPC, under load, as a full disk would.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

# Room left on the tmpfs beyond the member's data when it moves there; filled
# by the fault, freed to heal it. More than a WAL segment (etcd preallocates
# 64 MiB for each) and the snapshot it may write beside it: with less, the
# healed member ran out again at its next segment under load and crash-looped,
# which a real disk with room freed would not do.
HEADROOM = 256 * 1024 * 1024
FILLER = "fill"
_CHUNK = 1024 * 1024


def _used(path: Path) -> int:
    done = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[0])


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"


@contextlib.contextmanager
def data_on_tmpfs(data: Path, pid: int, copy_to: Path) -> Iterator[Path]:
    """Member ``pid``'s ``data`` moved onto a tmpfs, and the member killed to reopen it there.

    The tmpfs is unmounted when the block ends (lazily: the member may still
    hold it open until ``corral down`` stops it).
    """
    os.kill(pid, signal.SIGSTOP)
    mounted = False
    try:
        shutil.copytree(data, copy_to, symlinks=True)
        size = _used(copy_to) + HEADROOM
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "corral-fault", str(data))
        mounted = True
        _run("cp", "-a", f"{copy_to}/.", f"{data}/")
        os.kill(pid, signal.SIGKILL)
        yield data
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # never left stopped
        if mounted:
            _run("umount", "--lazy", str(data))


def fill(directory: Path) -> int:
    """Write a file in ``directory`` until its filesystem is full; the bytes it took."""
    written = 0
    chunk = b"\0" * _CHUNK
    with open(directory / FILLER, "wb", buffering=0) as out:
        while True:
            try:
                written += out.write(chunk) or 0
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 2]  # the last pages too


def free(directory: Path) -> None:
    (directory / FILLER).unlink(missing_ok=True)
