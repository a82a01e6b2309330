"""NodeAgent: logs, exec and port-forward for this node's pods, dialled by the control plane."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import grpc

from corral.objects import meta
from corral.pki import KeyPair
from corral.proto import agent_pb2 as pb
from corral.proto import agent_pb2_grpc
from nodeagent.credentials import NodeCredentials, caller_allowed
from nodeagent.podworker import PodWorker
from nodeagent.portforward import ForwardRefused, connect_in_pod, relay
from nodeagent.runtime.base import ContainerRecord, Runtime, RuntimeFailure


class Agent(Protocol):
    """What this service reads of the agent that runs it (nodeagent.agent.Agent).

    A protocol, not an import: the agent starts this server, and the server
    must not import the agent back.
    """

    @property
    def node(self) -> str: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def workers(self) -> Mapping[str, PodWorker]: ...


log = logging.getLogger(__name__)


class NodeAgentService(agent_pb2_grpc.NodeAgentServicer):  # type: ignore[misc]
    def __init__(self, agent: Agent, *, secure: bool = False) -> None:
        self.agent = agent
        self.secure = secure

    async def _require_apiserver(self, context: Any) -> None:
        # TLS already checked the certificate chains to the cluster CA; a
        # node's client certificate does too, and must not open another
        # node's pods. caller_allowed reads the caller with pki's one reader,
        # which refuses a subject with several CNs.
        if self.secure and not caller_allowed(context):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "only the API server may call a node agent"
            )

    def _find(
        self, namespace: str, name: str, container: str, previous: bool
    ) -> tuple[ContainerRecord | None, str]:
        for worker in self.agent.workers.values():
            pod = worker.pod
            if pod is None:
                continue
            metadata = meta(pod)
            if metadata.get("namespace") != namespace or metadata.get("name") != name:
                continue
            spec = pod.get("spec") or {}
            names = [c["name"] for c in spec.get("containers") or []]
            wanted = container or (names[0] if len(names) == 1 else "")
            if not wanted:
                return None, (
                    f"a container name must be specified for pod {name}, choose one "
                    f"of: [{' '.join(names)}]"
                )
            state = worker.apps.get(wanted) or worker.init.get(wanted)
            if state is None:
                return None, f"container {wanted} is not valid for pod {name}"
            record = state.previous if previous else state.current
            if record is None:
                what = "previous terminated" if previous else "running"
                return None, f'{what} container "{wanted}" in pod "{name}" not found'
            return record, ""
        return None, f'pod "{name}" is not running on node "{self.agent.node}"'

    async def Logs(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        await self._require_apiserver(context)
        record, problem = self._find(
            request.namespace, request.name, request.container, request.previous
        )
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, problem)
            return
        since = None
        if request.since_seconds > 0:
            since = datetime.now(UTC) - timedelta(seconds=request.since_seconds)
        sent = 0
        async for chunk in self.agent.runtime.logs(
            record.id,
            follow=request.follow and not request.previous,
            tail=request.tail_lines if request.tail_lines >= 0 else None,
            since=since,
            timestamps=request.timestamps,
        ):
            if request.limit_bytes and sent + len(chunk) > request.limit_bytes:
                yield pb.LogChunk(data=chunk[: request.limit_bytes - sent])
                return
            sent += len(chunk)
            yield pb.LogChunk(data=chunk)

    async def Exec(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        await self._require_apiserver(context)
        first = await request_iterator.__anext__()
        if not first.HasField("start"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must start")
            return
        start = first.start
        record, problem = self._find(start.namespace, start.name, start.container, False)
        if record is None or record.state != "running":
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                problem or f'container "{start.container}" is not running',
            )
            return
        session = await self.agent.runtime.exec_stream(
            record.id, list(start.command), tty=start.tty, stdin=start.stdin
        )

        async def pump_stdin() -> None:
            async for message in request_iterator:
                if message.HasField("stdin"):
                    await session.write(message.stdin)
                elif message.HasField("close_stdin"):
                    await session.close_stdin()

        feeder = asyncio.create_task(pump_stdin()) if start.stdin else None
        try:
            while True:
                item = await session.read()
                if item is None:
                    break
                stream, data = item
                if stream == 2:
                    yield pb.ExecOutput(stderr=data)
                else:
                    yield pb.ExecOutput(stdout=data)
            code = await session.exit_code()
            yield pb.ExecOutput(exit=pb.ExecExit(code=code))
        finally:
            # Ended early (the caller cancelled): without this the process
            # would keep its stdin open, and dockerd the connection, for no one.
            session.close()
            if feeder is not None:
                feeder.cancel()
                # Its CancelledError is the one asked for just above (gather
                # returns it, and still lets this generator be cancelled).
                (outcome,) = await asyncio.gather(feeder, return_exceptions=True)
                if isinstance(outcome, Exception):
                    log.info("exec: the caller's stdin stream broke: %s", outcome)

    async def PortForward(  # noqa: N802
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[Any]:
        await self._require_apiserver(context)
        first = await request_iterator.__anext__()
        if not first.HasField("start"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must start")
            return
        start = first.start
        netns, problem = await self._pod_netns(start.namespace, start.name)
        if netns is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, problem)
            return
        try:
            reader, writer = await connect_in_pod(netns, start.port)
        except ForwardRefused as refused:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(refused))
            return

        async def incoming() -> AsyncIterator[bytes]:
            async for message in request_iterator:
                if message.HasField("data"):
                    yield message.data

        async for data in relay(reader, writer, incoming()):
            yield pb.PortForwardOutput(data=data)

    async def _pod_netns(self, namespace: str, name: str) -> tuple[str | None, str]:
        """The network namespace of a running pod's sandbox, or (None, why not)."""
        for worker in self.agent.workers.values():
            pod = worker.pod
            metadata = (pod or {}).get("metadata") or {}
            if metadata.get("namespace") != namespace or metadata.get("name") != name:
                continue
            if worker.sandbox is None:
                return None, f'pod "{name}" has no running sandbox'
            try:
                return await self.agent.runtime.netns_path(worker.sandbox), ""
            except RuntimeFailure as error:  # the sandbox died: a 4xx, not a 500
                return None, f'pod "{name}" is not running: {error}'
        return None, f'pod "{name}" is not running on node "{self.agent.node}"'


async def start_agent_server(
    agent: Agent,
    host: str,
    port: int,
    credentials: NodeCredentials | None = None,
    serving: KeyPair | None = None,
) -> grpc.aio.Server:
    """Serve logs, exec and port-forward: with ``credentials``, over TLS (``serving``)."""
    if credentials is not None and serving is None:
        raise ValueError("a secure agent server needs its serving certificate")
    server = grpc.aio.server()
    agent_pb2_grpc.add_NodeAgentServicer_to_server(
        NodeAgentService(agent, secure=credentials is not None), server
    )
    if credentials is None or serving is None:
        server.add_insecure_port(f"{host}:{port}")
    else:
        server.add_secure_port(f"{host}:{port}", credentials.server(serving))
    await server.start()
    return server
