"""What one of an API server's N workers serves, and its share of the server's limits.

Every worker serves the API. Listeners that cannot be shared by several
processes stay with worker 0: the node agents' gRPC port (each agent holds
one stream, and the server finds it in memory) and ``--metrics-port``,
where worker 0 serves every worker's figures, read from the others over
Unix sockets in the supervisor's private directory (workermetrics.py).
Worker 0 alone compacts etcd. The
in-flight limits are divided among the workers so that the server as a
whole keeps the limits it was given; each worker writes an audit log of its
own, because N writers rotating one file by size would rename it under one
another.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from controlplane.apiserver.config import ServerConfig
from controlplane.apiserver.workermetrics import peer_socket

WORKER_HEADER = "X-Corral-Worker"


def worker_config(
    config: ServerConfig, index: int, count: int, metrics_dir: str | None = None
) -> ServerConfig:
    """``metrics_dir``: where the workers' metrics sockets go (the supervisor's, private)."""
    if count <= 1:
        return config
    first = index == 0
    # Without --metrics-port no worker counts requests, so none needs a socket.
    sockets = metrics_dir if config.metrics_port is not None else None
    return dataclasses.replace(
        config,
        agent_port=config.agent_port if first else None,
        metrics_port=config.metrics_port if first else None,
        metrics_peer_sockets=(
            tuple(peer_socket(sockets, i) for i in range(1, count))
            if sockets is not None and first
            else ()
        ),
        metrics_socket=peer_socket(sockets, index) if sockets is not None and not first else None,
        run_compactor=first,
        audit_log_path=worker_audit_path(config.audit_log_path, index),
        max_requests_inflight=share(config.max_requests_inflight, count),
        max_mutating_requests_inflight=share(config.max_mutating_requests_inflight, count),
    )


def share(limit: int, count: int) -> int:
    """One worker's part of a server-wide limit; 0 (no limit) stays 0."""
    return 0 if limit <= 0 else max(1, math.ceil(limit / count))


def worker_audit_path(path: str | None, index: int) -> str | None:
    """Worker 0 keeps ``audit.log``; worker 2 writes ``audit.worker2.log`` beside it."""
    if path is None or index == 0:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}.worker{index}{p.suffix}"))
