"""One forwarded TCP connection, as a ``PortForward`` call to the pod's agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from corral.proto import agent_pb2 as pb


class AgentConnection:
    """One forwarded TCP connection: bytes to the pod with send(), from it by iterating."""

    # Chunks from the client that the agent's stream has not taken yet: past
    # this, send() waits, so a client faster than the pod is read no further
    # (as spdystream, one stream's wait holds up the session's reading).
    MAX_PENDING = 64

    def __init__(self, stub: Any, namespace: str, name: str, port: int) -> None:
        self._inputs: asyncio.Queue[bytes | None] = asyncio.Queue(self.MAX_PENDING)
        self._ended = asyncio.Event()
        start = pb.PortForwardInput(
            start=pb.PortForwardStart(namespace=namespace, name=name, port=port)
        )
        self.call = stub.PortForward(self._requests(start))
        self.call.add_done_callback(lambda _: self._ended.set())

    async def _requests(self, start: Any) -> AsyncIterator[Any]:
        yield start
        while True:
            data = await self._inputs.get()
            if data is None:
                return  # the client is done sending: the agent half-closes
            yield pb.PortForwardInput(data=data)

    async def send(self, data: bytes | None) -> None:
        """Queue bytes for the pod (None: no more), waiting while the queue is full.

        Once the call has ended nothing reads the queue: what the client
        still sends is dropped rather than waited on for ever.
        """
        if self._ended.is_set():
            return
        put = asyncio.ensure_future(self._inputs.put(data))
        ended = asyncio.ensure_future(self._ended.wait())
        await asyncio.wait({put, ended}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (put, ended):
            waiter.cancel()

    async def close_write(self) -> None:
        await self.send(None)

    async def received(self) -> AsyncIterator[bytes]:
        async for output in self.call:
            yield output.data

    def cancel(self) -> None:
        self.call.cancel()


def forward_failure(error: grpc.aio.AioRpcError, port: int, pod: str) -> str:
    """The error stream's message, worded as the kubelet's."""
    return f"error forwarding port {port} to pod {pod}: {error.details() or error.code().name}"
