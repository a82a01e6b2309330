"""ClusterDNS: the node's authoritative DNS server for the cluster domain, over UDP and TCP.

It listens on the bridge's gateway address inside the node's namespace, so
every pod reaches it at the address its resolv.conf names. It answers the
cluster domain (and the reverse names of cluster addresses) from memory,
and forwards every other name to the node's resolvers (dnsforward.py);
with no usable resolver, those names are REFUSED. An ExternalName
Service's CNAME comes with its target's records, looked up upstream, so
a stub resolver that does not chase CNAMEs still gets an address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Iterable, Sequence
from typing import cast

from corral.objects import Obj
from nodeagent.network.dnsforward import Forwarder, ForwardFailed, Upstream
from nodeagent.network.dnswire import (
    AAAA,
    CNAME,
    FORMERR,
    NOERROR,
    SERVFAIL,
    A,
    FormatError,
    Query,
    Record,
    Response,
    build_query,
    encode_response,
    header_only,
    parse_answers,
    parse_query,
)
from nodeagent.network.dnszone import Zone, build_zone, unsupported_opcode
from nodeagent.network.nsthread import call_in_netns

log = logging.getLogger(__name__)

_TCP_LIMIT = 65535
_TCP_IDLE_SECONDS = 10.0
# Forwarded queries in flight at once; past it, UDP queries are dropped (the
# client retries) rather than letting a flood pile up tasks.
_MAX_FORWARDS = 256


def handle(zone: Zone, data: bytes, limit: int | None) -> bytes | None:
    """The reply to one message; ``limit`` None means UDP (the query's own size applies)."""
    try:
        query = parse_query(data)
    except FormatError:
        return header_only(data, FORMERR)
    try:
        if query.question is None:
            response = Response(FORMERR, authoritative=False)
        elif query.opcode != 0:
            response = unsupported_opcode()
        else:
            response = zone.answer(query.question)
        return encode_response(query, response, limit or query.udp_size)
    except Exception:
        log.exception("DNS: failed to answer a query")
        return header_only(data, SERVFAIL)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: ClusterDNS) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        server = self.server
        if not server.needs_upstream(data):
            # The cluster's own names: answered at once, without a task.
            self._send(handle(server.zone, data, None), addr)
            return
        if len(server.forwards) >= _MAX_FORWARDS:
            return
        task = asyncio.ensure_future(self._relay(data, addr))
        server.forwards.add(task)
        task.add_done_callback(server.forwards.discard)

    async def _relay(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        self._send(await self.server.reply(data, None), addr)

    def _send(self, reply: bytes | None, addr: tuple[str | bytes, int]) -> None:
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class ClusterDNS:
    def __init__(
        self,
        address: str,
        *,
        host_netns: str | None = None,
        port: int = 53,
        domain: str = "cluster.local",
        upstreams: Sequence[Upstream] = (),
        forward_netns: str | None = None,
        upstream_timeout: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.netns_path = f"/run/netns/{host_netns}" if host_netns else ""
        self.domain = domain
        self.zone = Zone(domain=domain, names={domain})
        # Upstream queries leave from ``forward_netns``, by default the agent's
        # own namespace: a simulated host's namespace has no route off the
        # machine, while the agent's reaches the machine's resolvers.
        self.forwarder = Forwarder(
            upstreams,
            netns_path=f"/run/netns/{forward_netns}" if forward_netns else "",
            timeout=upstream_timeout,
            rng=rng,
        )
        self.forwards: set[asyncio.Future[None]] = set()
        self._rng = rng or random.Random()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def update(self, services: Iterable[Obj], endpoints: Iterable[Obj]) -> None:
        """Swap in new data; queries in flight finish with the old."""
        zone = build_zone(services, endpoints, self.domain)
        zone.serial = self.zone.serial + 1
        self.zone = zone

    def needs_upstream(self, data: bytes) -> bool:
        """Whether answering ``data`` takes an upstream: a name outside the zone, or a CNAME's."""
        if not self.forwarder:
            return False
        try:
            question = parse_query(data).question
        except FormatError:
            return False
        if question is None:
            return False
        zone = self.zone
        return not zone.owns(question.name) or question.name in zone.aliases

    async def reply(self, data: bytes, limit: int | None) -> bytes | None:
        """The reply to one message, asking upstream when the zone does not have the answer."""
        zone = self.zone
        if not self.needs_upstream(data):
            return handle(zone, data, limit)
        query = parse_query(data)
        question = query.question
        assert question is not None  # needs_upstream said so
        if zone.owns(question.name):
            return await self._chase(zone, query, limit)
        try:
            return await self.forwarder.forward(data, tcp=limit is not None)
        except ForwardFailed as error:
            log.info("DNS: %s: %s", question.name, error)
            return header_only(data, SERVFAIL)

    async def _chase(self, zone: Zone, query: Query, limit: int | None) -> bytes | None:
        """An ExternalName's CNAME, followed by its target's records from upstream."""
        question = query.question
        assert question is not None
        response = zone.answer(question)
        target = zone.aliases.get(question.name)
        if target and question.qtype in (A, AAAA) and not zone.owns(target):
            response.answers.extend(await self._lookup(target, question.qtype))
        return encode_response(query, response, limit or query.udp_size)

    async def _lookup(self, name: str, qtype: int) -> list[Record]:
        ask = build_query(name, qtype, self._rng.randrange(1 << 16))
        try:
            rcode, records = parse_answers(await self.forwarder.forward(ask))
        except (ForwardFailed, FormatError) as error:
            log.info("DNS: following the alias to %s: %s", name, error)
            return []
        if rcode != NOERROR:
            return []
        return [r for r in records if r.rtype in (qtype, CNAME)]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp = self._socket(socket.SOCK_DGRAM)
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
        tcp = self._socket(socket.SOCK_STREAM)
        tcp.listen(64)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        log.info("cluster DNS on %s:%d for %s", self.address, self.port, self.domain)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self.forwards):
            task.cancel()
        if self.forwards:
            await asyncio.gather(*self.forwards, return_exceptions=True)

    def _socket(self, kind: int) -> socket.socket:
        # A socket belongs to the namespace it was created in; binding and
        # serving then happen on the event loop as usual.
        sock = call_in_netns(self.netns_path, lambda: socket.socket(socket.AF_INET, kind))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self.port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(_TCP_IDLE_SECONDS):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    data = await reader.readexactly(size)
                reply = await self.reply(data, _TCP_LIMIT)
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            # The client closed, went idle or reset: its connection ends here,
            # as any DNS server's would; there is nobody left to answer.
            pass
        finally:
            writer.close()
            # Closed already; a failed goodbye only means the client left first.
            with contextlib.suppress(Exception):
                await writer.wait_closed()
