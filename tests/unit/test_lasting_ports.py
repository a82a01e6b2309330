"""Ports corral up saves and binds again on restart: below the kernel's ephemeral range."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from corralctl import processes


def test_the_floor_is_read_from_the_kernels_range(tmp_path: Path) -> None:
    custom = tmp_path / "range"
    custom.write_text("40000\t60999\n")
    assert processes.ephemeral_floor(custom) == 40000
    custom.write_text("garbage")
    assert processes.ephemeral_floor(custom) == 32768
    assert processes.ephemeral_floor(tmp_path / "absent") == 32768


def test_lasting_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    ports = processes.lasting_ports(12, rng=random.Random(7))
    assert len(set(ports)) == 12
    assert all(20000 <= port < processes.ephemeral_floor() for port in ports)
    for port in ports:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_a_port_held_by_a_listener_is_never_chosen() -> None:
    seed_ports = processes.lasting_ports(3, rng=random.Random(11))
    with socket.socket() as held:
        held.bind(("127.0.0.1", seed_ports[0]))
        held.listen()
        again = processes.lasting_ports(3, rng=random.Random(11))
    assert seed_ports[0] not in again
