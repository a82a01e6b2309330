"""``pods/log`` and ``pods/exec``: proxied to the agent of the pod's node, over gRPC.

As the Kubernetes API server does with kubelets, the control plane finds
the pod's node, dials that node's agent, and relays the stream: logs as
chunked ``text/plain``, exec over a WebSocket speaking one of Kubernetes'
channel protocols (see channels.py: v5, v4, the first version and their
base64 variants). Port-forward (portforward.py) dials agents through here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from controlplane.agentapi.service import AGENT_ENDPOINT_ANNOTATION
from controlplane.apiserver import http
from controlplane.apiserver.channels import (
    CLOSE,
    ERROR,
    EXEC_PROTOCOLS,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    ChannelProtocol,
    negotiate,
    offered_protocols,
)
from controlplane.apiserver.objects import Objects
from controlplane.query import TRUE, request_query
from corral.api import errors
from corral.api.errors import ApiError
from corral.api.resources import Registry
from corral.objects import Obj
from corral.proto import agent_pb2 as pb
from corral.proto import agent_pb2_grpc

log = logging.getLogger(__name__)


def agent_credentials(
    node_serving_ca_file: str | None, client_cert_file: str | None, client_key_file: str | None
) -> grpc.ChannelCredentials | None:
    """Mutual TLS to agents: their serving certificates chain to the node serving CA.

    Not the cluster CA: that one signs no node serving certificates, and the
    node serving CA is trusted here alone, so a node's certificate is never
    taken for the API server's and the API server's never for a node's.
    """
    if not (node_serving_ca_file and client_cert_file and client_key_file):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=Path(node_serving_ca_file).read_bytes(),
        private_key=Path(client_key_file).read_bytes(),
        certificate_chain=Path(client_cert_file).read_bytes(),
    )


class NodeProxy:
    """Logs and exec, relayed to the agent of the pod's node.

    With ``credentials`` (the API server's client certificate and the node
    serving CA) the connection is mutual TLS, and the agent must present a
    serving certificate naming the pod's node: an agent endpoint annotation
    pointing elsewhere cannot redirect a session to another machine.
    ``secure`` without credentials refuses to proxy rather than dial an agent
    in the clear.
    """

    def __init__(
        self,
        objects: Objects,
        registry: Registry,
        credentials: grpc.ChannelCredentials | None = None,
        *,
        secure: bool = False,
    ) -> None:
        self.objects = objects
        self.credentials = credentials
        self.secure = secure
        pods = registry.by_kind("v1", "Pod")
        nodes = registry.by_kind("v1", "Node")
        assert pods is not None and nodes is not None
        self.pods, self.nodes = pods, nodes
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def agent(self, namespace: str, name: str) -> tuple[Obj, Any]:
        pod = (await self.objects.get(self.pods, namespace, name)).obj
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        node = (await self.objects.get(self.nodes, None, node_name)).obj
        endpoint = ((node.get("metadata") or {}).get("annotations") or {}).get(
            AGENT_ENDPOINT_ANNOTATION, ""
        )
        if not endpoint:
            status = node.get("status") or {}
            port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
            address = next(
                (
                    a.get("address")
                    for a in status.get("addresses") or []
                    if a.get("type") == "InternalIP"
                ),
                None,
            )
            if not port or not address:
                raise errors.service_unavailable(f'node "{node_name}" has no agent endpoint')
            endpoint = f"{address}:{port}"
        key = f"{node_name}@{endpoint}"
        channel = self._channels.get(key)
        if channel is None:
            if self.credentials is None and self.secure:
                raise errors.service_unavailable(
                    "this API server cannot reach node agents securely: it needs "
                    "--node-serving-ca-file, --agent-client-certificate and --agent-client-key"
                )
            if self.credentials is None:
                channel = grpc.aio.insecure_channel(endpoint)
            else:
                channel = grpc.aio.secure_channel(
                    endpoint,
                    self.credentials,
                    options=[("grpc.ssl_target_name_override", node_name)],
                )
            self._channels[key] = channel
        return pod, agent_pb2_grpc.NodeAgentStub(channel)

    # --- logs -----------------------------------------------------------------------------

    async def logs(self, request: Request, namespace: str, name: str) -> Response:
        query = request_query(request.scope)
        pod, stub = await self.agent(namespace, name)
        container = query.get("container", "")
        if not container:
            names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
            if len(names) > 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(names)}]"
                )
        logs_request = pb.LogRequest(
            namespace=namespace,
            name=name,
            container=container,
            follow=_flag(query.get("follow")),
            tail_lines=_int(query.get("tailLines"), "tailLines", -1),
            since_seconds=_int(query.get("sinceSeconds"), "sinceSeconds", 0),
            timestamps=_flag(query.get("timestamps")),
            previous=_flag(query.get("previous")),
            limit_bytes=_int(query.get("limitBytes"), "limitBytes", 0),
        )
        call = stub.Logs(logs_request)
        iterator = call.__aiter__()
        # Read the first chunk before answering, so that a missing container
        # is a proper 400 rather than an empty 200.
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            first = None
        except grpc.aio.AioRpcError as error:
            raise _as_api_error(error) from None

        async def stream() -> AsyncIterator[bytes]:
            try:
                if first is not None:
                    yield first.data
                async for chunk in iterator:
                    yield chunk.data
            except grpc.aio.AioRpcError as error:
                log.info("log stream of %s/%s ended: %s", namespace, name, error.details())
            finally:
                call.cancel()

        return StreamingResponse(stream(), media_type="text/plain")

    # --- exec -----------------------------------------------------------------------------

    async def exec(self, websocket: WebSocket, namespace: str, name: str) -> None:
        opened = await self._open_exec(websocket, namespace, name)
        if opened is None:
            return
        stub, start, protocol = opened
        inputs: asyncio.Queue[Any] = asyncio.Queue()
        await inputs.put(pb.ExecInput(start=start))

        async def requests() -> AsyncIterator[Any]:
            while True:
                item = await inputs.get()
                if item is None:
                    return
                yield item

        call = stub.Exec(requests())
        reader = asyncio.create_task(_relay_input(websocket, inputs, protocol))
        writer = asyncio.create_task(_relay_output(call, websocket, protocol))
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if not writer.done():
            # The client left (or closed early) before the command ended: stop
            # the command's stream rather than run it for no one.
            call.cancel()
        for task in (reader, writer):
            task.cancel()
        await asyncio.wait({reader, writer})
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            log.warning(
                "exec in %s/%s: the client's input failed",
                namespace,
                name,
                exc_info=reader.exception(),
            )
        if writer.cancelled() or writer.exception() is not None:
            return
        code, failure = writer.result()
        await _send_status(websocket, protocol, code, failure, f"{namespace}/{name}")

    async def _open_exec(
        self, websocket: WebSocket, namespace: str, name: str
    ) -> tuple[Any, pb.ExecStart, ChannelProtocol] | None:
        """Accept the WebSocket and say what to run; None if it was refused (and closed)."""
        query = request_query(websocket.scope)
        offered = offered_protocols(websocket.headers.get("sec-websocket-protocol", ""))
        protocol = negotiate(offered, EXEC_PROTOCOLS)
        command = query.getlist("command")
        try:
            if protocol is None:
                raise errors.bad_request(
                    "exec needs one of the subprotocols "
                    + ", ".join(p.name for p in EXEC_PROTOCOLS)
                )
            if not command:
                raise errors.bad_request("you must specify at least one command for the container")
            pod, stub = await self.agent(namespace, name)
        except ApiError as error:
            await refuse_websocket(websocket, error)
            return None
        container = query.get("container", "")
        if not container:
            names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
            container = names[0] if names else ""
        await websocket.accept(subprotocol=protocol.name or None)
        start = pb.ExecStart(
            namespace=namespace,
            name=name,
            container=container,
            command=command,
            stdin=_flag(query.get("stdin")),
            stdout=_flag(query.get("stdout"), True),
            stderr=_flag(query.get("stderr"), True),
            tty=_flag(query.get("tty")),
        )
        return stub, start, protocol


async def refuse_websocket(websocket: WebSocket, error: ApiError) -> None:
    """Refuse before the handshake: the Status as a plain HTTP answer where the server can."""
    response = http.status_response(error)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        # This server cannot answer a WebSocket with HTTP: close it with the reason.
        await websocket.close(code=1008, reason=error.message[:120])


async def _relay_input(
    websocket: WebSocket, inputs: asyncio.Queue[Any], protocol: ChannelProtocol
) -> None:
    """The client's stdin, terminal sizes and stdin close, onto the agent's stream."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            decoded = protocol.decode(message.get("bytes") or message.get("text") or b"")
            if decoded is None:
                continue
            channel, data = decoded
            if channel == STDIN:
                await inputs.put(pb.ExecInput(stdin=data))
            elif channel == RESIZE:
                size = orjson.loads(data)
                await inputs.put(
                    pb.ExecInput(
                        resize=pb.TerminalSize(
                            width=int(size.get("Width", 0)),
                            height=int(size.get("Height", 0)),
                        )
                    )
                )
            elif channel == CLOSE and protocol.version >= 5 and data[:1] == bytes([STDIN]):
                await inputs.put(pb.ExecInput(close_stdin=True))
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        await inputs.put(None)


async def _relay_output(
    call: Any, websocket: WebSocket, protocol: ChannelProtocol
) -> tuple[int, str]:
    """The agent's stdout and stderr, onto the WebSocket; (exit code, failure message)."""
    code = 0
    try:
        async for output in call:
            which = output.WhichOneof("output")
            if which == "stdout":
                await _send(websocket, protocol.encode(STDOUT, output.stdout))
            elif which == "stderr":
                await _send(websocket, protocol.encode(STDERR, output.stderr))
            elif which == "exit":
                code = output.exit.code
    except grpc.aio.AioRpcError as error:
        return code, error.details() or "exec failed"
    return code, ""


async def _send(websocket: WebSocket, message: bytes | str) -> None:
    if isinstance(message, str):
        await websocket.send_text(message)
    else:
        await websocket.send_bytes(message)


async def _send_status(
    websocket: WebSocket, protocol: ChannelProtocol, code: int, failure: str, pod: str
) -> None:
    """The exit status on the error channel (JSON from v4 on, before a failure's text); close."""
    status = _exec_status(code, failure)
    try:
        if protocol.status_as_json:
            await _send(websocket, protocol.encode(ERROR, orjson.dumps(status)))
        elif status["status"] != "Success":
            await _send(websocket, protocol.encode(ERROR, str(status["message"]).encode()))
        await websocket.close()
    except Exception as error:
        # The client left before the exit status: the session is over
        # either way, and there is no one left to tell.
        log.debug("exec in %s: the exit status was not delivered: %r", pod, error)


def _exec_status(code: int, failure: str) -> Obj:
    if failure:
        return {
            "metadata": {},
            "status": "Failure",
            "message": failure,
            "reason": "InternalError",
            "code": 500,
        }
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.lower() in TRUE


def _int(value: str | None, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(
            f'invalid query parameter {name}: "{value}" is not an integer'
        ) from None


def _as_api_error(error: grpc.aio.AioRpcError) -> ApiError:
    details = error.details() or "the node agent failed"
    if error.code() == grpc.StatusCode.NOT_FOUND:
        return errors.bad_request(details)
    if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return errors.service_unavailable(f"the node agent is unreachable: {details}")
    return errors.ApiError(502, "BadGateway", f"the node agent failed: {details}")
