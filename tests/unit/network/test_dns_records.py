"""SRV records for named ports and PTR records for cluster addresses, and the node's upstreams."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from nodeagent.network.dns import handle
from nodeagent.network.dnsforward import Upstream, node_upstreams
from nodeagent.network.dnswire import NOERROR, NXDOMAIN, PTR, SRV, read_name
from nodeagent.network.dnszone import build_zone
from tests.unit.network.dnsclient import parse, query

SERVICES: list[Any] = [
    {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "clusterIP": "10.96.0.10",
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "Metrics", "port": 9100},
                {"port": 8443},
            ],
        },
    },
    {
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {
            "clusterIP": "None",
            "ports": [
                {"name": "mysql", "port": 3306},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ],
        },
    },
]
ENDPOINTS: list[Any] = [
    {
        "metadata": {"name": "db", "namespace": "shop"},
        "subsets": [
            {
                "addresses": [
                    {"ip": "10.244.1.5", "hostname": "db-0"},
                    {"ip": "10.244.0.7"},
                ],
                "notReadyAddresses": [{"ip": "10.244.2.9", "hostname": "db-2"}],
                "ports": [
                    {"name": "mysql", "port": 3306, "protocol": "TCP"},
                    {"name": "dns", "port": 5353, "protocol": "UDP"},
                ],
            }
        ],
    },
    {
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [
            {"addresses": [{"ip": "10.244.2.3"}], "ports": [{"name": "http", "port": 8080}]}
        ],
    },
]
ZONE = build_zone(SERVICES, ENDPOINTS, "cluster.local")


def ask(name: str, qtype: int) -> Any:
    reply = handle(ZONE, query(name, qtype), None)
    assert reply is not None
    return parse(reply)


def srv(reply: Any) -> list[tuple[int, int, int, str]]:
    found = []
    for _, rtype, rdata in reply.answers:
        assert rtype == SRV
        priority, weight, port = struct.unpack_from("!HHH", rdata)
        found.append((priority, weight, port, read_name(rdata, 6)[0]))
    return sorted(found)


def test_a_cluster_ip_services_named_ports_have_srv_records_naming_the_service() -> None:
    reply = ask("_http._tcp.web.shop.svc.cluster.local", SRV)
    assert reply.rcode == NOERROR and reply.authoritative
    assert srv(reply) == [(0, 100, 80, "web.shop.svc.cluster.local")]
    # Port names are case-insensitive, as DNS names are; the protocol defaults to TCP.
    assert srv(ask("_metrics._tcp.web.shop.svc.cluster.local", SRV)) == [
        (0, 100, 9100, "web.shop.svc.cluster.local")
    ]
    assert ask("_http._udp.web.shop.svc.cluster.local", SRV).rcode == NXDOMAIN
    # The protocol label exists (an empty non-terminal); an A query there is NODATA.
    assert ask("_tcp.web.shop.svc.cluster.local", SRV).rcode == NOERROR


def test_a_headless_services_srv_records_name_each_ready_endpoint() -> None:
    reply = ask("_mysql._tcp.db.shop.svc.cluster.local", SRV)
    assert srv(reply) == [
        (0, 50, 3306, "10-244-0-7.db.shop.svc.cluster.local"),
        (0, 50, 3306, "db-0.db.shop.svc.cluster.local"),
    ]
    # The endpoint's own port, not the Service's, and UDP as declared.
    assert srv(ask("_dns._udp.db.shop.svc.cluster.local", SRV))[0][2] == 5353
    # Each target resolves: by hostname, or by its dashed address.
    assert ask("db-0.db.shop.svc.cluster.local", 1).a() == ["10.244.1.5"]
    assert ask("10-244-0-7.db.shop.svc.cluster.local", 1).a() == ["10.244.0.7"]
    assert ask("db-2.db.shop.svc.cluster.local", 1).rcode == NXDOMAIN  # not ready


def test_cluster_ips_and_endpoint_addresses_have_ptr_records() -> None:
    def ptr(ip: str) -> str:
        reply = ask(".".join(reversed(ip.split("."))) + ".in-addr.arpa", PTR)
        assert reply.rcode == NOERROR and reply.answers[0][1] == PTR
        return str(read_name(reply.answers[0][2], 0)[0])

    assert ptr("10.96.0.10") == "web.shop.svc.cluster.local"
    assert ptr("10.244.1.5") == "db-0.db.shop.svc.cluster.local"
    assert ptr("10.244.0.7") == "10-244-0-7.db.shop.svc.cluster.local"
    assert ptr("10.244.2.3") == "10-244-2-3.web.shop.svc.cluster.local"
    assert ZONE.owns("10.0.96.10.in-addr.arpa")
    # An address the cluster does not know is not the zone's: it goes upstream.
    assert not ZONE.owns("9.2.244.10.in-addr.arpa")


def test_upstreams_come_from_the_nodes_resolv_conf_without_loopback(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    systemd = tmp_path / "systemd-resolv.conf"
    (etc / "resolv.conf").write_text(
        "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\n"
        "nameserver 2001:db8::53\nnameserver 10.244.0.1\noptions edns0\n"
    )
    found = node_upstreams(etc=etc, own_addresses=["10.244.0.1"], systemd_resolv_conf=systemd)
    assert found == [Upstream("192.0.2.1"), Upstream("2001:db8::53")]


def test_only_loopback_resolvers_fall_back_to_systemds_list(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "resolv.conf").write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    systemd = tmp_path / "systemd-resolv.conf"
    assert node_upstreams(etc=etc, systemd_resolv_conf=systemd) == []
    systemd.write_text("nameserver 198.51.100.7\n")
    assert node_upstreams(etc=etc, systemd_resolv_conf=systemd) == [Upstream("198.51.100.7")]


def test_a_simulated_hosts_own_resolv_conf_comes_first(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "netns" / "crl-sim-0").mkdir(parents=True)
    (etc / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    (etc / "netns" / "crl-sim-0" / "resolv.conf").write_text("nameserver 192.0.2.99\n")
    missing = tmp_path / "none"
    assert node_upstreams("crl-sim-0", etc=etc, systemd_resolv_conf=missing) == [
        Upstream("192.0.2.99")
    ]
    assert node_upstreams("crl-sim-1", etc=etc, systemd_resolv_conf=missing) == [
        Upstream("192.0.2.1")
    ]
