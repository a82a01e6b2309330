from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nodeagent.network.ipam import Ipam, IpamExhausted


def test_allocations_survive_a_new_instance(tmp_path: Path) -> None:
    first = Ipam(tmp_path, "10.244.0.0/24")
    a = first.allocate("pod-a")
    b = first.allocate("pod-b")
    again = Ipam(tmp_path, "10.244.0.0/24")
    assert again.allocate("pod-a") == a
    assert again.lookup("pod-b") == b
    assert again.allocate("pod-c") not in (a, b)


def test_gateway_network_and_broadcast_are_never_given(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path, "10.244.0.0/29")
    given = {ipam.allocate(f"pod-{n}") for n in range(5)}
    assert given == {"10.244.0.2", "10.244.0.3", "10.244.0.4", "10.244.0.5", "10.244.0.6"}


def test_exhaustion_is_an_error_and_release_makes_room(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path, "10.244.0.0/30")  # one pod address: .2
    assert ipam.allocate("pod-a") == "10.244.0.2"
    with pytest.raises(IpamExhausted):
        ipam.allocate("pod-b")
    assert ipam.release("pod-a") == "10.244.0.2"
    assert ipam.release("pod-a") is None
    assert ipam.allocate("pod-b") == "10.244.0.2"


def test_a_freed_address_is_not_reused_at_once(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path, "10.244.0.0/24")
    a = ipam.allocate("pod-a")
    ipam.release("pod-a")
    assert ipam.allocate("pod-b") != a


def test_no_address_twice_under_concurrency(tmp_path: Path) -> None:
    # Two instances on one directory stand for two processes racing.
    instances = [Ipam(tmp_path, "10.244.0.0/24"), Ipam(tmp_path, "10.244.0.0/24")]
    results: dict[str, str] = {}
    lock = threading.Lock()

    def work(worker: int) -> None:
        for n in range(30):
            uid = f"pod-{worker}-{n}"
            ip = instances[worker % 2].allocate(uid)
            with lock:
                results[uid] = ip

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 240
    assert len(set(results.values())) == 240
    assert instances[0].allocations() == {uid: ip for uid, ip in results.items()}


def test_addresses_outside_the_pod_cidr_are_ignored(tmp_path: Path) -> None:
    Ipam(tmp_path, "10.244.0.0/24").allocate("pod-a")
    moved = Ipam(tmp_path, "10.244.1.0/24")
    assert moved.lookup("pod-a") is None
    assert moved.allocate("pod-a").startswith("10.244.1.")


def test_a_crashed_write_leaves_nothing_taken(tmp_path: Path) -> None:
    (tmp_path / ".tmp-1-2-10.244.0.2").write_text("ghost\n")
    ipam = Ipam(tmp_path, "10.244.0.0/24")
    assert ipam.allocate("pod-a") == "10.244.0.2"
    assert not list(tmp_path.glob(".tmp-*"))


def test_bad_uids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Ipam(tmp_path, "10.244.0.0/24").allocate("a\nb")
