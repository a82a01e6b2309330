"""The agent's gRPC connection to the control plane, across several API servers.

One channel at a time, to one API server's agent port; gRPC itself
reconnects to that server with its jittered exponential back-off and notices
a silent peer with keepalive pings. When the server stays unreachable (a
call fails UNAVAILABLE or runs out of time), the agent moves to the next
server in its list: everything the agent does over the protocol is resumable
(the pod stream from its last version, statuses re-sent), so the switch
needs no more than a new channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import grpc

from corral.client.kubeconfig import split_servers
from corral.proto import agent_pb2_grpc

log = logging.getLogger(__name__)

# What a server that is gone (refused, reset) or frozen (deadline) looks like;
# anything else is an answer, from a server that is there.
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

ChannelFactory = Callable[[str], grpc.aio.Channel]


def control_targets(server: str, control: str | None) -> str:
    """The agent ports, comma separated: ``control`` if given, else each server's port + 1."""
    if control:
        return control
    targets = []
    for url in split_servers(server):
        parts = urlsplit(url)
        targets.append(f"{parts.hostname}:{(parts.port or 6443) + 1}")
    return ",".join(targets)


class ControlChannel:
    """A NodeControl stub whose calls go to the current server; ``fail_over`` moves on.

    Callers keep this object (not a stub), so a call made after a switch goes
    to the new server even from code that captured it long before.
    """

    def __init__(self, targets: str, open_channel: ChannelFactory) -> None:
        self.targets = [t.strip() for t in targets.split(",") if t.strip()]
        if not self.targets:
            raise ValueError("no control-plane address")
        self._open = open_channel
        self._index = 0
        self.channel = open_channel(self.targets[0])
        self._stub = agent_pb2_grpc.NodeControlStub(self.channel)

    @property
    def target(self) -> str:
        return self.targets[self._index]

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks: the RPC methods.
        return getattr(self._stub, name)

    async def failed(self, error: grpc.aio.AioRpcError) -> bool:
        """After a failed call: switch servers if this one looks gone; whether it switched."""
        if len(self.targets) < 2 or error.code() not in UNREACHABLE:
            return False
        failed = self.target
        self._index = (self._index + 1) % len(self.targets)
        old = self.channel
        self.channel = self._open(self.target)
        self._stub = agent_pb2_grpc.NodeControlStub(self.channel)
        log.warning("control plane at %s unreachable; switching to %s", failed, self.target)
        # Calls still on the old channel end now and are retried on the new one.
        await old.close()
        return True

    async def close(self) -> None:
        await self.channel.close()
