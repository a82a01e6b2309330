"""Local clusters' own names and ranges: chosen, recorded, reused, refused."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import pytest

from corralctl import localcluster, localnames
from corralctl.localnames import NameConflict, choose


@pytest.fixture(autouse=True)
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "registry"
    monkeypatch.setenv(localnames.REGISTRY_ENV, str(directory))
    return directory


def _args(**given: object) -> argparse.Namespace:
    flags: dict[str, object] = {
        "node_name": None,
        "bridge_name": None,
        "cluster_cidr": None,
        "service_cidr": None,
        "no_agent": False,
        "pod_network": "bridge",
        "simulated_hosts": 0,
    }
    return argparse.Namespace(**{**flags, **given})


def test_the_first_cluster_keeps_the_defaults_and_the_next_gets_its_own(tmp_path: Path) -> None:
    first = choose(_args(simulated_hosts=2), tmp_path / "a")
    assert (first.slot, first.bridge, first.cluster_cidr, first.service_cidr) == (
        0, "crl0", "10.244.0.0/16", "10.96.0.0/16",
    )  # fmt: skip
    assert first.node_name == socket.gethostname()
    assert first.simulated_prefix == "crl-sim"
    second = choose(_args(simulated_hosts=1), tmp_path / "b")
    assert second.slot == 1 and second.id != first.id
    assert second.node_name == f"{socket.gethostname()}-{second.id}"
    assert (second.bridge, second.cluster_cidr, second.service_cidr) == (
        "crl1", "10.245.0.0/16", "10.97.0.0/16",
    )  # fmt: skip
    assert second.simulated_prefix == "crl-sim1"
    recorded = localcluster.read_state(tmp_path / "b")[localnames.STATE_KEY]
    assert recorded["id"] == second.id == localnames.cluster_id(tmp_path / "b")


def test_a_restart_reuses_what_was_recorded(tmp_path: Path) -> None:
    choose(_args(), tmp_path / "a")
    second = choose(_args(pod_network="none"), tmp_path / "b")
    # The first one is gone (purged): its slot is free, but b keeps its own.
    assert localnames.unregister(tmp_path / "a")
    again = choose(_args(pod_network="none"), tmp_path / "b")
    assert (again.slot, again.node_name, again.cluster_cidr) == (
        second.slot, second.node_name, second.cluster_cidr,
    )  # fmt: skip


def test_a_deleted_data_dir_frees_its_names(tmp_path: Path) -> None:
    choose(_args(), tmp_path / "a")
    (tmp_path / "a" / localcluster.STATE_FILE).unlink()
    assert choose(_args(), tmp_path / "b").slot == 0


def test_an_explicit_clash_is_refused_naming_the_flag(tmp_path: Path) -> None:
    choose(_args(pod_network="none", node_name="n1"), tmp_path / "a")
    with pytest.raises(NameConflict, match=r"node name n1 is used by .* --node-name"):
        choose(_args(pod_network="none", node_name="n1"), tmp_path / "b")
    assert not (tmp_path / "b" / localcluster.STATE_FILE).exists()


def test_two_pod_networks_in_the_machines_namespace_keep_apart(tmp_path: Path) -> None:
    first = choose(_args(), tmp_path / "a")
    second = choose(_args(), tmp_path / "b")
    assert (first.bridge, first.nft_table) == ("crl0", "corral")
    assert (second.bridge, second.nft_table) == ("crl1", "corral1")
    # A bridge or range given that is the other's is refused, naming the flag.
    with pytest.raises(NameConflict, match=r"bridge crl0 is .*--bridge-name"):
        choose(_args(bridge_name="crl0"), tmp_path / "c")
    with pytest.raises(NameConflict, match=r"--cluster-cidr 10.244.0.0/17 overlaps 10.244.0.0/16"):
        choose(_args(cluster_cidr="10.244.0.0/17"), tmp_path / "c")


def test_a_data_dir_from_before_ids_keeps_the_default_ranges(tmp_path: Path) -> None:
    (tmp_path / "a" / "etcd").mkdir(parents=True)
    localcluster.write_state(tmp_path / "a", {"nodes": ["vm"]})
    mine = choose(_args(), tmp_path / "a")
    assert (mine.slot, mine.cluster_cidr) == (0, "10.244.0.0/16")
    # And a new cluster beside one on the defaults gets others.
    other = choose(_args(simulated_hosts=1), tmp_path / "b")
    assert other.cluster_cidr == "10.245.0.0/16"
    entry = json.loads((localnames.registry_dir() / f"{other.id}.json").read_text())
    assert entry["data_dir"] == str(tmp_path / "b")


def test_busy_ports_are_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert localnames.busy_ports("127.0.0.1", [port]) == [port]
