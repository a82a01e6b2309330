"""``corral up --masters``: its flags, its data-dir guard, and its HAProxy configuration."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from corralctl import masters

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ha" / "haproxy.cfg"


def _settings(text: str) -> list[str]:
    """The configuration's directives, without comments, addresses and server lines."""
    kept = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line or line.strip().startswith(("server ", "bind ")):
            continue
        kept.append(re.sub(r"\s+", " ", line.strip()))
    return kept


def test_the_generated_haproxy_config_is_the_shipped_example_with_addresses() -> None:
    generated = masters.haproxy_config("127.0.0.1:6443", ["127.0.0.1:1", "127.0.0.1:2"])
    assert _settings(generated) == _settings(EXAMPLE.read_text())
    assert '    bind "127.0.0.1:6443"' in generated
    assert '    server apiserver1 "127.0.0.1:1"' in generated
    assert '    server apiserver2 "127.0.0.1:2"' in generated


def test_masters_on_hosts_are_reached_through_the_underlay_and_relayed_from_loopback() -> None:
    generated = masters.haproxy_config(
        "127.0.0.1:6443",
        ["192.168.240.1:1", "192.168.240.2:2"],
        namespace="crl-mabc123-ul",
        relays=[("master0-etcd_client", "127.0.0.1:3", "192.168.240.1:3")],
    )
    # The balanced part is still the example's; only where it connects from differs.
    assert _settings(generated.split("\nlisten ")[0]) == _settings(EXAMPLE.read_text())
    assert '    server apiserver1 "192.168.240.1:1" namespace crl-mabc123-ul' in generated
    assert '    server apiserver2 "192.168.240.2:2" namespace crl-mabc123-ul' in generated
    relay = generated.split("\nlisten ", 1)[1]
    assert relay.splitlines() == [
        "master0-etcd_client",
        '    bind "127.0.0.1:3"',
        '    server master0-etcd_client "192.168.240.1:3" namespace crl-mabc123-ul',
    ]
    # Unchecked: a relay of a cut-off master fails its clients rather than waiting for checks.
    assert " check" not in relay


def test_two_local_clusters_never_share_master_hosts() -> None:
    # Named after the cluster id, and never under an agents' prefix (crl-sim*),
    # whose testbed up and down remove everything named PREFIX-*.
    assert masters.netns_prefix("0a83dd") != masters.netns_prefix("1b94ee")
    assert not masters.netns_prefix("0a83dd").startswith("crl-sim")


@pytest.mark.parametrize(
    ("count", "etcd", "ok"),
    [(1, "", True), (3, "", True), (5, "", True), (2, "", False), (7, "", False),
     (0, "", False), (1, "http://e:2379", True), (3, "http://e:2379", False)],
)  # fmt: skip
def test_masters_are_an_odd_number_up_to_five(count: int, etcd: str, ok: bool) -> None:
    problem = masters.validate(argparse.Namespace(masters=count, etcd=etcd, apiserver_workers=None))
    assert (problem is None) is ok, problem


@pytest.mark.parametrize(
    ("count", "workers", "expected"),
    [(1, None, None), (3, None, 1), (5, None, 1), (1, 4, 4), (3, 2, 2)],
)
def test_one_master_takes_every_core_and_several_take_one_each(
    count: int, workers: int | None, expected: int | None
) -> None:
    args = argparse.Namespace(masters=count, etcd="", apiserver_workers=workers)
    assert masters.validate(args) is None
    assert masters.apiserver_workers(args) == expected


def test_apiserver_workers_must_be_positive() -> None:
    args = argparse.Namespace(masters=1, etcd="", apiserver_workers=0)
    assert masters.validate(args) == "--apiserver-workers: at least 1"


def test_a_data_dir_keeps_its_number_of_masters(tmp_path: Path) -> None:
    assert masters._data_conflict(tmp_path, 1) is None
    assert masters._data_conflict(tmp_path, 3) is None
    (tmp_path / "etcd").mkdir()
    assert masters._data_conflict(tmp_path, 1) is None
    assert "--masters 1" in (masters._data_conflict(tmp_path, 3) or "")
    (tmp_path / "etcd").rmdir()
    for index in range(3):
        (tmp_path / f"etcd-{index}").mkdir()
    assert masters._data_conflict(tmp_path, 3) is None
    assert "--masters 3" in (masters._data_conflict(tmp_path, 1) or "")
    assert "--masters 3" in (masters._data_conflict(tmp_path, 5) or "")


def test_master_ports_are_distinct_and_kept(tmp_path: Path) -> None:
    (tmp_path / "ports.json").write_text('{"etcd_client": 1, "etcd_peer": 2}')
    chosen = masters._master_ports(tmp_path, 3)
    flat = [port for member in chosen for port in member.values()]
    assert len(set(flat)) == len(flat) == 12
    assert masters._master_ports(tmp_path, 3) == chosen
    assert '"etcd_client": 1' in (tmp_path / "ports.json").read_text()


def test_masters_made_on_loopback_are_not_started_on_hosts(tmp_path: Path) -> None:
    assert masters._loopback_members(tmp_path) is None  # nothing made yet
    (tmp_path / "ports.json").write_text('{"masters": [{"etcd_peer": 1}]}')
    (tmp_path / "etcd-0").mkdir()
    # Their peer URLs say 127.0.0.1: on hosts they would never find each other.
    assert "127.0.0.1" in (masters._loopback_members(tmp_path) or "")
    (tmp_path / "ports.json").unlink()
    masters._master_ports(tmp_path, 3)
    assert masters._loopback_members(tmp_path) is None
