"""ClusterDNS: the node's authoritative DNS server for the cluster domain, over UDP and TCP.

It listens on the bridge's gateway address inside the node's namespace, so
every pod reaches it at the address its resolv.conf names. It answers from
memory and never forwards: names outside the cluster domain are REFUSED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Iterable
from typing import cast

from corral.objects import Obj
from nodeagent.network.dnswire import (
    FORMERR,
    SERVFAIL,
    FormatError,
    Response,
    encode_response,
    header_only,
    parse_query,
)
from nodeagent.network.dnszone import Zone, build_zone, unsupported_opcode
from nodeagent.network.nsthread import call_in_netns

log = logging.getLogger(__name__)

_TCP_LIMIT = 65535
_TCP_IDLE_SECONDS = 10.0


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
        reply = handle(self.server.zone, data, None)
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
    ) -> None:
        self.address = address
        self.port = port
        self.netns_path = f"/run/netns/{host_netns}" if host_netns else ""
        self.domain = domain
        self.zone = Zone(domain=domain, names={domain})
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def update(self, services: Iterable[Obj], endpoints: Iterable[Obj]) -> None:
        """Swap in new data; queries in flight finish with the old."""
        zone = build_zone(services, endpoints, self.domain)
        zone.serial = self.zone.serial + 1
        self.zone = zone

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
                reply = handle(self.zone, data, _TCP_LIMIT)
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
