from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest

from nodeagent.network.dns import ClusterDNS, handle
from nodeagent.network.dnswire import (
    AAAA,
    CNAME,
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SOA,
    FormatError,
    encode_name,
    parse_query,
    read_name,
)
from nodeagent.network.dnszone import build_zone
from tests.unit.network.dnsclient import parse, query

SERVICES: list[Any] = [
    {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.10"}},
    {"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None"}},
    {"metadata": {"name": "empty", "namespace": "shop"}, "spec": {"clusterIP": "None"}},
    {
        "metadata": {"name": "ext", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "db.example.org."},
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
                "notReadyAddresses": [{"ip": "10.244.2.9"}],
                "ports": [{"port": 3306}],
            }
        ],
    }
]
ZONE = build_zone(SERVICES, ENDPOINTS, "cluster.local")


def ask(name: str, qtype: int = 1, **kwargs: Any) -> Any:
    reply = handle(ZONE, query(name, qtype, **kwargs), None)
    assert reply is not None
    return parse(reply)


def test_service_name_answers_its_cluster_ip() -> None:
    reply = ask("web.shop.svc.cluster.local")
    assert reply.rcode == NOERROR
    assert reply.authoritative
    assert reply.ident == 0x1234
    assert reply.question == "web.shop.svc.cluster.local"
    assert reply.a() == ["10.96.0.10"]
    assert reply.answers[0][0] == "web.shop.svc.cluster.local"


def test_names_are_case_insensitive_and_the_question_is_echoed_as_sent() -> None:
    data = handle(ZONE, query("WeB.Shop.svc.cluster.local"), None)
    assert data is not None
    assert b"\x03WeB\x04Shop" in data
    assert parse(data).a() == ["10.96.0.10"]


def test_headless_service_answers_ready_endpoints_only() -> None:
    assert ask("db.shop.svc.cluster.local").a() == ["10.244.0.7", "10.244.1.5"]
    assert ask("db-0.db.shop.svc.cluster.local").a() == ["10.244.1.5"]
    empty = ask("empty.shop.svc.cluster.local")
    assert (empty.rcode, empty.answers) == (NOERROR, [])


def test_unknown_cluster_names_are_nxdomain_with_soa() -> None:
    reply = ask("nope.shop.svc.cluster.local")
    assert reply.rcode == NXDOMAIN
    assert reply.authority == 1
    # What a pod's search path makes of an outside name.
    assert ask("example.com.shop.svc.cluster.local").rcode == NXDOMAIN


def test_names_outside_the_zone_are_refused_by_the_zone() -> None:
    reply = ask("example.com")
    assert reply.rcode == REFUSED
    assert not reply.authoritative
    assert ask("cluster.local.evil").rcode == REFUSED


def test_existing_names_without_that_type_are_nodata() -> None:
    reply = ask("web.shop.svc.cluster.local", AAAA)
    assert (reply.rcode, reply.answers, reply.authority) == (NOERROR, [], 1)
    assert ask("shop.svc.cluster.local").rcode == NOERROR
    assert ask("svc.cluster.local").rcode == NOERROR


def test_soa_pod_names_and_external_names() -> None:
    assert ask("cluster.local", SOA).answers[0][1] == SOA
    assert ask("10-244-1-5.shop.pod.cluster.local").a() == ["10.244.1.5"]
    assert ask("999-1-1-1.shop.pod.cluster.local").rcode == NXDOMAIN
    cname = ask("ext.shop.svc.cluster.local").answers
    assert cname[0][1] == CNAME
    assert read_name(cname[0][2], 0)[0] == "db.example.org"


def test_udp_answers_are_truncated_to_512_bytes_unless_edns_allows_more() -> None:
    endpoints = [
        {
            "metadata": {"name": "many", "namespace": "shop"},
            "subsets": [{"addresses": [{"ip": f"10.244.3.{n}"} for n in range(2, 102)]}],
        }
    ]
    services = [{"metadata": {"name": "many", "namespace": "shop"}, "spec": {"clusterIP": "None"}}]
    zone = build_zone(services, endpoints, "cluster.local")
    name = "many.shop.svc.cluster.local"
    small = handle(zone, query(name), None)
    assert small is not None and len(small) <= 512
    assert parse(small).truncated
    assert 0 < len(parse(small).answers) < 100
    big = handle(zone, query(name, edns=4096), None)
    assert big is not None
    assert not parse(big).truncated
    assert len(parse(big).answers) == 100
    assert parse(big).additional == 1  # our OPT record
    tcp = handle(zone, query(name), 65535)
    assert tcp is not None and len(parse(tcp).answers) == 100


def test_malformed_messages_get_formerr_or_nothing() -> None:
    assert handle(ZONE, b"\x12", None) is None
    truncated = handle(ZONE, query("web.shop.svc.cluster.local")[:20], None)
    assert truncated is not None
    assert parse(truncated).rcode == FORMERR
    two_questions = bytearray(query("web.shop.svc.cluster.local"))
    two_questions[5] = 2
    reply = handle(ZONE, bytes(two_questions), None)
    assert reply is not None and parse(reply).rcode == FORMERR
    # A response is never answered (no reflection loops).
    response = bytearray(query("web.shop.svc.cluster.local"))
    response[2] |= 0x80
    assert handle(ZONE, bytes(response), None) is None


def test_other_opcodes_are_not_implemented() -> None:
    status = bytearray(query("web.shop.svc.cluster.local"))
    status[2] |= 2 << 3
    reply = handle(ZONE, bytes(status), None)
    assert reply is not None and parse(reply).rcode == NOTIMP


def test_pointer_loops_and_compressed_names() -> None:
    loop = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(FormatError):
        parse_query(loop)
    data = b"\x03www\x07example\x00" + b"\x03api\xc0\x04"
    assert read_name(data, 13) == ("api.example", 19)


def test_encode_name_rejects_oversized_labels() -> None:
    assert encode_name("") == b"\x00"
    with pytest.raises(ValueError):
        encode_name("a" * 64 + ".local")


async def test_the_server_answers_over_udp_and_tcp_on_loopback() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ClusterDNS("127.0.0.1", port=port)
    server.update(SERVICES, ENDPOINTS)
    await server.start()
    loop = asyncio.get_running_loop()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.setblocking(False)
            await loop.sock_connect(udp, ("127.0.0.1", port))
            await loop.sock_sendall(udp, query("web.shop.svc.cluster.local"))
            async with asyncio.timeout(5):
                assert parse(await loop.sock_recv(udp, 4096)).a() == ["10.96.0.10"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for name in ("db.shop.svc.cluster.local", "example.org"):
            message = query(name)
            writer.write(struct.pack("!H", len(message)) + message)
            await writer.drain()
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            reply = parse(await reader.readexactly(size))
            assert reply.rcode == (NOERROR if name.endswith("local") else REFUSED)
        writer.close()
        await writer.wait_closed()
        server.update([], [])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.setblocking(False)
            await loop.sock_connect(udp, ("127.0.0.1", port))
            await loop.sock_sendall(udp, query("web.shop.svc.cluster.local"))
            async with asyncio.timeout(5):
                assert parse(await loop.sock_recv(udp, 4096)).rcode == NXDOMAIN
    finally:
        await server.stop()
