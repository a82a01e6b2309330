"""A second leader-elected candidate whose wall clock jumps (the fault tests).

``corral up --masters 3`` runs one controller manager and one scheduler.
For the clock fault the test starts a second copy of one of them, as another
master would run it: the same command line (read from ``/proc``), its own
metrics port, under libfaketime with an offset read from a file, so the
test can move that process's wall clock (CLOCK_REALTIME) by an hour and
back while it runs. The monotonic clock is left alone, as a real clock step
(NTP, an operator's ``date -s``) leaves it.

Each copy says whether it believes it leads through its
``leader_election_master_status`` metric, sampled by the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
_STATUS = re.compile(r'^leader_election_master_status\{name="([^"]*)"\} (\S+)$', re.MULTILINE)


def command_line(pid: int) -> list[str]:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")[:-1]


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced (or the flag added)."""
    if flag in argv:
        at = argv.index(flag)
        return [*argv[: at + 1], value, *argv[at + 2 :]]
    return [*argv, flag, value]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def set_offset(clock: Path, seconds: int) -> None:
    """Move the faked process's wall clock to ``seconds`` from the real one."""
    staged = clock.with_suffix(".new")
    staged.write_text(f"{seconds:+d}\n")
    os.replace(staged, clock)  # never a half-written file for libfaketime to read


@contextlib.contextmanager
def faked_copy(argv: list[str], clock: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` started under libfaketime, its offset in ``clock``; stopped when the block ends."""
    if not LIBFAKETIME.exists():
        # ./dev deps installs it: a machine without it is a gap, not a pass.
        pytest.fail(f"{LIBFAKETIME} missing: ./dev deps, or apt-get install faketime")
    set_offset(clock, 0)
    env = {
        **os.environ,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_NO_CACHE": "1",  # read the file on every call: the jump is immediate
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def leads(metrics_url: str, lease: str, ca: Path) -> bool | None:
    """Whether the process behind ``metrics_url`` believes it leads ``lease``; None: no answer."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(metrics_url, timeout=2.0, context=context) as response:
            text = response.read().decode()
    except OSError:
        return None
    values = {name: float(value) for name, value in _STATUS.findall(text)}
    if lease not in values:
        return None
    return values[lease] == 1.0
