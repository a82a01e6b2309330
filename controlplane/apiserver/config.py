"""API server settings, with the defaults a single machine wants."""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.auth.serviceaccounttokens import DEFAULT_ISSUER
from controlplane.storage.etcd import EtcdTLS
from corral.clock import Clock, SystemClock


@dataclass(frozen=True)
class Security:
    """Files for HTTPS, client certificates, tokens and signing node certificates."""

    cert_file: str
    key_file: str
    # Verifies client certificates, and signs the certificates nodes ask for
    # with a bootstrap token.
    client_ca_file: str
    client_ca_key_file: str | None = None
    token_auth_file: str | None = None
    # Bound service account tokens (TokenRequest): the key that signs them,
    # public keys that verify them (besides the signing key's own), the
    # issuers (the first signs, all are accepted) and the audiences accepted
    # (default: the issuers). No signing key: no tokens are issued.
    service_account_signing_key_file: str | None = None
    service_account_key_files: tuple[str, ...] = ()
    service_account_issuers: tuple[str, ...] = (DEFAULT_ISSUER,)
    api_audiences: tuple[str, ...] = ()
    # Secrets of type kubernetes.io/service-account-token get a token that
    # authenticates: Kubernetes' pre-1.22 tokens, off unless asked for.
    legacy_service_account_token_secrets: bool = False
    # What the API server shows node agents when it proxies logs and exec.
    agent_client_cert_file: str | None = None
    agent_client_key_file: str | None = None
    # The node serving CA: what agents' serving certificates chain to (only
    # the API server trusts it), and its key, to sign them.
    node_serving_ca_file: str | None = None
    node_serving_ca_key_file: str | None = None


@dataclass
class ServerConfig:
    etcd_endpoints: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2379"])
    etcd_prefix: str = "/registry"
    # A call to etcd with its retries; one attempt (see EtcdClient).
    etcd_timeout_seconds: float = 5.0
    etcd_attempt_timeout_seconds: float = 2.0
    etcd_tls: EtcdTLS | None = None
    host: str = "127.0.0.1"
    port: int = 6443
    # Where node agents reach the NodeControl gRPC service; None: not served.
    agent_port: int | None = None
    # Where /metrics is served, behind authentication and RBAC; None: not served.
    metrics_port: int | None = None
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
    # Whether this process compacts etcd: one of an API server's workers does.
    run_compactor: bool = True
    # Worker 0 sends the agents' usage reports on these sockets; the other
    # workers read them from usage_fd (controlplane/apiserver/usagepeers.py).
    usage_peer_fds: tuple[int, ...] = ()
    usage_fd: int | None = None
    # With --metrics-port and several workers: worker 0 reads the others'
    # figures from these Unix sockets when scraped, and each other worker
    # serves its own on metrics_socket (controlplane/apiserver/workermetrics.py).
    metrics_peer_sockets: tuple[str, ...] = ()
    metrics_socket: str | None = None
    # Events are written with an etcd lease this long, as kube-apiserver's
    # --event-ttl; 0 keeps them for ever.
    event_ttl_seconds: float = 3600.0
    # Kubernetes' EncryptionConfiguration; None stores everything in the clear.
    encryption_config_file: str | None = None
    # JSON lines of every mutating or refused request, rotated by size.
    audit_log_path: str | None = None
    audit_log_max_bytes: int = 100 * 1024 * 1024
    audit_log_backups: int = 5
    # Concurrent requests beyond these get 429 with Retry-After (0: no limit).
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    # Concurrent watches one user may hold; beyond it 429 (0: no limit).
    max_watches_per_user: int = 200
    pod_security_default: str = "baseline"
    clock: Clock = field(default_factory=SystemClock)
    # None only on the development-only plain HTTP port: no authentication,
    # everyone is an administrator, and only loopback may listen.
    security: Security | None = None
