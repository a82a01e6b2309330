"""``corral agent``: run a node agent that joins a control plane."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from corral import metrics
from corral.logformat import add_log_format_flag, configure_logging
from nodeagent import agentmetrics
from nodeagent.agent import Agent
from nodeagent.config import AgentConfig
from nodeagent.containerlogs import add_container_log_flags, limits_from
from nodeagent.controlchannel import control_targets
from nodeagent.credentials import CertDir, CredentialsError, NodeCredentials, obtain
from nodeagent.podnetwork import NetworkOptions
from nodeagent.runtime.base import Runtime


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corral agent", description=__doc__)
    p.add_argument(
        "--server",
        required=True,
        help="the API server URL, e.g. https://10.0.0.1:6443, or several, comma separated",
    )
    p.add_argument("--ca-file", help="the cluster CA certificate (required for https://)")
    p.add_argument(
        "--bootstrap-token",
        default=os.environ.get("CORRAL_BOOTSTRAP_TOKEN"),
        help="token to get this node's first certificate (env CORRAL_BOOTSTRAP_TOKEN)",
    )
    p.add_argument(
        "--cert-dir",
        default=None,
        help="where the node certificate is kept (default: DATA_DIR/pki)",
    )
    p.add_argument(
        "--control",
        default=None,
        help="host:port of the agent protocol, comma separated for several "
        "(default: each server's port + 1)",
    )
    _add_node_flags(p)
    p.add_argument("--log-level", default="info")
    add_log_format_flag(p)
    add_container_log_flags(p)
    metrics.add_flags(p)
    return p


def _add_node_flags(p: argparse.ArgumentParser) -> None:
    """The node itself: its name, state, runtime, capacity, and how it runs pods."""
    p.add_argument("--node-name", default=socket.gethostname())
    p.add_argument("--data-dir", default="/var/lib/corral/agent")
    p.add_argument("--runtime", choices=("docker", "hollow"), default="docker")
    p.add_argument("--docker-host", default="unix:///var/run/docker.sock")
    p.add_argument("--pause-image", default="corral.local/pause:1")
    p.add_argument(
        "--parallel-starts",
        type=int,
        default=10,
        help="container creations and starts in flight in the runtime at once",
    )
    p.add_argument(
        "--listen-host",
        default="127.0.0.1",
        help="address for the control plane to reach this agent (logs, exec)",
    )
    p.add_argument("--listen-port", type=int, default=10250)
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label for the Node (repeatable)",
    )
    p.add_argument("--cpu", default=None, help="CPU capacity to advertise (default: the machine's)")
    p.add_argument("--memory", default=None, help="memory capacity to advertise")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument(
        "--backoff-base",
        type=float,
        default=10.0,
        help="first CrashLoopBackOff delay, seconds (Kubernetes: 10)",
    )
    p.add_argument("--backoff-max", type=float, default=300.0)
    p.add_argument("--backoff-reset", type=float, default=600.0)
    p.add_argument(
        "--resync", type=float, default=10.0, help="seconds between reconciles of an unchanged pod"
    )
    p.add_argument(
        "--fence-after",
        type=float,
        default=20.0,
        help="stop StatefulSet pods after this many seconds without an acknowledged heartbeat "
        "(must stay below the controller manager's node grace period plus its eviction "
        "toleration; 0: never)",
    )
    p.add_argument(
        "--usage-interval",
        type=float,
        default=10.0,
        help="seconds between resource usage reports (metrics.k8s.io, kubectl top)",
    )
    _add_network_flags(p)
    p.add_argument(
        "--cluster-id",
        default="",
        help="label every container io.corral.cluster=ID (corral up's local cluster id)",
    )


def _add_network_flags(p: argparse.ArgumentParser) -> None:
    net = p.add_argument_group("pod network")
    net.add_argument(
        "--network",
        choices=("bridge", "none"),
        default="bridge",
        help="bridge: pods get an address on the node's pod CIDR, Service "
        "addresses and cluster DNS; none: loopback only (default: %(default)s)",
    )
    net.add_argument("--bridge-name", default="crl0", help="the node's pod bridge")
    net.add_argument(
        "--nft-table",
        default="corral",
        help="the nftables table (family ip) of the Service rules; one per cluster whose "
        "pod network shares the namespace (default: %(default)s)",
    )
    net.add_argument(
        "--node-ip",
        default=None,
        help="the node's InternalIP, which other nodes route pod traffic to "
        "(default: the local address towards the control plane)",
    )
    net.add_argument("--mtu", type=int, default=1500)
    net.add_argument("--cluster-domain", default="cluster.local")
    net.add_argument(
        "--network-netns",
        default=None,
        help="a network namespace under /run/netns to use as this node's host side "
        "(created if missing); default: the agent's own",
    )


def config_from(args: argparse.Namespace) -> AgentConfig:
    if args.server.startswith("https://") and not args.ca_file:
        raise SystemExit("--ca-file is required with an https:// --server")
    # A comma list of servers: the agent fails over across their agent ports.
    control = control_targets(args.server, args.control)
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    return AgentConfig(
        node_name=args.node_name,
        server=args.server,
        control=control,
        data_dir=Path(args.data_dir),
        runtime=args.runtime,
        docker_host=args.docker_host,
        pause_image=args.pause_image,
        listen_host=args.listen_host,
        listen_port=args.listen_port,
        labels=labels,
        cpu=args.cpu,
        memory=args.memory,
        max_pods=args.max_pods,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        backoff_reset=args.backoff_reset,
        resync_seconds=args.resync,
        parallel_starts=max(1, args.parallel_starts),
        fence_after=args.fence_after,
        usage_interval=args.usage_interval,
        ca_file=Path(args.ca_file) if args.ca_file else None,
        cert_dir=Path(args.cert_dir) if args.cert_dir else None,
        bootstrap_token=args.bootstrap_token,
        node_ip=args.node_ip,
        cluster_id=args.cluster_id,
        container_log_limits=limits_from(args),
        log_store=args.log_store,
        network=None
        if args.network == "none" or args.runtime == "hollow"
        else NetworkOptions(
            cluster_domain=args.cluster_domain,
            bridge=args.bridge_name,
            nft_table=args.nft_table,
            mtu=args.mtu,
            host_netns=args.network_netns,
        ),
    )


async def _runtime_for(config: AgentConfig) -> Runtime:
    if config.runtime == "hollow":
        from nodeagent.runtime.hollow import HollowRuntime

        return HollowRuntime(config.node_name)
    from nodeagent.runtime.docker import DockerRuntime

    runtime = DockerRuntime(
        config.docker_host,
        config.node_name,
        pause_image=config.pause_image,
        parallel_starts=config.parallel_starts,
        cluster=config.cluster_id,
        log_limits=config.container_log_limits,
    )
    try:
        await runtime.ensure_pause_image()
    except Exception as error:
        logging.getLogger(__name__).warning("infra image not ready yet: %s", error)
    return runtime


async def node_credentials(config: AgentConfig) -> NodeCredentials | None:
    if not config.secure:
        return None
    assert config.ca_file is not None
    # The client certificate only: the serving one needs the node registered
    # first, so the agent asks for it once it has (Agent._serve_agent_port).
    return await obtain(
        node_name=config.node_name,
        server_url=config.server,
        ca_pem=config.ca_file.read_bytes(),
        cert_dir=CertDir(config.certs_dir),
        bootstrap_token=config.bootstrap_token,
        clock=config.clock,
    )


def _metrics_server(
    args: argparse.Namespace, config: AgentConfig
) -> agentmetrics.MetricsServer | None:
    """/metrics over TLS: --tls-cert-file's, else the node's serving certificate when secure."""
    if not args.metrics_bind_address:
        return None
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        raise SystemExit("--tls-cert-file and --tls-private-key-file go together")
    if args.tls_cert_file:
        given = (Path(args.tls_cert_file), Path(args.tls_private_key_file))
        return agentmetrics.MetricsServer(
            args.metrics_bind_address, cert=given, wait_for_cert=False
        )
    serving = CertDir(config.certs_dir)
    cert = (serving.serving_cert, serving.serving_key) if config.secure else None
    return agentmetrics.MetricsServer(args.metrics_bind_address, cert=cert, wait_for_cert=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    config = config_from(args)

    async def run() -> None:
        try:
            credentials = await node_credentials(config)
        except CredentialsError as error:
            raise SystemExit(f"corral agent: {error}") from None
        runtime = agentmetrics.timed_runtime(await _runtime_for(config))
        agent = Agent(config, runtime, credentials=credentials)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, agent.stop)
        server = _metrics_server(args, config)
        if server is not None:
            server.start()
        try:
            await agent.run()
        finally:
            if server is not None:
                await server.close()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
