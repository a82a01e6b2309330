"""Serving NodeControl on its own port, in the API server's event loop."""

from __future__ import annotations

from pathlib import Path

import grpc

from controlplane.agentapi.identity import NodeIdentity
from controlplane.agentapi.service import NodeControlService, NodeTimings
from controlplane.apiserver.addressplan import AddressPlan
from controlplane.apiserver.config import Security
from controlplane.apiserver.objects import Objects
from controlplane.usage.store import UsageStore
from corral.api.resources import Registry
from corral.proto import agent_pb2_grpc


def server_credentials(security: Security) -> grpc.ServerCredentials:
    """Mutual TLS: the API server's certificate, and a client certificate from the CA.

    Python's gRPC cannot ask for a certificate without requiring it, so a
    joining agent gets its certificate over REST first (``nodecerts``).
    """
    return grpc.ssl_server_credentials(
        [(Path(security.key_file).read_bytes(), Path(security.cert_file).read_bytes())],
        root_certificates=Path(security.client_ca_file).read_bytes(),
        require_client_auth=True,
    )


async def start_agent_server(
    objects: Objects,
    registry: Registry,
    host: str,
    port: int,
    plan: AddressPlan | None = None,
    timings: NodeTimings | None = None,
    *,
    security: Security | None = None,
    usage: UsageStore | None = None,
) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ]
    )
    service = NodeControlService(
        objects,
        registry,
        timings,
        plan,
        identity=NodeIdentity(secure=security is not None),
        usage=usage,
    )
    agent_pb2_grpc.add_NodeControlServicer_to_server(service, server)
    if security is None:
        server.add_insecure_port(f"{host}:{port}")
    else:
        server.add_secure_port(f"{host}:{port}", server_credentials(security))
    await server.start()
    return server
