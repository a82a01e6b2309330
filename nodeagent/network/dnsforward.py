"""Forwarding names outside the cluster to the node's own resolvers, as CoreDNS's forward
plugin does with the kubelet's resolv.conf.

The upstreams come from the node's /etc/resolv.conf (a simulated host's
/etc/netns/<name>/resolv.conf first, as ``ip netns exec`` would use it).
Loopback resolvers are left out: from the cluster DNS's namespace they are
either unreachable or the cluster DNS itself, and asking them would loop;
when only loopback ones are listed (systemd-resolved's stub), systemd's
list of real upstreams is read instead, as the kubelet advises.

A query is relayed as it came, so its ID, flags and EDNS options reach the
upstream unchanged, and the reply is checked to answer that query before it
is passed back. Each upstream gets a bounded wait; the next one is tried
after a timeout or a failure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nodeagent.network.nsthread import call_in_netns
from nodeagent.network.resolvconf import parse_resolv_conf

log = logging.getLogger(__name__)

DNS_PORT = 53
UPSTREAM_TIMEOUT_SECONDS = 2.0
_MAX_UPSTREAMS = 3  # as many as a resolv.conf may use
_SYSTEMD_RESOLV_CONF = Path("/run/systemd/resolve/resolv.conf")
_MAX_REPLY = 65535


class ForwardFailed(Exception):
    """No upstream answered the query."""


@dataclass(frozen=True)
class Upstream:
    address: str
    port: int = DNS_PORT

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET


def _usable(address: str, own: set[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified or address in own)


def node_upstreams(
    host_netns: str | None = None,
    *,
    own_addresses: Sequence[str] = (),
    etc: Path = Path("/etc"),
    systemd_resolv_conf: Path = _SYSTEMD_RESOLV_CONF,
) -> list[Upstream]:
    """The node's resolvers that the cluster DNS may forward to, in resolv.conf's order."""
    candidates = [etc / "resolv.conf"]
    if host_netns:
        candidates.insert(0, etc / "netns" / host_netns / "resolv.conf")
    candidates.append(systemd_resolv_conf)
    own = set(own_addresses)
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue  # absent or unreadable: the next source may do
        usable = [ns for ns in parse_resolv_conf(text).nameservers if _usable(ns, own)]
        if usable:
            return [Upstream(ns) for ns in usable[:_MAX_UPSTREAMS]]
    return []


def answers_query(query: bytes, reply: bytes) -> bool:
    """Whether ``reply`` is a response with the query's ID and question (no spoofed mix-ups)."""
    if len(reply) < 12 or len(query) < 12:
        return False
    if reply[:2] != query[:2] or not reply[2] & 0x80:
        return False
    question_end = _question_end(query)
    return question_end is not None and reply[12:question_end].lower() == (
        query[12:question_end].lower()
    )


def _question_end(message: bytes) -> int | None:
    if struct.unpack_from("!H", message, 4)[0] != 1:
        return None
    offset = 12
    while offset < len(message):
        size = message[offset]
        if size == 0:
            return offset + 5 if offset + 5 <= len(message) else None
        if size & 0xC0:
            return None  # a question's name is never compressed in a query
        offset += size + 1
    return None


class Forwarder:
    """Relays queries to the upstreams, UDP or TCP as the client asked."""

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        *,
        netns_path: str = "",
        timeout: float = UPSTREAM_TIMEOUT_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.upstreams = list(upstreams)
        self.netns_path = netns_path
        self.timeout = timeout
        self._rng = rng or random.Random()

    def __bool__(self) -> bool:
        return bool(self.upstreams)

    async def forward(self, query: bytes, *, tcp: bool = False) -> bytes:
        """The first upstream's reply to ``query``; ForwardFailed when none answers."""
        order = list(self.upstreams)
        # Start at a random upstream, as CoreDNS's default policy spreads load.
        if len(order) > 1:
            start = self._rng.randrange(len(order))
            order = order[start:] + order[:start]
        for upstream in order:
            try:
                async with asyncio.timeout(self.timeout):
                    if tcp:
                        return await self._tcp(upstream, query)
                    return await self._udp(upstream, query)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
                log.debug("DNS upstream %s failed: %r", upstream.address, error)
        raise ForwardFailed(f"no upstream answered ({len(order)} tried)")

    def _socket(self, family: int, kind: int) -> socket.socket:
        sock = call_in_netns(self.netns_path, lambda: socket.socket(family, kind))
        sock.setblocking(False)
        return sock

    async def _udp(self, upstream: Upstream, query: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        with self._socket(upstream.family, socket.SOCK_DGRAM) as sock:
            await loop.sock_connect(sock, (upstream.address, upstream.port))
            await loop.sock_sendall(sock, query)
            # Stray datagrams (late replies to someone else) are skipped; the
            # caller's timeout bounds the wait.
            while True:
                reply = await loop.sock_recv(sock, _MAX_REPLY)
                if answers_query(query, reply):
                    return reply

    async def _tcp(self, upstream: Upstream, query: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        sock = self._socket(upstream.family, socket.SOCK_STREAM)
        try:
            await loop.sock_connect(sock, (upstream.address, upstream.port))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            reply = await reader.readexactly(size)
        finally:
            writer.close()
        if not answers_query(query, reply):
            raise OSError("the upstream's reply does not answer the query")
        return reply
