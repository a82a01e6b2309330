"""``corral apiserver``: run the API server alone, against an etcd cluster."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import socket
import ssl
import sys

import uvicorn

from controlplane.apiserver.app import create_app
from controlplane.apiserver.config import Security, ServerConfig
from controlplane.apiserver.cpus import usable_cpus
from controlplane.apiserver.serving import PolicyConfig
from controlplane.apiserver.tlsserving import CertAwareHttpProtocol, CertAwareWebSocketProtocol
from controlplane.apiserver.workerconfig import WORKER_HEADER, worker_config
from controlplane.apiserver.workers import supervise
from controlplane.auth.serviceaccounttokens import DEFAULT_ISSUER
from controlplane.storage.etcd import EtcdTLS
from corral import durations
from corral.logformat import add_log_format_flag, configure_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corral apiserver", description=__doc__)
    _add_serving_flags(p)
    # The order of the calls is the order of --help and of the usage line.
    tls = p.add_argument_group("security")
    _add_tls_flags(tls)
    _add_service_account_flags(p.add_argument_group("service account tokens"))
    _add_agent_tls_flags(tls)
    _add_limit_flags(p.add_argument_group("encryption, audit and limits"))
    _add_worker_flags(p.add_argument_group("worker processes"))
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    add_log_format_flag(p)
    return p


def _add_worker_flags(group: argparse._ArgumentGroup) -> None:
    """How many processes serve the port; the hidden flags are the supervisor's to its workers."""
    group.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="processes serving the API port, each on a core of its own (default: the cores "
        "this process may use, from its CPU affinity and cgroup quota; 1: no supervisor)",
    )
    group.add_argument(
        "--workers-reuse-port",
        action="store_true",
        help="give each worker an SO_REUSEPORT socket of its own (spread by address hash) "
        "instead of one shared socket (taken by whichever worker is idle)",
    )
    group.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    group.add_argument("--worker-count", type=_positive, default=1, help=argparse.SUPPRESS)
    group.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    group.add_argument("--usage-peer-fds", default="", help=argparse.SUPPRESS)
    group.add_argument("--usage-fd", type=int, default=None, help=argparse.SUPPRESS)
    group.add_argument("--worker-metrics-dir", default=None, help=argparse.SUPPRESS)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_serving_flags(p: argparse.ArgumentParser) -> None:
    """etcd, the listening address, and the cluster's address ranges."""
    p.add_argument(
        "--etcd",
        default="http://127.0.0.1:2379",
        help="comma-separated etcd client URLs (default: %(default)s)",
    )
    p.add_argument("--etcd-prefix", default="/registry", help="key prefix (default: %(default)s)")
    p.add_argument("--etcd-cafile", help="CA bundle for etcd over TLS")
    p.add_argument("--etcd-certfile", help="client certificate for etcd")
    p.add_argument("--etcd-keyfile", help="client key for etcd")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port", type=int, default=6443, help="port to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--agent-port",
        type=int,
        default=None,
        help="serve node agents' gRPC protocol on this port (default: --port + 1)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics on this port, with the API's TLS, authentication and RBAC "
        "(0: any free port; default: off)",
    )
    p.add_argument(
        "--cluster-cidr",
        default="10.244.0.0/16",
        help="pod addresses; each node gets a slice (default: %(default)s)",
    )
    p.add_argument(
        "--node-cidr-mask-size",
        type=int,
        default=24,
        help="the size of each node's slice of --cluster-cidr (default: %(default)s)",
    )
    p.add_argument(
        "--service-cidr", default="10.96.0.0/16", help="Service ClusterIPs (default: %(default)s)"
    )
    p.add_argument(
        "--service-node-port-range", default="30000-32767", help="NodePorts (default: %(default)s)"
    )
    p.add_argument(
        "--compaction-interval",
        type=float,
        default=300.0,
        help="seconds of etcd history kept for resuming watches (default: %(default)s)",
    )
    p.add_argument(
        "--event-ttl",
        type=_duration,
        default=3600.0,
        help="how long Events are kept, e.g. 1h or 5m30s; 0 keeps them (default: 1h)",
    )


def _duration(text: str) -> float:
    try:
        return durations.parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_tls_flags(tls: argparse._ArgumentGroup) -> None:
    """The serving certificate and how clients are authenticated."""
    tls.add_argument("--tls-cert-file", help="the serving certificate (PEM)")
    tls.add_argument("--tls-private-key-file", help="the serving certificate's key")
    tls.add_argument(
        "--client-ca-file",
        help="CA that client certificates must chain to; also signs node certificates",
    )
    tls.add_argument(
        "--client-ca-key-file",
        help="the CA's key, to sign certificates for nodes that join with a bootstrap token",
    )
    tls.add_argument(
        "--token-auth-file", help='static bearer tokens: token,user,uid,"group1,group2"'
    )


def _add_service_account_flags(accounts: argparse._ArgumentGroup) -> None:
    """How service account tokens are signed and checked."""
    accounts.add_argument(
        "--service-account-signing-key-file",
        help="ECDSA (or RSA) private key that signs the tokens TokenRequest issues",
    )
    accounts.add_argument(
        "--service-account-key-file",
        action="append",
        default=[],
        help="PEM public keys (or private keys, certificates) that verify tokens; may repeat",
    )
    accounts.add_argument(
        "--service-account-issuer",
        action="append",
        default=[],
        help="the tokens' iss; the first signs, every one is accepted; may repeat "
        f"(default: {DEFAULT_ISSUER})",
    )
    accounts.add_argument(
        "--api-audiences",
        action="append",
        default=[],
        help="comma-separated audiences a token must name (default: the issuers)",
    )
    accounts.add_argument(
        "--legacy-service-account-token-secrets",
        action="store_true",
        help="fill and accept tokens in kubernetes.io/service-account-token Secrets "
        "(anyone who may create Secrets can then mint tokens)",
    )


def _add_agent_tls_flags(tls: argparse._ArgumentGroup) -> None:
    """Mutual TLS with node agents, and the development escape hatch."""
    tls.add_argument("--agent-client-certificate", help="client certificate shown to node agents")
    tls.add_argument("--agent-client-key", help="its key")
    tls.add_argument(
        "--node-serving-ca-file",
        help="CA that node agents' serving certificates chain to (logs, exec); "
        "trusted by the API server alone",
    )
    tls.add_argument(
        "--node-serving-ca-key-file",
        help="its key, to sign the serving certificates registered nodes ask for",
    )
    tls.add_argument(
        "--insecure-dev-http",
        action="store_true",
        help="DEVELOPMENT ONLY: plain HTTP with no authentication; loopback addresses only",
    )


def _add_limit_flags(limits: argparse._ArgumentGroup) -> None:
    """Encryption at rest, the audit log, and the limits on requests."""
    limits.add_argument(
        "--encryption-provider-config",
        help="EncryptionConfiguration file: which resources are encrypted at rest, and the keys",
    )
    limits.add_argument("--audit-log-path", help="write the audit log (JSON lines) here")
    limits.add_argument(
        "--audit-log-maxsize", type=int, default=100, help="MiB before rotating (default: 100)"
    )
    limits.add_argument(
        "--audit-log-maxbackup", type=int, default=5, help="rotated files kept (default: 5)"
    )
    limits.add_argument(
        "--max-requests-inflight",
        type=int,
        default=400,
        help="concurrent reads before answering 429 (default: %(default)s; 0: no limit)",
    )
    limits.add_argument(
        "--max-mutating-requests-inflight",
        type=int,
        default=200,
        help="concurrent writes before answering 429 (default: %(default)s; 0: no limit)",
    )
    limits.add_argument(
        "--max-watches-per-user",
        type=int,
        default=200,
        help="concurrent watches one user may hold before 429 (default: %(default)s; 0: no limit)",
    )
    limits.add_argument(
        "--pod-security-default",
        choices=("privileged", "baseline", "restricted"),
        default="baseline",
        help="the level of namespaces without a pod-security label (default: %(default)s)",
    )


def security_from(args: argparse.Namespace) -> Security | None:
    if args.insecure_dev_http:
        if not _loopback(args.host):
            raise SystemExit(
                f"--insecure-dev-http serves without authentication; --host {args.host} "
                "is not a loopback address"
            )
        return None
    missing = [
        flag
        for flag, value in (
            ("--tls-cert-file", args.tls_cert_file),
            ("--tls-private-key-file", args.tls_private_key_file),
            ("--client-ca-file", args.client_ca_file),
        )
        if not value
    ]
    if args.node_serving_ca_key_file and not args.node_serving_ca_file:
        raise SystemExit("--node-serving-ca-key-file needs --node-serving-ca-file")
    if missing:
        raise SystemExit(
            "the API server serves HTTPS: pass "
            + ", ".join(missing)
            + " (corral up and corral init create them), "
            "or --insecure-dev-http on loopback for development"
        )
    return Security(
        cert_file=args.tls_cert_file,
        key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        client_ca_key_file=args.client_ca_key_file,
        token_auth_file=args.token_auth_file,
        service_account_signing_key_file=args.service_account_signing_key_file,
        service_account_key_files=tuple(args.service_account_key_file),
        service_account_issuers=tuple(args.service_account_issuer) or (DEFAULT_ISSUER,),
        api_audiences=tuple(
            a.strip() for value in args.api_audiences for a in value.split(",") if a.strip()
        ),
        legacy_service_account_token_secrets=args.legacy_service_account_token_secrets,
        agent_client_cert_file=args.agent_client_certificate,
        agent_client_key_file=args.agent_client_key,
        node_serving_ca_file=args.node_serving_ca_file,
        node_serving_ca_key_file=args.node_serving_ca_key_file,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def config_from(args: argparse.Namespace) -> ServerConfig:
    tls = (
        EtcdTLS(args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile)
        if args.etcd_cafile
        else None
    )
    return ServerConfig(
        etcd_endpoints=[e.strip() for e in args.etcd.split(",") if e.strip()],
        etcd_prefix=args.etcd_prefix,
        etcd_tls=tls,
        host=args.host,
        port=args.port,
        agent_port=args.agent_port if args.agent_port is not None else args.port + 1,
        metrics_port=args.metrics_port,
        compaction_interval_seconds=args.compaction_interval,
        event_ttl_seconds=args.event_ttl,
        cluster_cidr=args.cluster_cidr,
        node_cidr_prefix=args.node_cidr_mask_size,
        service_cidr=args.service_cidr,
        node_port_range=_port_range(args.service_node_port_range),
        security=security_from(args),
        encryption_config_file=args.encryption_provider_config,
        audit_log_path=args.audit_log_path,
        audit_log_max_bytes=args.audit_log_maxsize * 1024 * 1024,
        audit_log_backups=args.audit_log_maxbackup,
        max_requests_inflight=args.max_requests_inflight,
        max_mutating_requests_inflight=args.max_mutating_requests_inflight,
        max_watches_per_user=args.max_watches_per_user,
        pod_security_default=args.pod_security_default,
    )


def tune_gc() -> None:
    """Collect young objects less often, and keep start-up objects out of collections.

    The watch cache holds every object for the life of the process, so full
    collections walk an ever larger heap; with CPython's defaults they run
    often enough under write load to add tens of milliseconds to p99.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _port_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last)
    except ValueError:
        raise SystemExit(f"--service-node-port-range: expected FIRST-LAST, got {text!r}") from None
    if not 0 < low <= high < 65536:
        raise SystemExit(f"--service-node-port-range: {text!r} is not a range of ports")
    return low, high


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    config = config_from(args)
    if args.listen_fd is None:
        count = args.workers if args.workers is not None else usable_cpus()
        if count > 1:
            return supervise(
                argv, config.host, config.port, count, reuse_port=args.workers_reuse_port
            )
        return serve(config, args.log_level)
    config = worker_config(config, args.worker_index, args.worker_count, args.worker_metrics_dir)
    config.usage_peer_fds = tuple(int(fd) for fd in args.usage_peer_fds.split(",") if fd)
    config.usage_fd = args.usage_fd
    sock = socket.socket(fileno=args.listen_fd)
    return serve(config, args.log_level, sock=sock, worker=args.worker_index)


def serve(
    config: ServerConfig,
    log_level: str,
    *,
    sock: socket.socket | None = None,
    worker: int | None = None,
) -> int:
    """Run one API server process: alone on its port, or as a worker on an inherited socket."""
    app = create_app(config)
    if os.environ.get("CORRAL_GC_DEFAULTS") != "1":
        tune_gc()
    security = config.security
    tls: dict[str, object] = {}
    if security is not None:
        tls = {
            "ssl_certfile": security.cert_file,
            "ssl_keyfile": security.key_file,
            "ssl_ca_certs": security.client_ca_file,
            # Asked for and verified when offered; tokens need no certificate.
            "ssl_cert_reqs": ssl.CERT_OPTIONAL,
        }
    server = uvicorn.Server(
        PolicyConfig(
            app,
            host=config.host,
            port=config.port,
            loop="uvloop",
            http=CertAwareHttpProtocol,
            ws=CertAwareWebSocketProtocol,
            lifespan="on",
            access_log=False,
            # uvicorn's loggers go through the root handler, so that
            # --log-format applies to them too.
            log_config=None,
            log_level=log_level.lower(),
            timeout_graceful_shutdown=2,
            # corral is not behind a proxy it trusts; and per-response headers
            # nobody reads cost measurable CPU on the create path.
            proxy_headers=False,
            server_header=False,
            date_header=False,
            # Which worker answered: cheap (uvicorn encodes it once), and how a
            # client or a test tells the workers apart.
            headers=[] if worker is None else [(WORKER_HEADER, str(worker))],
            **tls,  # type: ignore[arg-type]
        )
    )
    server.run(sockets=None if sock is None else [sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
