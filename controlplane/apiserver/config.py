"""API server settings, with the defaults a single machine wants."""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.storage.etcd import EtcdTLS
from corral.clock import Clock, SystemClock


@dataclass
class ServerConfig:
    etcd_endpoints: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2379"])
    etcd_prefix: str = "/registry"
    etcd_timeout_seconds: float = 5.0
    etcd_tls: EtcdTLS | None = None
    host: str = "127.0.0.1"
    port: int = 6443
    # Where node agents reach the NodeControl gRPC service; None: not served.
    agent_port: int | None = None
    # The address plan: each node gets a /node_cidr_prefix of cluster_cidr;
    # Services get ClusterIPs from service_cidr and NodePorts from the range.
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_prefix: int = 24
    service_cidr: str = "10.96.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)
    # Kubernetes accepts 3 MiB request bodies; etcd refuses values over 1.5 MiB.
    max_body_bytes: int = 3 * 1024 * 1024
    max_object_bytes: int = 1_500_000
    watch_history_size: int = 10_000
    watch_min_timeout_seconds: float = 1800.0
    watch_bookmark_interval_seconds: float = 60.0
    compaction_interval_seconds: float = 300.0
    clock: Clock = field(default_factory=SystemClock)
