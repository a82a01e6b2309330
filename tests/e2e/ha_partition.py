"""Cut one master off from the others on a shared loopback, and heal it (the fault tests).

``corral up --masters 3`` runs every master on this machine's loopback, so
there is no link to pull: the partition is an nftables table of our own on
``lo``. Traffic on a master's *listening* ports is told apart by port. Its
*outgoing* connections (an etcd member dialling a peer, its API server
dialling etcd) come from ephemeral ports of a shared address, so those are
told apart by the process: the master's etcd member and API server are moved
into a cgroup of their own and the table drops what sockets of that cgroup
send to the other masters. A socket keeps the cgroup it was made in, so the
connections they held before the move are listed (``ss``) and cut by port;
what they dial afterwards belongs to the cgroup.

What stays open: the balancer (and clients) still reach the cut-off API
server, as a balancer outside the masters' network would. That is the hard
case for readiness: the server answers, but its etcd has no quorum.

Only the named ports are touched, only on ``lo``, and the table, the cgroup
and the processes' membership are undone however the fault ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# cgroup v2, where a hybrid host mounts it; nft resolves a socket's cgroup path
# under /sys/fs/cgroup, so it runs with this mounted there in a private mount
# namespace (the host's own mounts are not changed).
CGROUP2 = Path("/sys/fs/cgroup/unified")
_SS_LINE = re.compile(r"\S+:(\d+)\s+\S+:(?:\d+|\*)\s+users:\(\((.*)\)\)")
_PID = re.compile(r"pid=(\d+)")


@dataclass(frozen=True)
class Master:
    """One master's ports (``ports.json``) and the pids of its etcd member and API server."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    pids: tuple[int, ...]


def _cgroup2() -> Path:
    for candidate in (CGROUP2, Path("/sys/fs/cgroup")):
        if (candidate / "cgroup.procs").exists() and (candidate / "cgroup.controllers").exists():
            return candidate
    raise AssertionError("no cgroup v2 hierarchy mounted: cannot tell a master's sockets apart")


def _nft(script: str, cgroup_root: Path) -> None:
    # A private mount namespace: there /sys/fs/cgroup is the v2 hierarchy, as nft expects.
    mount = ""
    if cgroup_root != Path("/sys/fs/cgroup"):
        mount = f"mount --bind {cgroup_root} /sys/fs/cgroup && "
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f"{mount}nft -f -"],
        input=script,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"nft failed: {done.stderr}\n{script}"


def _sockets(pids: tuple[int, ...], *state: str) -> set[int]:
    """The local ports of ``pids``' TCP sockets in ``state`` (``ss``'s filter)."""
    listed = subprocess.run(["ss", "-tnpH", *state], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    ports = set()
    for line in listed.stdout.splitlines():
        match = _SS_LINE.search(line)
        if match is not None and {int(p) for p in _PID.findall(match.group(2))} & set(pids):
            ports.add(int(match.group(1)))
    return ports


def held_connections(pids: tuple[int, ...]) -> set[int]:
    """The local ports of the connections ``pids`` dialled (not accepted) and hold now."""
    listening = _sockets(pids, "state", "listening")
    return _sockets(pids, "state", "established") - listening


def _move(pids: tuple[int, ...], cgroup: Path) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, OSError):
            # A process that died meanwhile (and was restarted) is not ours to move.
            (cgroup / "cgroup.procs").write_text(f"{pid}\n")


def table_script(name: str, cgroup: str, cut: Master, others: list[Master], held: set[int]) -> str:
    """The nft table that cuts ``cut`` off from ``others`` on lo (see the module's docstring)."""
    others_ports = ", ".join(str(p) for o in others for p in (o.etcd_client, o.etcd_peer))
    rules = [
        # Peers dialling the cut-off member, and its answers.
        f"tcp dport {cut.etcd_peer} drop",
        f"tcp sport {cut.etcd_peer} drop",
        # What the cut-off member and API server dial from now on.
        f'socket cgroupv2 level 1 "{cgroup}" tcp dport {{ {others_ports} }} drop',
    ]
    if held:
        # Their connections from before the move, matched by both ends: an
        # ephemeral port alone may be reused by anyone's next connection.
        ports = ", ".join(str(p) for p in sorted(held))
        rules += [
            f"tcp sport {{ {ports} }} tcp dport {{ {others_ports} }} drop",
            f"tcp sport {{ {others_ports} }} tcp dport {{ {ports} }} drop",
            f"tcp sport {{ {ports} }} tcp dport {cut.etcd_client} accept",
        ]
    rules += [
        # Other API servers reach only the etcd of their side.
        f'tcp dport {cut.etcd_client} socket cgroupv2 level 1 "{cgroup}" accept',
        f"tcp dport {cut.etcd_client} drop",
    ]
    body = "\n".join(f'        oifname "lo" {rule}' for rule in rules)
    return (
        f"table inet {name} {{\n"
        "    chain out {\n"
        "        type filter hook output priority 0; policy accept;\n"
        f"{body}\n"
        "    }\n"
        "}\n"
    )


@contextlib.contextmanager
def partitioned(cut: Master, others: list[Master]) -> Iterator[str]:
    """``cut`` cannot reach ``others`` (nor they it) while the block runs; healed after."""
    root = _cgroup2()
    name = f"corral_fault_{os.getpid()}"
    cgroup = root / name
    cgroup.mkdir()
    table_made = False
    try:
        _move(cut.pids, cgroup)
        held = held_connections(cut.pids)
        _nft(table_script(name, name, cut, others, held), root)
        table_made = True
        yield name
    finally:
        if table_made:
            _nft(f"delete table inet {name}\n", root)
        _move(cut.pids, root)
        with contextlib.suppress(OSError):
            cgroup.rmdir()
