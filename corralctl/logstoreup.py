"""The cluster log store in ``corral up``: systemd-journal-remote beside the control plane.

It listens on the loopback (the agents of a local cluster run on this
machine) and writes journal files into ``D/logstore``, beside ``D/kubeconfig``,
where ``corral logs`` looks for them. Without journal-remote installed the
cluster runs as before, with a note: logs then stay on the nodes.
"""

from __future__ import annotations

import socket
from pathlib import Path

from corralctl import logstore, processes
from corralctl.supervisor import Supervisor


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start(directory: Path, host: str, port: int, log_path: Path) -> processes.ManagedProcess:
    """journal-remote taking uploads at host:port, once it listens; raises ProcessError."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = logstore.journal_remote_argv(directory, f"{host}:{port}")
    process = processes.ManagedProcess("log-store", argv, log_path)
    process.start()
    try:
        processes.wait_until(
            lambda: listening(host, port), 10, "the log store", alive=process.running
        )
    except processes.ProcessError:
        process.stop(5)
        raise
    return process


def agent_flags(supervisor: Supervisor, data_dir: Path, logs: Path) -> list[str]:
    """Start the store under ``supervisor``; the agents' flags to ship to it ([] without it)."""
    try:
        logstore.journal_remote_binary()
    except logstore.LogStoreError as error:
        print(f"log store     none: {error}")
        return []
    host, port = "127.0.0.1", processes.free_port()
    process = start(data_dir / "logstore", host, port, logs / "log-store.log")
    supervisor.add(process)
    print(f"log store     http://{host}:{port} into {data_dir / 'logstore'}")
    return ["--log-store", f"http://{host}:{port}"]
