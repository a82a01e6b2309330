"""``pods/portforward``: TCP connections into a pod, over a WebSocket, through its node's agent.

Two framings arrive on the same path, told apart by the subprotocol:

- ``SPDY/3.1+portforward.k8s.io``: kubectl (1.31 on) tunnels SPDY/3 through
  the WebSocket. Each forwarded connection is a pair of streams with the
  same ``requestID`` header: ``streamType: error`` (the server writes a
  failure's message there, then FIN) and ``streamType: data`` (bytes both
  ways); a ``port`` header names the pod's port.
- the channel protocols (``v4.channel.k8s.io`` and the rest, channels.py):
  the Python client and browsers. ``?ports=80,9000`` opens one connection per
  port when the socket opens; port i has channels 2i (data) and 2i+1
  (error), and the server's first message on each carries the port as two
  little-endian bytes.

Each connection is one ``PortForward`` call to the agent, which dials the
port on the pod's loopback inside the pod's network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Sequence
from typing import Any

import grpc
from starlette.websockets import WebSocket, WebSocketDisconnect

from controlplane.apiserver.channels import (
    PORT_FORWARD_PROTOCOLS,
    ChannelProtocol,
    negotiate,
    offered_protocols,
)
from controlplane.apiserver.forwarding import AgentConnection, forward_failure
from controlplane.apiserver.nodeproxy import NodeProxy, refuse_websocket
from controlplane.apiserver.spdytunnel import SPDY_TUNNEL_PROTOCOL, SpdyPortForward
from controlplane.query import request_query
from corral.api import errors
from corral.api.errors import ApiError

log = logging.getLogger(__name__)


def parse_ports(values: Sequence[str]) -> list[int]:
    ports: list[int] = []
    for value in values:
        for part in value.split(","):
            try:
                port = int(part)
            except ValueError:
                raise errors.bad_request(
                    f'unable to parse "{part}" as a port: not a number'
                ) from None
            if not 0 < port < 65536:
                raise errors.bad_request(f"port {port} must be between 1 and 65535, inclusive")
            ports.append(port)
    if not ports:
        raise errors.bad_request('query parameter "ports" is required')
    return ports


async def serve_port_forward(
    proxy: NodeProxy, websocket: WebSocket, namespace: str, name: str
) -> None:
    offered = offered_protocols(websocket.headers.get("sec-websocket-protocol", ""))
    tunnel = SPDY_TUNNEL_PROTOCOL in offered
    try:
        # What the request asks is checked before any agent is dialled.
        protocol = None if tunnel else _channel_protocol(offered)
        ports = [] if tunnel else parse_ports(request_query(websocket.scope).getlist("ports"))
        _, stub = await proxy.agent(namespace, name)
    except ApiError as error:
        await refuse_websocket(websocket, error)
        return
    if protocol is None:
        await websocket.accept(subprotocol=SPDY_TUNNEL_PROTOCOL)
        opener = _opener(stub, namespace, name)
        await SpdyPortForward(websocket, opener, f"{namespace}/{name}").serve()
        return
    await websocket.accept(subprotocol=protocol.name or None)
    await _serve_channels(websocket, protocol, stub, namespace, name, ports)


def _channel_protocol(offered: list[str]) -> ChannelProtocol:
    protocol = negotiate(offered, PORT_FORWARD_PROTOCOLS)
    if protocol is None:
        names = [SPDY_TUNNEL_PROTOCOL, *(p.name for p in PORT_FORWARD_PROTOCOLS)]
        raise errors.bad_request("port-forward needs one of the subprotocols " + ", ".join(names))
    return protocol


def _opener(stub: Any, namespace: str, name: str) -> Any:
    def open_connection(port: int) -> AgentConnection:
        return AgentConnection(stub, namespace, name, port)

    return open_connection


async def _serve_channels(
    websocket: WebSocket,
    protocol: ChannelProtocol,
    stub: Any,
    namespace: str,
    name: str,
    ports: list[int],
) -> None:
    """Port i on channels 2i and 2i+1, until every pod side closes or the client leaves."""
    lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        message = protocol.encode(channel, data)
        async with lock:
            if isinstance(message, str):
                await websocket.send_text(message)
            else:
                await websocket.send_bytes(message)

    connections = [AgentConnection(stub, namespace, name, port) for port in ports]
    for index, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await send(2 * index, prefix)
        await send(2 * index + 1, prefix)

    async def pod_to_client(index: int) -> None:
        connection, port = connections[index], ports[index]
        try:
            async for data in connection.received():
                await send(2 * index, data)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                await send(2 * index + 1, forward_failure(error, port, name).encode())

    outputs = [asyncio.create_task(pod_to_client(i)) for i in range(len(ports))]
    reader = asyncio.create_task(_client_to_pods(websocket, protocol, connections))
    pending: set[asyncio.Task[None]] = {reader, *outputs}
    try:
        # Until the client leaves, or every pod side has closed.
        while reader in pending and len(pending) > 1:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for connection in connections:
            connection.cancel()
        for task in (reader, *outputs):
            task.cancel()
        await asyncio.wait({reader, *outputs})
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close()


async def _client_to_pods(
    websocket: WebSocket, protocol: ChannelProtocol, connections: list[AgentConnection]
) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            decoded = protocol.decode(message.get("bytes") or message.get("text") or b"")
            if decoded is None:
                continue
            channel, data = decoded
            if channel % 2 == 0 and channel // 2 < len(connections) and data:
                await connections[channel // 2].send(data)
