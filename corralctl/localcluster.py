"""What a ``corral up`` leaves on this machine for others to find: its data dir,
pid file, state file and the processes it started.

``corral up`` writes its pid to ``corral-up.pid`` while it runs, and to
``up.json``, before it makes them, what it will need removed: the Docker its
agents use, their node names and data dirs, corral's own Docker root if it
ran one, and the simulated hosts' prefix. Every process it starts carries
``CORRAL_UP_DATA_DIR`` in its environment, so a child that outlived a killed
``corral up`` can still be found. ``corral up`` refuses to start over what
these show still running; ``corral down`` removes it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PID_FILE = "corral-up.pid"
STATE_FILE = "up.json"
ENV_MARKER = "CORRAL_UP_DATA_DIR"


def default_data_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/corral"
    return str(Path.home() / ".local" / "share" / "corral")


# --- what corral up records -------------------------------------------------------------


def write_state(data_dir: Path, state: dict[str, Any]) -> None:
    partial = data_dir / f"{STATE_FILE}.partial"
    partial.write_text(json.dumps(state, indent=1) + "\n")
    partial.rename(data_dir / STATE_FILE)


def read_state(data_dir: Path) -> dict[str, Any]:
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


# --- the processes it started -----------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def is_corral_up(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a ``corral up`` with this data dir (a pid file can be stale)."""
    argv = _cmdline(pid)
    if "up" not in argv or not any("corral" in part for part in argv):
        return False
    given: str | None = None
    for index, part in enumerate(argv):
        if part == "--data-dir" and index + 1 < len(argv):
            given = argv[index + 1]
        elif part.startswith("--data-dir="):
            given = part.split("=", 1)[1]
    if given is None:
        given = default_data_dir()
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return (cwd / given).resolve() == data_dir.resolve()


def running_up(data_dir: Path) -> int | None:
    """The pid of the ``corral up`` that runs with this data dir, if one does."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid() or not _alive(pid) or not is_corral_up(pid, data_dir):
        return None
    return pid


def leftover_processes(data_dir: Path) -> dict[int, str]:
    """Processes started by a ``corral up`` of this data dir: pid to command name."""
    marker = f"{ENV_MARKER}={data_dir.resolve()}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if _alive(int(entry.name)):
            found[int(entry.name)] = name
    return found


def leftover_processes_named(data_dir: Path, prefixes: tuple[str, ...]) -> dict[int, str]:
    return {
        pid: name for pid, name in leftover_processes(data_dir).items() if name.startswith(prefixes)
    }


def agents_on_hosts(prefix: str) -> list[int]:
    """Agents whose host side is a namespace of ``prefix``: whoever uses those hosts."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        for flag, value in itertools.pairwise(argv):
            if flag == "--network-netns" and value.startswith(f"{prefix}-"):
                found.append(int(entry.name))
                break
    return sorted(found)


def stop_pids(pids: Iterable[int], timeout: float) -> None:
    """SIGTERM, then SIGKILL whatever is left after ``timeout``."""
    pending = set(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if _alive(pid)}
        time.sleep(0.1)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
