"""How many cores this process may use: the default number of API server workers.

``os.cpu_count()`` counts the machine's cores, not the ones this process
may run on: a container or a systemd unit limited by a CPU set or a cgroup
quota would start more workers than it has cores, and each extra worker
only adds a watch cache's memory and context switches. So the count is the
CPU affinity set, lowered to the cgroup v2 quota (``cpu.max``) rounded up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(cgroup_root: Path = CGROUP_ROOT, proc_self: Path = Path("/proc/self")) -> int:
    """The cores this process may run on, at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_quota(cgroup_root, proc_self)
    if quota is not None:
        cpus = min(cpus, quota)
    return max(1, cpus)


def cgroup_quota(cgroup_root: Path, proc_self: Path) -> int | None:
    """The cgroup v2 CPU quota in whole cores (rounded up), or None when unlimited or unknown."""
    try:
        lines = (proc_self / "cgroup").read_text().splitlines()
    except OSError:
        return None
    # cgroup v2 has one line, "0::/path"; v1 hierarchies are not read.
    paths = [line.split(":", 2)[2] for line in lines if line.startswith("0::")]
    if not paths:
        return None
    try:
        text = (cgroup_root / paths[0].lstrip("/") / "cpu.max").read_text()
    except OSError:
        return None
    return parse_cpu_max(text)


def parse_cpu_max(text: str) -> int | None:
    """``"max 100000"`` -> None; ``"150000 100000"`` -> 2."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))
