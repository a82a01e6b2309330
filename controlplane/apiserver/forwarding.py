"""One forwarded TCP connection, as a ``PortForward`` call to the pod's agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from corral.proto import agent_pb2 as pb


class AgentConnection:
    """One forwarded TCP connection: bytes to the pod with send(), from it by iterating."""

    def __init__(self, stub: Any, namespace: str, name: str, port: int) -> None:
        self._inputs: asyncio.Queue[bytes | None] = asyncio.Queue()
        start = pb.PortForwardInput(
            start=pb.PortForwardStart(namespace=namespace, name=name, port=port)
        )
        self.call = stub.PortForward(self._requests(start))

    async def _requests(self, start: Any) -> AsyncIterator[Any]:
        yield start
        while True:
            data = await self._inputs.get()
            if data is None:
                return  # the client is done sending: the agent half-closes
            yield pb.PortForwardInput(data=data)

    def send(self, data: bytes) -> None:
        self._inputs.put_nowait(data)

    def close_write(self) -> None:
        self._inputs.put_nowait(None)

    async def received(self) -> AsyncIterator[bytes]:
        async for output in self.call:
            yield output.data

    def cancel(self) -> None:
        self.call.cancel()


def forward_failure(error: grpc.aio.AioRpcError, port: int, pod: str) -> str:
    """The error stream's message, worded as the kubelet's."""
    return f"error forwarding port {port} to pod {pod}: {error.details() or error.code().name}"
