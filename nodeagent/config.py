"""The node agent's settings, with Kubernetes' defaults where Kubernetes has them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from corral.clock import Clock, SystemClock
from nodeagent.containerlogs import ContainerLogLimits
from nodeagent.podnetwork import NetworkOptions


@dataclass
class AgentConfig:
    node_name: str
    server: str  # the REST API, for Secrets, ConfigMaps and Events
    control: str  # host:port of the NodeControl gRPC service
    data_dir: Path
    runtime: str = "docker"
    docker_host: str = "unix:///var/run/docker.sock"
    pause_image: str = "corral.local/pause:1"
    # Container creations and starts in flight in the runtime at once: as many
    # as the floor in bench/agent_bench.py runs `docker run` with. Agents that
    # share one dockerd should share this too (the bench's three run 4 each).
    parallel_starts: int = 10
    # Where the control plane dials this agent for logs and exec.
    listen_host: str = "127.0.0.1"
    listen_port: int = 10250
    labels: dict[str, str] = field(default_factory=dict)
    # Capacity overrides; the real machine's figures otherwise.
    cpu: str | None = None
    memory: str | None = None
    max_pods: int = 110
    # CrashLoopBackOff: 10 s, doubling, capped at 5 min, reset after 10 min of
    # clean running, as in Kubernetes; tests shrink them.
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    # How often every pod is reconciled even without an event.
    resync_seconds: float = 10.0
    # Self-fencing (nodeagent.fencing): StatefulSet pods stop after this long
    # without an acknowledged heartbeat; 0 turns it off.
    fence_after: float = 20.0
    # How often container and node usage is sampled and reported (nodeagent.usage).
    usage_interval: float = 10.0
    # Status updates are gathered for this long and sent as one batch.
    status_batch_seconds: float = 0.05
    # TLS: the cluster CA, where the node's certificate lives, and the
    # token that gets the first one. An http:// server needs none of them.
    ca_file: Path | None = None
    cert_dir: Path | None = None
    bootstrap_token: str | None = None
    # The pod network (nodeagent.podnetwork); None leaves pods with only
    # loopback, as the hollow runtime and single-purpose tests want.
    network: NetworkOptions | None = None
    # The address other nodes and the control plane reach this node at;
    # default: the local address that routes towards the control plane.
    node_ip: str | None = None
    # A label on every container, so a local cluster's teardown knows its own.
    cluster_id: str = ""
    # Docker's rotation of each container's log (nodeagent.containerlogs), and
    # the cluster log store its lines are shipped to ("" for none).
    container_log_limits: ContainerLogLimits = field(default_factory=ContainerLogLimits)
    log_store: str = ""
    clock: Clock = field(default_factory=SystemClock)

    @property
    def secure(self) -> bool:
        return self.server.startswith("https://")

    @property
    def certs_dir(self) -> Path:
        return self.cert_dir or self.data_dir / "pki"

    @property
    def network_state_dir(self) -> Path:
        return self.data_dir / "network"

    @property
    def pods_dir(self) -> Path:
        return self.data_dir / "pods"
