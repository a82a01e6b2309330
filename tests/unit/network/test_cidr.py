from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.network.cidr import (
    contains,
    gateway_of,
    host_ifname,
    is_pod_ifname,
    parse_network,
    pod_addresses,
)
from nodeagent.network.config import NetworkConfig


def test_gateway_and_pod_addresses() -> None:
    assert gateway_of("10.244.3.0/24") == "10.244.3.1"
    addresses = list(pod_addresses("10.244.3.0/24"))
    assert addresses[0] == "10.244.3.2"
    assert addresses[-1] == "10.244.3.254"
    assert len(addresses) == 253


def test_parse_network_is_strict() -> None:
    with pytest.raises(ValueError, match="pod_cidr"):
        parse_network("10.244.0.1/24", "pod_cidr")
    with pytest.raises(ValueError):
        parse_network("fd00::/64")


def test_contains() -> None:
    assert contains("10.244.0.0/16", "10.244.9.9")
    assert not contains("10.244.0.0/16", "10.245.0.1")
    assert not contains("10.244.0.0/16", "nonsense")


def test_host_ifname_is_stable_short_and_recognisable() -> None:
    name = host_ifname("0b6c3a54-7d0c-4f3e-9d5e-2f1f1c1e8a11")
    assert name == host_ifname("0b6c3a54-7d0c-4f3e-9d5e-2f1f1c1e8a11")
    assert len(name) <= 15
    assert is_pod_ifname(name)
    assert not is_pod_ifname("crl0")
    assert not is_pod_ifname("eth0")
    assert host_ifname("a") != host_ifname("b")


def test_config_validates_ranges(tmp_path: Path) -> None:
    good = NetworkConfig(None, "10.244.1.0/24", tmp_path, "192.168.240.1")
    assert good.gateway == "10.244.1.1"
    assert good.prefixlen == 24
    assert good.netns_path == ""
    assert NetworkConfig("crl-x", "10.244.1.0/24", tmp_path, "1.2.3.4").netns_path == (
        "/run/netns/crl-x"
    )
    with pytest.raises(ValueError, match="inside"):
        NetworkConfig(None, "10.245.0.0/24", tmp_path, "192.168.240.1")
    with pytest.raises(ValueError, match="overlaps"):
        NetworkConfig(
            None, "10.244.1.0/24", tmp_path, "192.168.240.1", service_cidr="10.244.128.0/17"
        )
    with pytest.raises(ValueError):
        NetworkConfig(None, "10.244.1.0/24", tmp_path, "not-an-ip")
