"""Serving NodeControl on its own port, in the API server's event loop."""

from __future__ import annotations

import grpc

from controlplane.agentapi.service import NodeControlService, NodeTimings
from controlplane.apiserver.addressplan import AddressPlan
from controlplane.apiserver.objects import Objects
from corral.api.resources import Registry
from corral.proto import agent_pb2_grpc


async def start_agent_server(
    objects: Objects,
    registry: Registry,
    host: str,
    port: int,
    plan: AddressPlan | None = None,
    timings: NodeTimings | None = None,
) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ]
    )
    agent_pb2_grpc.add_NodeControlServicer_to_server(
        NodeControlService(objects, registry, timings, plan), server
    )
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server
