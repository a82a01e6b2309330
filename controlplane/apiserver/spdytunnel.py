"""kubectl's port-forward: SPDY/3 streams tunnelled through a WebSocket.

client-go (1.31 on, PortForwardWebsockets) asks for the subprotocol
``SPDY/3.1+portforward.k8s.io`` and then writes SPDY frames into binary
messages, as if the WebSocket were the TCP connection of the older SPDY
upgrade. For each local connection it opens an error stream and waits for
its reply, half-closes it, then opens a data stream with the same
``requestID``; it stops when the data stream is closed from here and the
error stream has ended (empty: no error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable

import grpc
from starlette.websockets import WebSocket, WebSocketDisconnect

from controlplane.apiserver.forwarding import AgentConnection, forward_failure
from controlplane.apiserver.spdy import (
    GOAWAY,
    PING,
    PROTOCOL_ERROR,
    RST_STREAM,
    SYN_STREAM,
    ControlFrame,
    DataFrame,
    Framer,
    SpdyError,
    SynStream,
)

log = logging.getLogger(__name__)

SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


class _GoneAway(Exception):
    """The client said GOAWAY: no new streams, and this server has none of its own."""


class SpdyPortForward:
    """One kubectl port-forward session: many connections, each a pair of streams."""

    def __init__(
        self,
        websocket: WebSocket,
        open_connection: Callable[[int], AgentConnection],
        pod: str,
    ) -> None:
        self.websocket = websocket
        self.open_connection = open_connection
        self.pod = pod
        self.framer = Framer()
        # One writer at a time: frames must not interleave, and header blocks
        # share one compression context, so they are compressed in send order.
        self.lock = asyncio.Lock()
        self.error_streams: dict[str, int] = {}
        self.connections: dict[int, AgentConnection] = {}
        self.pumps: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes") or (message.get("text") or "").encode()
                for frame in self.framer.feed(data):
                    await self._handle(frame)
        except SpdyError as error:
            log.info("port-forward to %s: the client broke SPDY: %s", self.pod, error)
            with contextlib.suppress(Exception):
                await self._write(Framer.goaway(0, PROTOCOL_ERROR))
        except (_GoneAway, WebSocketDisconnect, RuntimeError):
            pass  # the client is done; what follows closes every connection
        finally:
            for connection in self.connections.values():
                connection.cancel()
            for pump in self.pumps:
                pump.cancel()
            if self.pumps:
                await asyncio.wait(self.pumps)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.websocket.close()

    async def _handle(self, frame: ControlFrame | DataFrame) -> None:
        if isinstance(frame, DataFrame):
            connection = self.connections.get(frame.stream_id)
            if connection is not None:
                if frame.data:
                    await connection.send(frame.data)
                if frame.fin:
                    await connection.close_write()
            return  # data on an error stream, or after a reset: nothing reads it
        if frame.kind == SYN_STREAM:
            await self._open(self.framer.syn_stream(frame))
        elif frame.kind == PING:
            await self._write(Framer.ping(frame.payload))
        elif frame.kind == RST_STREAM and len(frame.payload) >= 4:
            (stream_id,) = struct.unpack_from(">I", frame.payload)
            connection = self.connections.pop(stream_id & 0x7FFFFFFF, None)
            if connection is not None:
                connection.cancel()
        elif frame.kind == GOAWAY:
            raise _GoneAway()
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing this server acts on.

    async def _open(self, syn: SynStream) -> None:
        async with self.lock:
            await self.websocket.send_bytes(self.framer.syn_reply(syn.stream_id))
        kind = syn.headers.get("streamtype", "")
        request = syn.headers.get("requestid", "")
        if kind == "error":
            self.error_streams[request] = syn.stream_id
            return
        if kind != "data":
            await self._write(Framer.rst_stream(syn.stream_id, PROTOCOL_ERROR))
            return
        try:
            port = int(syn.headers.get("port", ""))
            if not 0 < port < 65536:
                raise ValueError(port)
        except ValueError:
            await self._fail(syn.stream_id, request, f'invalid port "{syn.headers.get("port")}"')
            return
        connection = self.open_connection(port)
        self.connections[syn.stream_id] = connection
        if syn.fin:
            await connection.close_write()
        pump = asyncio.create_task(self._pump(syn.stream_id, request, port, connection))
        self.pumps.add(pump)
        pump.add_done_callback(self.pumps.discard)

    async def _pump(
        self, stream_id: int, request: str, port: int, connection: AgentConnection
    ) -> None:
        """The pod's bytes onto the data stream; at the end, FIN on both streams."""
        failure = ""
        try:
            async for data in connection.received():
                await self._write(Framer.data(stream_id, data))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED:
                return
            failure = forward_failure(error, port, self.pod)
        except (WebSocketDisconnect, RuntimeError):
            return  # the client is gone: nothing to finish
        finally:
            self.connections.pop(stream_id, None)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self._fail(stream_id, request, failure)

    async def _fail(self, stream_id: int, request: str, failure: str) -> None:
        """End a connection: its error (if any) on the error stream, then FIN on both."""
        error_stream = self.error_streams.pop(request, None)
        if error_stream is not None:
            if failure:
                await self._write(Framer.data(error_stream, failure.encode()))
            await self._write(Framer.data(error_stream, b"", fin=True))
        await self._write(Framer.data(stream_id, b"", fin=True))

    async def _write(self, frame: bytes) -> None:
        async with self.lock:
            await self.websocket.send_bytes(frame)
