"""The cluster DNS forwards names outside the cluster to upstream resolvers.

The "upstream" is a second DNS server on loopback, authoritative for
example.org: nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from nodeagent.network.dns import ClusterDNS
from nodeagent.network.dnsforward import Upstream, answers_query
from nodeagent.network.dnswire import CNAME, NOERROR, NXDOMAIN, PTR, REFUSED, SERVFAIL, read_name
from nodeagent.network.dnszone import Zone
from tests.unit.network.dnsclient import Reply, parse, query

SERVICES = [
    {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.10"}},
    {
        "metadata": {"name": "ext", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "www.example.org."},
    },
    {
        "metadata": {"name": "gone", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "nothing.example.org"},
    },
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def upstream_server() -> AsyncIterator[int]:
    port = free_port()
    server = ClusterDNS("127.0.0.1", port=port, domain="example.org")
    server.zone = Zone(
        domain="example.org",
        addresses={"www.example.org": ["192.0.2.7"]},
        names={"example.org"},
        pointers={"9.2.244.10.in-addr.arpa": "outside.example.org"},
    )
    await server.start()
    try:
        yield port
    finally:
        await server.stop()


@contextmanager
def silent_port() -> Iterator[int]:
    """A bound UDP port that never answers: an upstream that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@asynccontextmanager
async def cluster_dns(*upstreams: int, timeout: float = 2.0) -> AsyncIterator[int]:
    port = free_port()
    server = ClusterDNS(
        "127.0.0.1",
        port=port,
        upstreams=[Upstream("127.0.0.1", p) for p in upstreams],
        upstream_timeout=timeout,
        rng=random.Random(7),
    )
    server.update(SERVICES, [])
    await server.start()
    try:
        yield port
    finally:
        await server.stop()


async def ask_udp(port: int, name: str, qtype: int = 1, ident: int = 0x4321) -> Reply:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setblocking(False)
        await loop.sock_connect(udp, ("127.0.0.1", port))
        await loop.sock_sendall(udp, query(name, qtype, ident=ident))
        async with asyncio.timeout(10):
            return parse(await loop.sock_recv(udp, 4096))


async def ask_tcp(port: int, name: str, qtype: int = 1) -> Reply:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        message = query(name, qtype)
        writer.write(struct.pack("!H", len(message)) + message)
        await writer.drain()
        async with asyncio.timeout(10):
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            return parse(await reader.readexactly(size))
    finally:
        writer.close()
        await writer.wait_closed()


async def test_outside_names_are_forwarded_over_udp_and_tcp() -> None:
    async with upstream_server() as upstream, cluster_dns(upstream) as port:
        reply = await ask_udp(port, "www.example.org", ident=0x7777)
        assert (reply.ident, reply.rcode, reply.a()) == (0x7777, NOERROR, ["192.0.2.7"])
        assert (await ask_tcp(port, "WWW.Example.org")).a() == ["192.0.2.7"]
        # The upstream's own answers pass through: no such name is NXDOMAIN.
        assert (await ask_udp(port, "missing.example.org")).rcode == NXDOMAIN
        # The cluster's names are still answered here.
        assert (await ask_udp(port, "web.shop.svc.cluster.local")).a() == ["10.96.0.10"]


async def test_reverse_names_of_addresses_the_cluster_does_not_know_go_upstream() -> None:
    async with upstream_server() as upstream, cluster_dns(upstream) as port:
        reply = await ask_udp(port, "9.2.244.10.in-addr.arpa", PTR)
        assert read_name(reply.answers[0][2], 0)[0] == "outside.example.org"
        reply = await ask_udp(port, "10.0.96.10.in-addr.arpa", PTR)
        assert read_name(reply.answers[0][2], 0)[0] == "web.shop.svc.cluster.local"


async def test_an_external_name_service_resolves_through_its_cname() -> None:
    async with upstream_server() as upstream, cluster_dns(upstream) as port:
        for reply in (
            await ask_udp(port, "ext.shop.svc.cluster.local"),
            await ask_tcp(port, "ext.shop.svc.cluster.local"),
        ):
            assert reply.rcode == NOERROR
            assert [rtype for _, rtype, _ in reply.answers] == [CNAME, 1]
            assert read_name(reply.answers[0][2], 0)[0] == "www.example.org"
            assert reply.answers[1][0] == "www.example.org"
            assert reply.a() == ["192.0.2.7"]
        # A target upstream does not know: the CNAME alone, as CoreDNS answers.
        reply = await ask_udp(port, "gone.shop.svc.cluster.local")
        assert [rtype for _, rtype, _ in reply.answers] == [CNAME]


async def test_a_dead_upstream_is_skipped_and_none_at_all_is_servfail() -> None:
    with silent_port() as dead:
        async with upstream_server() as upstream, cluster_dns(dead, upstream, timeout=0.5) as port:
            for _ in range(3):  # whichever upstream comes first
                assert (await ask_udp(port, "www.example.org")).a() == ["192.0.2.7"]
        async with cluster_dns(dead, timeout=0.3) as port:
            assert (await ask_udp(port, "www.example.org")).rcode == SERVFAIL
            assert (await ask_tcp(port, "www.example.org")).rcode == SERVFAIL


async def test_without_upstreams_outside_names_are_refused() -> None:
    async with cluster_dns() as port:
        reply = await ask_udp(port, "www.example.org")
        assert reply.rcode == REFUSED


def test_a_reply_must_answer_the_query_it_claims_to() -> None:
    asked = query("www.example.org", ident=1)
    answer = bytearray(asked)
    answer[2] |= 0x80
    assert answers_query(asked, bytes(answer))
    assert not answers_query(asked, asked)  # not a response
    other = bytearray(query("www.example.com", ident=1))
    other[2] |= 0x80
    assert not answers_query(asked, bytes(other))
    assert not answers_query(asked, bytes(answer[:11]))
