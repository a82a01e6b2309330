"""Cut one master off the network, and heal it (the fault tests).

``corral up --masters 3`` runs each master's etcd member and API server on
a simulated host of its own (a network namespace whose ``eth0`` is on the
masters' underlay). The partition is an nftables table inside that
namespace that drops everything in and out of ``eth0``: the member loses
its peers, its API server the other members, and the balancer (which
connects from the underlay) loses the API server, as a client on the
network would. Loopback inside the namespace stays open, as a host's own
does. Healing deletes the table; nothing outside the namespace is touched.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Master:
    """A master's host (up.json's ``masters.hosts``); its etcd member's and API server's pids."""

    netns: str
    ip: str
    pids: tuple[int, ...]


def table_script(name: str) -> str:
    """The nft table that drops all of a host's traffic on ``eth0``, both ways."""
    return (
        f"table inet {name} {{\n"
        "    chain in {\n"
        "        type filter hook input priority 0; policy accept;\n"
        '        iifname "eth0" drop\n'
        "    }\n"
        "    chain out {\n"
        "        type filter hook output priority 0; policy accept;\n"
        '        oifname "eth0" drop\n'
        "    }\n"
        "}\n"
    )


def _nft(netns: str, script: str) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"nft in {netns} failed: {done.stderr}\n{script}"


@contextlib.contextmanager
def partitioned(cut: Master) -> Iterator[str]:
    """``cut``'s host has no network while the block runs; healed after. The table's name."""
    name = f"corral_fault_{os.getpid()}"
    _nft(cut.netns, table_script(name))
    try:
        yield name
    finally:
        _nft(cut.netns, f"delete table inet {name}\n")
