"""``corral up``: a whole cluster on one machine, supervised until Ctrl-C.

It starts etcd (unless ``--etcd`` points at one), the API server and the
cluster's other processes as children, restarts any that crash, writes the
kubeconfig, and on SIGINT or SIGTERM stops them all in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType

from corral import dockerd, processes
from corral.cli import cluster, get, manifests
from corral.cli.context import CliContext
from corral.cli.write import run_apply
from corral.client import kubeconfig
from corral.client.kubeconfig import ClientConfig

# A child that crashes is restarted after this long, doubling to the cap,
# so a persistent failure does not spin.
_RESTART_BACKOFF = (0.5, 30.0)
_SUPERVISE_INTERVAL = 0.5


def default_data_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/corral"
    return str(Path.home() / ".local" / "share" / "corral")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("up", help="run a single-machine cluster until interrupted")
    p.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="where etcd data, logs and the kubeconfig live (default: %(default)s)",
    )
    p.add_argument("--port", type=int, default=6443, help="API port (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="API address (default: %(default)s)")
    p.add_argument(
        "--etcd",
        default="",
        help="comma-separated URLs of an existing etcd; default: run one locally",
    )
    p.add_argument(
        "--apply",
        action="append",
        default=[],
        metavar="FILE",
        help="apply these manifests once the cluster is ready",
    )
    p.add_argument(
        "--node-name",
        default=socket.gethostname(),
        help="the name of this machine's node (default: the hostname)",
    )
    p.add_argument(
        "--docker-host",
        default="",
        help="Docker to run pods with; default: the system's if it answers, "
        "otherwise a dockerd of corral's own under the data dir",
    )
    p.add_argument(
        "--cluster-cidr",
        default="10.244.0.0/16",
        help="pod addresses, a /24 of it per node (default: %(default)s)",
    )
    p.add_argument(
        "--service-cidr",
        default="10.96.0.0/16",
        help="Service ClusterIPs (default: %(default)s)",
    )
    p.add_argument(
        "--pod-network",
        choices=("bridge", "none"),
        default="bridge",
        help="bridge: pods get addresses on a bridge, Service addresses and cluster DNS "
        "(changes this machine's links, routes and nftables); none: loopback only "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--no-agent",
        action="store_true",
        help="run only the control plane, no node agent on this machine",
    )
    p.add_argument("--ready-timeout", type=float, default=processes.DEFAULT_READY_TIMEOUT)
    p.set_defaults(func=None, up=True)


class Supervisor:
    def __init__(self) -> None:
        self.children: list[processes.ManagedProcess] = []
        # Run after every child has stopped, for what a child leaves behind.
        self.cleanups: list[Callable[[], None]] = []
        self._backoff: dict[str, float] = {}
        self._next_start: dict[str, float] = {}
        self.stopping = False

    def add(self, child: processes.ManagedProcess) -> None:
        self.children.append(child)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        for cleanup in self.cleanups:
            cleanup()

    def tend(self) -> None:
        """Restart children that exited, with backoff."""
        now = time.monotonic()
        for child in self.children:
            if child.running() or self.stopping:
                continue
            if now < self._next_start.get(child.name, 0.0):
                continue
            delay = self._backoff.get(child.name, _RESTART_BACKOFF[0])
            code = child.process.returncode if child.process else None
            print(
                f"corral: {child.name} exited (code {code}); restarting; log: {child.log_path}",
                file=sys.stderr,
            )
            child.start()
            self._backoff[child.name] = min(delay * 2, _RESTART_BACKOFF[1])
            self._next_start[child.name] = now + delay


SYSTEM_DOCKER = Path("/var/run/docker.sock")


def _docker(supervisor: Supervisor, data_dir: Path, logs: Path, timeout: float) -> str:
    """The machine's Docker if it answers; otherwise a dockerd of corral's own, supervised."""
    if dockerd.responds(SYSTEM_DOCKER):
        return f"unix://{SYSTEM_DOCKER}"
    root = dockerd.short_root(data_dir / "docker")
    root.mkdir(parents=True, exist_ok=True)
    socket_path = root / "docker.sock"
    process = processes.ManagedProcess(
        "dockerd", dockerd.command(root, socket_path), logs / "dockerd.log"
    )
    supervisor.add(process)
    # dockerd bind-mounts its data root onto itself and leaves the mount when it exits.
    supervisor.cleanups.append(lambda: dockerd.unmount(root))
    process.start()
    processes.wait_until(
        lambda: dockerd.responds(socket_path), timeout, "dockerd", alive=process.running
    )
    print(f"dockerd       unix://{socket_path}  (corral's own; log: {process.log_path})")
    return f"unix://{socket_path}"


def _ports(data_dir: Path, api_port: int) -> dict[str, int]:
    """etcd's ports, chosen once and kept, so a restart finds the same member."""
    path = data_dir / "ports.json"
    if path.exists():
        saved: dict[str, int] = json.loads(path.read_text())
        return saved
    chosen = {"etcd_client": processes.free_port(), "etcd_peer": processes.free_port()}
    path.write_text(json.dumps(chosen))
    return chosen


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if args.etcd:
            endpoints = [e.strip() for e in args.etcd.split(",") if e.strip()]
        else:
            ports = _ports(data_dir, args.port)
            etcd = processes.Etcd(
                data_dir / "etcd",
                client_port=ports["etcd_client"],
                peer_port=ports["etcd_peer"],
                log_path=logs / "etcd.log",
            )
            supervisor.add(etcd)
            etcd.start()
            etcd.wait_ready(args.ready_timeout)
            endpoints = [etcd.endpoint]
            print(f"etcd          {etcd.endpoint}  (data: {etcd.data_dir})")
        cluster_pki = cluster.prepare_pki(data_dir, cluster.serving_hosts(args.host, []))
        api = processes.ApiServer(
            endpoints,
            port=args.port,
            host=args.host,
            log_path=logs / "apiserver.log",
            pki=cluster_pki,
            extra_args=(
                "--cluster-cidr", args.cluster_cidr,
                "--service-cidr", args.service_cidr,
                "--encryption-provider-config", str(cluster_pki.encryption_key_file),
                "--audit-log-path", str(logs / "audit.log"),
            ),
        )  # fmt: skip
        supervisor.add(api)
        api.start()
        api.wait_ready(args.ready_timeout)
        print(f"apiserver     {api.url}  (log: {api.log_path}; audit: {logs / 'audit.log'})")
        admin = cluster_pki.admin_config(api.url)
        cluster_pki.write_kubeconfigs(api.url)
        for component, argv in (
            ("controller-manager", [sys.executable, "-m", "controlplane", "controller-manager"]),
            ("scheduler", [sys.executable, "-m", "scheduler"]),
        ):
            child = processes.ManagedProcess(
                component,
                [*argv, "--kubeconfig", str(cluster_pki.component_kubeconfig(component))],
                logs / f"{component}.log",
            )
            supervisor.add(child)
            child.start()
            print(f"{component:<13} (log: {child.log_path})")
        print(
            f"addresses     pods {args.cluster_cidr} (a /24 per node), "
            f"services {args.service_cidr}, node ports 30000-32767"
        )
        if not args.no_agent:
            join_token = asyncio.run(cluster.create_join_token(admin, timedelta(hours=1)))
            docker_host = args.docker_host or _docker(
                supervisor, data_dir, logs, args.ready_timeout
            )
            agent = processes.ManagedProcess(
                "agent",
                [
                    sys.executable, "-m", "nodeagent",
                    "--server", api.url,
                    "--ca-file", str(cluster_pki.ca_cert),
                    "--bootstrap-token", join_token,
                    "--node-name", args.node_name,
                    "--network", args.pod_network,
                    "--docker-host", docker_host,
                    "--data-dir", str(data_dir / "agent"),
                    "--listen-port", str(args.port + 2),
                ],
                logs / "agent.log",
            )  # fmt: skip
            supervisor.add(agent)
            agent.start()
            print(f"agent         node {args.node_name} on {docker_host}  (log: {agent.log_path})")
        config_path = data_dir / "kubeconfig"
        kubeconfig.write(config_path, cluster_pki.admin_kubeconfig(api.url))
        print(f"kubeconfig    {config_path}")
        print()
        print(f"  export KUBECONFIG={config_path}")
        print("  corral get nodes,pods -A        # or: kubectl get pods -A")
        print()
        if args.apply:
            _apply(args.apply, admin)
        print("corral is up; press Ctrl-C to stop it.", flush=True)
        while not supervisor.stopping:
            supervisor.tend()
            time.sleep(_SUPERVISE_INTERVAL)
    except processes.ProcessError as error:
        print(f"error: {error}", file=sys.stderr)
        for child in supervisor.children:
            tail = child.log_tail()
            if tail:
                print(f"--- last lines of {child.log_path} ---\n{tail}", file=sys.stderr)
        supervisor.stopping = True
        supervisor.stop_all()
        return 1
    except BaseException:
        # Whatever went wrong, nothing corral started may outlive it.
        supervisor.stopping = True
        supervisor.stop_all()
        raise
    print("\nstopping corral...", flush=True)
    supervisor.stop_all()
    print("stopped.")
    return 0


def _apply(files: list[str], config: ClientConfig) -> None:
    async def apply() -> int:
        ctx = CliContext(config=config, namespace="default")
        try:
            args = argparse.Namespace(
                filename=files, recursive=False, output=None, dry_run="none", validate="strict"
            )
            code = await run_apply(ctx, args)
            print()
            listing = argparse.Namespace(
                resources=["pods,rc,svc,cm,secret,pdb"],
                filename=[],
                output=None,
                selector="",
                field_selector="",
                watch=False,
                watch_only=False,
                show_labels=False,
                no_headers=False,
            )
            await get.run(ctx, listing)
            print()
            return code
        finally:
            await ctx.close()

    try:
        manifests.load(files)
    except manifests.ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return
    asyncio.run(apply())
