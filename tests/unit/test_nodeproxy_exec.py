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
        self.denied: Any = None
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def accept(self, subprotocol: str | None = None) -> None:
        self.accepted = subprotocol

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def send_denial_response(self, response: Any) -> None:
        self.denied = response

    async def receive(self) -> dict[str, Any]:
        message = await self.incoming.get()
        if message is None:
            raise WebSocketDisconnect()
        return {"type": "websocket.receive", "bytes": message}


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

        return FakeCall(outputs())


class FakeCall:
    """A gRPC call's two faces that exec uses: iterate it, cancel it."""

    def __init__(self, outputs: AsyncIterator[Any]) -> None:
        self.outputs = outputs
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.outputs

    def cancel(self) -> None:
        self.cancelled = True


def _proxy(agent: EchoAgent) -> NodeProxy:
    proxy = NodeProxy(None, REGISTRY)  # type: ignore[arg-type]

    async def find_agent(namespace: str, name: str) -> tuple[Obj, Any]:
        return {"spec": {"containers": [{"name": "c"}]}}, agent

    proxy.agent = find_agent  # type: ignore[method-assign]
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


async def test_a_client_naming_no_protocol_gets_the_first_framing() -> None:
    # As the kubelet's "" entry: binary channel.k8s.io framing, no subprotocol
    # answered, and the exit status as text (only a failure's).
    websocket = FakeWebSocket(b"command=cat&stdin=true", "")
    for message in (b"\x00hi", b'\x04{"Width":80,"Height":24}', None):
        await websocket.incoming.put(message)
    agent = EchoAgent()
    await _proxy(agent).exec(websocket, "ns", "p")  # type: ignore[arg-type]
    assert websocket.accepted is None and websocket.denied is None
    # Terminal sizes travel on channel 4 in every version, as the kubelet reads them.
    assert agent.inputs == ["start", "stdin", "resize"]
    assert websocket.sent == [b"\x01echo:hi"]


async def test_an_unknown_protocol_is_refused_with_a_status() -> None:
    websocket = FakeWebSocket(b"command=cat", "v9.channel.k8s.io")
    await _proxy(EchoAgent()).exec(websocket, "ns", "p")  # type: ignore[arg-type]
    assert websocket.accepted is None
    assert websocket.denied is not None and websocket.denied.status_code == 400
    assert b"v5.channel.k8s.io" in websocket.denied.body
