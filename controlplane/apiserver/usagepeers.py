"""Resource usage for every worker, though only worker 0 hears the agents.

Agents report usage (``ReportUsage``) on the gRPC port, which only worker 0
serves, and the figures live in memory (controlplane/usage/store.py), never
in etcd. A ``kubectl top`` that lands on another worker must still find
them, so worker 0 copies each report, as the agent's protobuf bytes, to
every other worker over a Unix datagram socket the supervisor made for the
pair: one datagram is one report, so no framing and no partial reads.
Sending never blocks: a worker that is down or behind loses reports, which
the next interval's replaces, as after an API server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from controlplane.usage.store import UsageStore
from corral.proto import agent_pb2 as pb

log = logging.getLogger(__name__)

# A report of a node with a few hundred pods is tens of KB.
MAX_REPORT_BYTES = 4 * 1024 * 1024


def socket_pairs(count: int) -> list[tuple[socket.socket, socket.socket]]:
    """(worker 0's sending end, worker I's receiving end) for I in 1..count-1."""
    pairs = []
    for _ in range(count - 1):
        send, receive = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for end in (send, receive):
            end.set_inheritable(True)
        # Both ends are also kept by the supervisor, so that restarted workers get them.
        send.setblocking(False)
        pairs.append((send, receive))
    return pairs


class ForwardingUsage(UsageStore):
    """Worker 0's store: records each report, and sends it on to the other workers."""

    def __init__(self, wall_clock: Callable[[], float], peer_fds: Sequence[int]) -> None:
        super().__init__(wall_clock)
        self.peers = [socket.socket(fileno=fd) for fd in peer_fds]
        for peer in self.peers:
            peer.setblocking(False)
        self.dropped = 0

    def record(self, report: Any) -> None:
        super().record(report)
        data = report.SerializeToString()
        for peer in self.peers:
            try:
                peer.send(data)
            except OSError:
                # Full (a worker down or behind) or too big: the next report replaces it.
                self.dropped += 1


@contextlib.asynccontextmanager
async def receiving(store: UsageStore, fd: int | None) -> Any:
    """While the worker runs, record the reports worker 0 sends on ``fd`` (None: none)."""
    if fd is None:
        yield
        return
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        # Drain what is queued; each datagram is one report.
        for _ in range(1000):
            try:
                data = sock.recv(MAX_REPORT_BYTES)
            except BlockingIOError:
                return
            except OSError as error:
                log.warning("usage from worker 0: %s", error)
                return
            try:
                store.record(pb.UsageReport.FromString(data))
            except Exception as error:  # a bad datagram must not stop the reader
                log.warning("usage from worker 0 not understood: %s", error)

    loop.add_reader(sock.fileno(), readable)
    try:
        yield
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
