"""pods/exec relayed between a WebSocket and an agent's Exec stream (both stand-ins)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.websockets import WebSocketDisconnect

from controlplane.apiserver.nodeproxy import NodeProxy
from corral.api.resources import REGISTRY
from corral.objects import Obj
from corral.proto import agent_pb2 as pb


class FakeWebSocket:
    """The few WebSocket calls exec makes; what the client sends is queued up front."""

    def __init__(self, query: bytes, protocols: str) -> None:
        self.scope: dict[str, Any] = {"query_string": query}
        self.headers = {"sec-websocket-protocol": protocols} if protocols else {}
        self.accepted: str | None = None
        self.closed: tuple[int, str] | None = None
        self.sent: list[bytes] = []
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def accept(self, subprotocol: str | None = None) -> None:
        self.accepted = subprotocol

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def receive_bytes(self) -> bytes:
        message = await self.incoming.get()
        if message is None:
            raise WebSocketDisconnect()
        return message


class EchoAgent:
    """An agent whose command echoes stdin and exits 3 once stdin is closed."""

    def __init__(self) -> None:
        self.inputs: list[str] = []

    def Exec(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:  # noqa: N802 (gRPC's name)
        async def outputs() -> AsyncIterator[Any]:
            async for request in requests:
                self.inputs.append(request.WhichOneof("input"))
                if request.HasField("stdin"):
                    yield pb.ExecOutput(stdout=b"echo:" + request.stdin)
                if request.close_stdin:
                    yield pb.ExecOutput(exit=pb.ExecExit(code=3))
                    return

        return outputs()


def _proxy(agent: EchoAgent) -> NodeProxy:
    proxy = NodeProxy(None, REGISTRY)  # type: ignore[arg-type]

    async def find_agent(namespace: str, name: str) -> tuple[Obj, Any]:
        return {"spec": {"containers": [{"name": "c"}]}}, agent

    proxy._agent = find_agent  # type: ignore[method-assign]
    return proxy


async def test_stdin_resize_and_close_reach_the_agent_and_its_output_and_exit_come_back() -> None:
    agent = EchoAgent()
    websocket = FakeWebSocket(b"command=cat&stdin=true", "v5.channel.k8s.io")
    for message in (b"\x00hi", b'\x04{"Width":80,"Height":24}', b"\xff\x00"):
        await websocket.incoming.put(message)
    await _proxy(agent).exec(websocket, "ns", "p")  # type: ignore[arg-type]
    assert websocket.accepted == "v5.channel.k8s.io"
    assert agent.inputs == ["start", "stdin", "resize", "close_stdin"]
    assert websocket.sent[0] == b"\x01echo:hi"
    assert websocket.sent[1].startswith(b"\x03") and b"NonZeroExitCode" in websocket.sent[1]
    assert websocket.closed == (1000, "")


async def test_a_client_without_a_channel_protocol_is_refused() -> None:
    websocket = FakeWebSocket(b"command=cat", "")
    await _proxy(EchoAgent()).exec(websocket, "ns", "p")  # type: ignore[arg-type]
    assert websocket.accepted is None
    assert websocket.closed is not None and websocket.closed[0] == 1008
