"""``corral up``: a whole cluster on one machine, supervised until Ctrl-C.

It starts etcd (unless ``--etcd`` points at one), the API server and the
cluster's other processes as children, restarts any that crash, writes the
kubeconfig, and on SIGINT or SIGTERM stops them all in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TypeVar

import docker
import docker.errors
import requests.exceptions

from corral.api.errors import ApiError
from corral.client import kubeconfig
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client, ConnectionFailed
from corral.clock import rfc3339
from corralctl import (
    cluster,
    dockerd,
    down,
    get,
    localcluster,
    localnames,
    logstoreup,
    manifests,
    masters,
    metricsup,
    processes,
    readiness,
)
from corralctl.clusterpki import ClusterPki
from corralctl.context import CliContext
from corralctl.images import load_images
from corralctl.supervisor import Supervisor
from corralctl.write import run_apply

# A simulated host answers over a veth within milliseconds; one that does not
# answer in this long is dead, and the relay tries the next.
_PUBLISH_CONNECT_TIMEOUT = 3.0
_SUPERVISE_INTERVAL = 0.5
NODE_PORTS = (30000, 32767)
DEFAULT_WAIT_TIMEOUT = 900.0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("up", help="run a single-machine cluster until interrupted")
    _add_cluster_flags(p)
    _add_node_flags(p)
    _add_simulation_flags(p)
    _add_wait_flags(p)
    p.set_defaults(func=None, up=True)


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=localcluster.default_data_dir(),
        help="where etcd data, logs and the kubeconfig live (default: %(default)s)",
    )
    p.add_argument("--port", type=int, default=6443, help="API port (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="API address (default: %(default)s)")
    masters.add_flags(p)
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


def _add_node_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--node-name",
        default=None,
        help="the name of this machine's node (default: the hostname for the machine's "
        "first local cluster, HOSTNAME-ID for the others)",
    )
    p.add_argument(
        "--docker-host",
        default="",
        help="Docker to run pods with; default: the system's if it answers, "
        "otherwise a dockerd of corral's own under the data dir",
    )
    p.add_argument(
        "--cluster-cidr",
        default=None,
        help="pod addresses, a /24 of it per node (default: 10.244.0.0/16 for the machine's "
        "first local cluster, 10.(244+K).0.0/16 for the K-th)",
    )
    p.add_argument(
        "--service-cidr",
        default=None,
        help="Service ClusterIPs (default: 10.96.0.0/16, 10.(96+K).0.0/16 for the K-th)",
    )
    p.add_argument(
        "--bridge-name",
        default=None,
        help="the pod bridge on this machine (default: crl0, crlK for the K-th)",
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


def _add_simulation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--simulated-hosts",
        type=int,
        default=0,
        metavar="N",
        help="run N node agents, each on a simulated host (a network namespace crl-sim-I "
        "on an underlay bridge), named NODE_NAME-0..N-1; 0: one agent on this machine "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--load-images",
        action="append",
        default=[],
        metavar="TAR",
        help="docker load this archive (docker save's format) into the nodes' Docker "
        "before the agents start; skipped when every image in it is there (repeatable)",
    )
    p.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="LOCAL:NODEPORT",
        help="with --simulated-hosts: relay 127.0.0.1:LOCAL to NODEPORT of the first "
        "simulated host (repeatable)",
    )


def _add_wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        action="store_true",
        help="after --apply, wait until every Deployment and ReplicationController in the "
        "applied namespaces is ready, printing progress",
    )
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="SECONDS",
        help="how long --wait waits before reporting what is not ready; corral up keeps "
        "running either way (default: %(default).0f)",
    )
    p.add_argument("--ready-timeout", type=float, default=processes.DEFAULT_READY_TIMEOUT)


def parse_publish(text: str) -> tuple[int, int]:
    """``LOCAL:NODEPORT`` as two ports; ValueError with the reason."""
    local, colon, node_port = text.partition(":")
    try:
        ports = int(local), int(node_port)
    except ValueError:
        ports = (0, 0)
    if not colon or not 1 <= ports[0] <= 65535 or not ports[1]:
        raise ValueError(f"--publish {text}: expected LOCAL:NODEPORT, e.g. 8080:30080")
    low, high = NODE_PORTS
    if not low <= ports[1] <= high:
        raise ValueError(f"--publish {text}: {ports[1]} is not a node port ({low}-{high})")
    return ports


def validate(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags, before anything starts; sets ``args.published``."""
    args.published = []
    problem = masters.validate(args)
    if problem is not None:
        return problem
    if args.simulated_hosts < 0 or args.simulated_hosts > 200:
        return "--simulated-hosts: between 0 and 200"
    if args.simulated_hosts and args.no_agent:
        return "--simulated-hosts runs node agents; it cannot be combined with --no-agent"
    if args.simulated_hosts and args.pod_network != "bridge":
        return "--simulated-hosts needs --pod-network bridge: the hosts are joined by it"
    if args.publish and not args.simulated_hosts:
        return (
            "--publish needs --simulated-hosts: without them, NodePorts are served on "
            "this machine's own addresses already"
        )
    for text in args.publish:
        try:
            args.published.append(parse_publish(text))
        except ValueError as error:
            return str(error)
    locals_ = [local for local, _ in args.published]
    if len(set(locals_)) != len(locals_):
        return "--publish: each LOCAL port once"
    if args.load_images and args.no_agent:
        return "--load-images loads into the nodes' Docker; there is none with --no-agent"
    for archive in args.load_images:
        if not Path(archive).is_file():
            return f"--load-images {archive}: no such file"
    if args.wait and not args.apply:
        return "--wait waits for what --apply creates; give --apply FILE"
    if args.wait_timeout <= 0:
        return "--wait-timeout: a positive number of seconds"
    return None


class _Stopped(Exception):
    """SIGINT or SIGTERM came while starting: skip the rest and stop what runs."""


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


def run(args: argparse.Namespace) -> int:
    problem = validate(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    other = localcluster.running_up(data_dir)
    if other is not None:
        print(
            f"error: corral up already runs with {data_dir} (pid {other}); "
            f"stop it with Ctrl-C there, or: corral down --data-dir {data_dir}",
            file=sys.stderr,
        )
        return 1
    leftovers = localcluster.leftover_processes(data_dir)
    if leftovers:
        print(
            f"error: processes of an earlier corral up with {data_dir} still run "
            f"(pids {', '.join(map(str, sorted(leftovers)))}); "
            f"remove them first: corral down --data-dir {data_dir}",
            file=sys.stderr,
        )
        return 1
    problem = _claim_names(args, data_dir)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    pid_file = data_dir / localcluster.PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    # Inherited by every child, so that corral down finds one that outlived us.
    os.environ[localcluster.ENV_MARKER] = str(data_dir)
    try:
        return _run(args, data_dir)
    finally:
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()


def _claim_names(args: argparse.Namespace, data_dir: Path) -> str | None:
    """This cluster's own names and ranges (localnames), or why it cannot have them."""
    try:
        mine = localnames.choose(args, data_dir)
    except localnames.NameConflict as error:
        return f"another local cluster is in the way: {error}"
    localnames.apply_to(args, mine)
    prefix = args.simulated_prefix
    in_use = localcluster.agents_on_hosts(prefix) if args.simulated_hosts else []
    if in_use:
        # Making the hosts anew would cut those agents' pods off.
        return (
            f"the simulated hosts {prefix}-* are in use by another corral up "
            f"(agent pids {', '.join(map(str, in_use))})"
        )
    agents = 0 if args.no_agent else max(args.simulated_hosts, 1)
    busy = localnames.busy_ports(args.host, [args.port + i for i in range(2 + agents)])
    if busy:
        return (
            f"port(s) {', '.join(map(str, busy))} in use (the API takes --port P, the agents "
            f"P+1 to P+{1 + agents}); choose another --port"
        )
    return None


@dataclass
class _Startup:
    """What every step of starting needs: the flags, where it writes, who supervises."""

    args: argparse.Namespace
    data_dir: Path
    logs: Path
    supervisor: Supervisor

    def check(self) -> None:
        """Between steps: raise _Stopped once SIGINT or SIGTERM came."""
        if self.supervisor.stopping:
            raise _Stopped


def _run(args: argparse.Namespace, data_dir: Path) -> int:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    startup = _Startup(args, data_dir, logs, Supervisor())
    supervisor = startup.supervisor

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        _start(startup)
        while not supervisor.stopping:
            supervisor.tend()
            time.sleep(_SUPERVISE_INTERVAL)
    except _Stopped:
        pass  # the signal handler's way out of the loop: a requested stop
    except processes.ProcessError as error:
        _report_failure(error, supervisor)
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


def _start(startup: _Startup) -> None:
    """The cluster's processes in order, then what --apply names; says what runs where."""
    started, cluster_pki = masters.start(startup)
    admin = cluster_pki.admin_config(started.url, servers=started.servers)
    cluster_pki.write_kubeconfigs(started.url, started.servers)
    _controllers(startup, cluster_pki)
    print(
        f"addresses     pods {startup.args.cluster_cidr} (a /24 per node), "
        f"services {startup.args.service_cidr}, node ports 30000-32767"
    )
    nodes: list[str] = []
    published: list[str] = []
    if not startup.args.no_agent:
        nodes, published = _agents(startup, started.agent_args(), cluster_pki, admin)
    metricsup.report(startup, agent=bool(nodes) and not startup.args.simulated_hosts)
    _write_kubeconfig(startup.data_dir, cluster_pki, started)
    _apply_and_wait(startup, admin, nodes)
    _say_up(startup.data_dir, published)


def _report_failure(error: processes.ProcessError, supervisor: Supervisor) -> None:
    print(f"error: {error}", file=sys.stderr)
    for child in supervisor.children:
        tail = child.log_tail()
        if tail:
            print(f"--- last lines of {child.log_path} ---\n{tail}", file=sys.stderr)


def _controllers(startup: _Startup, cluster_pki: ClusterPki) -> None:
    """The controller manager and the scheduler, each with its own kubeconfig."""
    for component, argv in (
        ("controller-manager", [sys.executable, "-m", "controlplane", "controller-manager"]),
        ("scheduler", [sys.executable, "-m", "scheduler"]),
    ):
        child = processes.ManagedProcess(
            component,
            [*argv, *metricsup.component_args(component, startup, cluster_pki)],
            startup.logs / f"{component}.log",
        )
        startup.supervisor.add(child)
        child.start()
        print(f"{component:<13} (log: {child.log_path})")


def _agents(
    startup: _Startup, servers: list[str], cluster_pki: ClusterPki, admin: ClientConfig
) -> tuple[list[str], list[str]]:
    """The node agents (on simulated hosts or this machine); their nodes and published URLs."""
    args = startup.args
    join_token = asyncio.run(cluster.create_join_token(admin, timedelta(hours=1)))
    docker_host = args.docker_host or _docker(
        startup.supervisor, startup.data_dir, startup.logs, args.ready_timeout
    )
    own_docker = not args.docker_host and docker_host != f"unix://{SYSTEM_DOCKER}"
    agent_base = [
        sys.executable, "-m", "nodeagent",
        *servers,
        "--ca-file", str(cluster_pki.ca_cert),
        "--bootstrap-token", join_token,
        "--docker-host", docker_host,
        "--cluster-id", args.cluster_id,
    ]  # fmt: skip
    agent_base += logstoreup.agent_flags(
        startup.supervisor, startup.data_dir, startup.logs, cluster_pki
    )
    if args.simulated_hosts:
        nodes = [f"{args.node_name}-{i}" for i in range(args.simulated_hosts)]
        agent_dirs = [startup.data_dir / "agents" / node for node in nodes]
    else:
        nodes, agent_dirs = [args.node_name], [startup.data_dir / "agent"]
    _record(startup, docker_host, own_docker, nodes, agent_dirs)
    for archive in args.load_images:
        startup.check()
        load_images(docker_host, Path(archive))
    if args.simulated_hosts:
        return nodes, _simulated_agents(startup, agent_base, docker_host, nodes, agent_dirs, admin)
    agent = processes.ManagedProcess(
        "agent",
        [
            *agent_base,
            "--node-name", args.node_name,
            "--network", args.pod_network,
            "--bridge-name", args.bridge_name,
            "--nft-table", args.nft_table,
            "--data-dir", str(agent_dirs[0]),
            "--listen-port", str(args.port + 2), *metricsup.agent_args(startup.data_dir),
        ],
        startup.logs / "agent.log",
    )  # fmt: skip
    startup.supervisor.add(agent)
    agent.start()
    print(f"agent         node {args.node_name} on {docker_host}  (log: {agent.log_path})")
    return nodes, []


def _record(
    startup: _Startup, docker_host: str, own_docker: bool, nodes: list[str], agent_dirs: list[Path]
) -> None:
    """What corral down will need removed, written before any of it exists.

    So corral down can remove it even after a crash halfway.
    """
    # What earlier steps recorded (the local names, the masters) stays.
    kept = localcluster.read_state(startup.data_dir)
    localcluster.write_state(
        startup.data_dir,
        {
            "pid": os.getpid(),
            "docker_host": docker_host,
            "docker_root": str(dockerd.short_root(startup.data_dir / "docker"))
            if own_docker
            else "",
            "nodes": nodes,
            "agent_data_dirs": [str(d) for d in agent_dirs],
            "simulated_prefix": startup.args.simulated_prefix
            if startup.args.simulated_hosts
            else None,
            **{key: kept.get(key) for key in (localnames.STATE_KEY, "masters")},
        },
    )


def _simulated_agents(
    startup: _Startup,
    agent_base: list[str],
    docker_host: str,
    nodes: list[str],
    agent_dirs: list[Path],
    admin: ClientConfig,
) -> list[str]:
    """The simulated hosts, an agent on each, and the relays of --publish; their URLs."""
    args = startup.args
    startup.check()
    hosts = _simulated_hosts(
        startup.supervisor, args.simulated_prefix, args.simulated_hosts, docker_host, nodes,
        agent_dirs, args.cluster_id,
    )  # fmt: skip
    startup.check()
    marked = asyncio.run(_mark_not_ready(admin, nodes))
    if marked:
        print(f"pods          {marked} on these nodes not ready until their agents report")
    for index, (node, host) in enumerate(zip(nodes, hosts, strict=True)):
        agent = processes.ManagedProcess(
            f"agent-{node}",
            [
                *agent_base,
                "--node-name", node,
                "--network", "bridge",
                "--network-netns", host["netns"],
                "--node-ip", host["ip"],
                "--data-dir", str(agent_dirs[index]),
                "--listen-port", str(args.port + 2 + index),
            ],
            startup.logs / f"agent-{node}.log",
        )  # fmt: skip
        startup.supervisor.add(agent)
        agent.start()
        print(
            f"agent         node {node} on {host['netns']} ({host['ip']}), "
            f"{docker_host}  (log: {agent.log_path})"
        )
    return [
        _publish(startup.supervisor, startup.logs, local, node_port, hosts, args)
        for local, node_port in args.published
    ]


def _write_kubeconfig(data_dir: Path, cluster_pki: ClusterPki, started: masters.Masters) -> None:
    config_path = data_dir / "kubeconfig"
    kubeconfig.write(
        config_path, cluster_pki.admin_kubeconfig(started.url, servers=started.servers)
    )
    print(f"kubeconfig    {config_path}")
    print()
    print(f"  export KUBECONFIG={config_path}")
    print("  corral get nodes,pods -A        # or: kubectl get pods -A")
    print()


def _apply_and_wait(startup: _Startup, admin: ClientConfig, nodes: list[str]) -> None:
    """--apply once the nodes are Ready; with --wait, until what it made is ready too."""
    args, supervisor = startup.args, startup.supervisor
    if args.apply and not args.no_agent and not supervisor.stopping:
        _wait_nodes(admin, nodes, args.ready_timeout, supervisor)
    if args.apply and not supervisor.stopping:
        namespaces = _apply(args.apply, admin)
        if args.wait and namespaces is not None and not supervisor.stopping:
            ready = asyncio.run(_wait(admin, namespaces, args.wait_timeout, supervisor))
            if not ready and not supervisor.stopping:
                print("corral keeps running: look further with corral get pods -A -o wide")
            print()


def _say_up(data_dir: Path, published: list[str]) -> None:
    for url in published:
        print(f"  open {url}")
    if published:
        print()
    print(
        f"corral is up; press Ctrl-C to stop it "
        f"(corral down --data-dir {data_dir} removes what is left).",
        flush=True,
    )


def _simulated_hosts(
    supervisor: Supervisor,
    prefix: str,
    count: int,
    docker_host: str,
    nodes: list[str],
    agent_dirs: list[Path],
    cluster: str,
) -> list[dict[str, str]]:
    """The hosts' namespaces and underlay addresses, torn down (with their containers) on stop."""

    def remove_hosts() -> None:
        removed = down.testbed("down", "--prefix", prefix)["removed"]
        print(f"removed the simulated hosts ({len(removed)} network namespaces)", flush=True)

    def remove_containers() -> None:
        # A simulated host that is gone takes its pods with it; their agents
        # recreate them from the API on the next start.
        removed = down.remove_node_containers(docker_host, nodes, cluster)
        print(f"removed the simulated nodes' {len(removed)} containers", flush=True)
        for directory in agent_dirs:
            down.unmount_under(directory)

    # Deferred before they exist: a half-made testbed is removed too.
    supervisor.defer(remove_hosts)
    try:
        leftovers = down.remove_node_containers(docker_host, nodes, cluster)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise processes.ProcessError(f"Docker at {docker_host}: {error}") from None
    if leftovers:
        print(f"removed {len(leftovers)} containers an earlier run of these nodes left")
    try:
        bed = down.testbed("up", "--hosts", str(count), "--prefix", prefix)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        raise processes.ProcessError(f"simulated hosts: {error}") from None
    supervisor.defer(remove_containers)
    hosts: list[dict[str, str]] = bed["hosts"]
    listing = ", ".join(f"{h['netns']} {h['ip']}" for h in hosts)
    print(f"hosts         {listing}  (underlay {bed['underlay']})")
    return hosts


def _publish(
    supervisor: Supervisor,
    logs: Path,
    local: int,
    node_port: int,
    hosts: list[dict[str, str]],
    args: argparse.Namespace,
) -> str:
    """A supervised relay from 127.0.0.1:``local`` to the node port; its URL.

    Every host serves every NodePort, so the relay is given them all and
    moves on when the one it uses dies: the URL outlives any one host.
    """
    log = logs / f"publish-{local}.log"
    routes: list[str] = []
    for host in hosts:
        routes += ["--netns", host["netns"], "--to", f"{host['ip']}:{node_port}"]
    child = processes.ManagedProcess(
        f"publish-{local}",
        [
            sys.executable, "-m", down.TESTBED, "forward",
            "--listen", f"127.0.0.1:{local}",
            "--connect-timeout", str(_PUBLISH_CONNECT_TIMEOUT),
            *routes,
        ],
        log,
    )  # fmt: skip
    before = log.stat().st_size if log.exists() else 0
    supervisor.add(child)
    child.start()

    def listening() -> bool:
        # The relay says so once bound; a probe connection would be relayed.
        with log.open("rb") as text:
            text.seek(before)
            return b"forwarding " in text.read()

    processes.wait_until(listening, args.ready_timeout, f"publish {local}", alive=child.running)
    url = f"http://127.0.0.1:{local}/"
    print(f"publish       {url} -> node port {node_port} of any live host  (log: {log})")
    return url


def _apply(files: list[str], config: ClientConfig) -> list[str] | None:
    """Apply and list; the namespaces the files put objects in (None if they did not load)."""

    async def apply() -> int:
        ctx = CliContext(config=config, namespace="default")
        try:
            args = argparse.Namespace(
                filename=files, recursive=False, output=None, dry_run="none", validate="strict"
            )
            code = await run_apply(ctx, args)
            print()
            listing = argparse.Namespace(
                resources=["pods,deploy,rc,svc,cm,secret,pdb"],
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
        loaded = manifests.load(files)
    except manifests.ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    asyncio.run(apply())
    return readiness.applied_namespaces(loaded)


async def _mark_not_ready(config: ClientConfig, nodes: list[str]) -> int:
    async with Client(config) as client:
        try:
            return await readiness.mark_not_ready(client, nodes, rfc3339(datetime.now(UTC)))
        except (ApiError, ConnectionFailed) as error:
            # Only --wait's first answer depends on it; the agents correct it soon after.
            print(f"warning: could not mark the nodes' pods not ready: {error}", file=sys.stderr)
            return 0


T = TypeVar("T")
Waiter = Callable[..., Awaitable[T]]


async def _poll(
    config: ClientConfig, supervisor: Supervisor, waiter: Waiter[T], *args: object
) -> T:
    """Run one of readiness's waits against the cluster, tending the children meanwhile."""
    async with Client(config, timeout=readiness.POLL_TIMEOUT) as client:
        return await waiter(
            client,
            *args,
            out=sys.stdout,
            tick=supervisor.tend,
            stopping=lambda: supervisor.stopping,
        )


def _wait_nodes(
    config: ClientConfig, nodes: list[str], timeout: float, supervisor: Supervisor
) -> None:
    """Return once every agent this run started has its node Ready; else stop with an error."""
    missing = asyncio.run(_poll(config, supervisor, readiness.wait_nodes_ready, nodes, timeout))
    if missing and not supervisor.stopping:
        raise processes.ProcessError(
            f"node(s) {', '.join(missing)} not Ready after {timeout:.0f}s; nothing was applied"
        )


async def _wait(
    config: ClientConfig, namespaces: list[str], timeout: float, supervisor: Supervisor
) -> bool:
    return await _poll(config, supervisor, readiness.wait_ready, namespaces, timeout)
