"""``corral up``'s masters: etcd, the API servers and, with several, a load balancer.

With ``--masters 1`` (the default) this is one etcd member and one API server
on ``--port``, as ``corral up`` always ran. With ``--masters N`` (3 or 5) it
runs N etcd members as one etcd cluster (peers authenticate each other with
certificates of etcd's own CA), N API servers each given every etcd
endpoint (its own master's first), and HAProxy on ``--port`` in front of
the API servers, configured as ``examples/ha/haproxy.cfg`` is. The masters
share this machine's loopback, each on ports of its own (no simulated hosts
for masters yet).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from corralctl import cluster, localcluster, metricsup, processes
from corralctl.clusterpki import ClusterPki
from corralctl.etcdpki import EtcdPki
from corralctl.supervisor import Supervisor

MAX_MASTERS = 5
PORTS_FILE = "ports.json"
_MASTER_PORTS = ("etcd_client", "etcd_peer", "apiserver", "agent")

# The balancer's configuration: examples/ha/haproxy.cfg with its addresses
# written in (tests/unit/test_masters.py keeps the two alike). It is kept
# here rather than read from examples/, which an installed corral lacks.
_HAPROXY_HEAD = """\
# Written by corral up --masters; the shape of examples/ha/haproxy.cfg (docs/ha.md).
global
    log stdout format raw local0 warning

defaults
    log     global
    mode    tcp
    option  tcplog
    option  dontlognull
    retries 3
    option  redispatch 1
    timeout connect 5s
    timeout client  20m
    timeout server  20m

frontend apiserver
    bind "{bind}"
    default_backend apiservers

backend apiservers
    balance roundrobin
    option httpchk
    http-check connect ssl
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check check-ssl verify none inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
"""  # noqa: E501 - HAProxy has no line continuation


class Startup(Protocol):
    """What corral up's startup carries that this needs."""

    args: argparse.Namespace
    data_dir: Path
    logs: Path
    supervisor: Supervisor

    def check(self) -> None: ...


@dataclass
class Masters:
    """Where the masters answer, as the rest of corral up hands it on."""

    url: str
    """What kubectl dials: the load balancer, or the one API server."""
    etcd: list[str]
    apiservers: list[processes.ApiServer] = field(default_factory=list)
    balancer: str | None = None

    @property
    def servers(self) -> tuple[str, ...]:
        """Every API server behind ``url``, for failing over past it; () with one master."""
        if self.balancer is None:
            return ()
        return tuple(api.url for api in self.apiservers)

    def agent_args(self) -> list[str]:
        """Agents go to the API servers themselves: their agent ports are not balanced."""
        if self.balancer is None:
            return ["--server", self.url]
        control = ",".join(f"{metricsup.url_host(a.host)}:{a.agent_port}" for a in self.apiservers)
        return ["--server", ",".join(self.servers), "--control", control]

    def state(self) -> dict[str, Any]:
        """up.json's ``masters``."""
        return {
            "count": len(self.apiservers),
            "etcd": self.etcd,
            "apiservers": [api.url for api in self.apiservers],
            "load_balancer": self.balancer,
        }


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--masters",
        type=int,
        default=1,
        metavar="N",
        help="run N etcd members and N API servers behind a local HAProxy on --port "
        "(1, 3 or 5; default: %(default)s)",
    )
    p.add_argument(
        "--apiserver-workers",
        type=int,
        default=None,
        metavar="N",
        help="processes each API server runs on its port (default: one per usable core; "
        "with --masters 3 or 5, 1 each: the masters already share this machine's cores)",
    )


def validate(args: argparse.Namespace) -> str | None:
    masters = args.masters
    if masters < 1 or masters > MAX_MASTERS or masters % 2 == 0:
        # An even count tolerates no more failures than the odd one below it.
        return f"--masters: an odd number from 1 to {MAX_MASTERS}"
    if masters > 1 and args.etcd:
        return "--masters runs its own etcd cluster; it cannot be combined with --etcd"
    if args.apiserver_workers is not None and args.apiserver_workers < 1:
        return "--apiserver-workers: at least 1"
    return None


def apiserver_workers(args: argparse.Namespace) -> int | None:
    """``--workers`` for each API server; None leaves the server's default (its cores)."""
    if args.apiserver_workers is not None:
        return int(args.apiserver_workers)
    # Several masters on one machine already spread over its cores; more
    # processes per master would only multiply watch caches and contention.
    return None if args.masters == 1 else 1


def start(startup: Startup) -> tuple[Masters, ClusterPki]:
    """etcd, the cluster's certificates, the API servers and the balancer, each ready."""
    count = startup.args.masters
    problem = _data_conflict(startup.data_dir, count) if not startup.args.etcd else None
    if problem is not None:
        raise processes.ProcessError(problem)
    if count == 1:
        endpoints = _etcd(startup)
    else:
        endpoints = _etcd_cluster(startup, _master_ports(startup.data_dir, count))
    cluster_pki = cluster.prepare_pki(
        startup.data_dir, cluster.serving_hosts(startup.args.host, [])
    )
    if count == 1:
        api = _apiserver(startup, endpoints, cluster_pki, startup.args.port)
        _wait_apiserver(startup, api)
        masters = Masters(url=api.url, etcd=endpoints, apiservers=[api])
    else:
        masters = _apiservers(startup, endpoints, cluster_pki)
    state = localcluster.read_state(startup.data_dir)
    state["masters"] = masters.state()
    localcluster.write_state(startup.data_dir, state)
    return masters, cluster_pki


def _data_conflict(data_dir: Path, count: int) -> str | None:
    """Why this data dir's etcd data cannot serve ``count`` masters, if it cannot.

    A single member's data and a cluster's are kept apart; starting the one
    over the other would start an empty cluster and hide the old objects.
    """
    single = (data_dir / "etcd").exists()
    members = len(list(data_dir.glob("etcd-[0-9]*")))
    if count == 1 and members:
        return f"{data_dir} holds the etcd data of {members} masters: use --masters {members}"
    if count > 1 and single:
        return f"{data_dir} holds a single master's etcd data: use --masters 1"
    if count > 1 and members and members != count:
        return f"{data_dir} holds the etcd data of {members} masters: use --masters {members}"
    return None


def _ports(data_dir: Path) -> dict[str, Any]:
    path = data_dir / PORTS_FILE
    if not path.exists():
        return {}
    saved: dict[str, Any] = json.loads(path.read_text())
    return saved


def _single_ports(data_dir: Path) -> dict[str, int]:
    """etcd's ports, chosen once and kept, so a restart finds the same member."""
    saved = _ports(data_dir)
    if "etcd_client" in saved:
        return saved
    client, peer = processes.lasting_ports(2)
    chosen = {"etcd_client": client, "etcd_peer": peer}
    (data_dir / PORTS_FILE).write_text(json.dumps({**saved, **chosen}))
    return chosen


def _master_ports(data_dir: Path, count: int) -> list[dict[str, int]]:
    """Each master's etcd, API and agent-protocol ports, chosen once and kept.

    Kept because etcd's members know each other's peer URLs from the first
    start on, and a client's list of servers should outlive a restart.
    """
    saved = _ports(data_dir)
    members: list[dict[str, int]] = saved.get("masters") or []
    if len(members) == count:
        return members
    ports = iter(processes.lasting_ports(count * len(_MASTER_PORTS)))
    members = [{name: next(ports) for name in _MASTER_PORTS} for _ in range(count)]
    (data_dir / PORTS_FILE).write_text(json.dumps({**saved, "masters": members}))
    return members


def _etcd(startup: Startup) -> list[str]:
    """The endpoints of --etcd, or of an etcd of our own, started and ready."""
    if startup.args.etcd:
        return [e.strip() for e in startup.args.etcd.split(",") if e.strip()]
    ports = _single_ports(startup.data_dir)
    etcd = processes.Etcd(
        startup.data_dir / "etcd",
        client_port=ports["etcd_client"],
        peer_port=ports["etcd_peer"],
        log_path=startup.logs / "etcd.log",
    )
    startup.supervisor.add(etcd)
    etcd.start()
    etcd.wait_ready(startup.args.ready_timeout)
    startup.check()
    print(f"etcd          {etcd.endpoint}  (data: {etcd.data_dir})")
    return [etcd.endpoint]


def _etcd_cluster(startup: Startup, ports: list[dict[str, int]]) -> list[str]:
    """One etcd member per master, all started before any is waited for (quorum)."""
    etcd_pki = EtcdPki(startup.data_dir / "pki")
    etcd_pki.ensure([])
    host = "127.0.0.1"
    names = [f"master-{index}" for index in range(len(ports))]
    spec = processes.EtcdCluster(
        initial_cluster=",".join(
            f"{name}=https://{host}:{p['etcd_peer']}" for name, p in zip(names, ports, strict=True)
        ),
        token=f"corral-{startup.args.cluster_id}",
        ca_file=etcd_pki.ca_cert,
        cert_file=etcd_pki.server_cert,
        key_file=etcd_pki.server_key,
    )
    members = []
    for index, (name, p) in enumerate(zip(names, ports, strict=True)):
        member = processes.Etcd(
            startup.data_dir / f"etcd-{index}",
            client_port=p["etcd_client"],
            peer_port=p["etcd_peer"],
            host=host,
            name=name,
            log_path=startup.logs / f"etcd-{index}.log",
            cluster=spec,
        )
        member.name = f"etcd-{index}"  # the supervisor tells children apart by name
        startup.supervisor.add(member)
        member.start()
        members.append(member)
    for member in members:
        member.wait_ready(startup.args.ready_timeout)
        startup.check()
        print(f"etcd          {member.endpoint}  ({member.name}; data: {member.data_dir})")
    return [member.endpoint for member in members]


def _apiserver(
    startup: Startup,
    endpoints: list[str],
    cluster_pki: ClusterPki,
    port: int,
    *,
    index: int | None = None,
    agent_port: int | None = None,
) -> processes.ApiServer:
    """An API server, started; ``index`` tells apart the masters' logs (None: the only one)."""
    args, logs = startup.args, startup.logs
    suffix = "" if index is None else f"-{index}"
    # One metrics port is recorded per component: the first API server serves it.
    metrics = metricsup.api_args(startup.data_dir) if not index else []
    api = processes.ApiServer(
        endpoints,
        port=port,
        agent_port=agent_port,
        host=args.host,
        log_path=logs / f"apiserver{suffix}.log",
        pki=cluster_pki,
        workers=apiserver_workers(args),
        extra_args=(
            "--cluster-cidr", args.cluster_cidr,
            "--service-cidr", args.service_cidr,
            "--encryption-provider-config", str(cluster_pki.encryption_key_file),
            "--audit-log-path", str(logs / f"audit{suffix}.log"), *metrics,
        ),
    )  # fmt: skip
    api.name = f"apiserver{suffix}"
    startup.supervisor.add(api)
    api.start()
    return api


def _wait_apiserver(startup: Startup, api: processes.ApiServer) -> None:
    api.wait_ready(startup.args.ready_timeout)
    startup.check()
    audit = startup.logs / api.log_path.name.replace("apiserver", "audit")
    print(f"apiserver     {api.url}  (log: {api.log_path}; audit: {audit})")


def _apiservers(startup: Startup, endpoints: list[str], cluster_pki: ClusterPki) -> Masters:
    """The masters' API servers, each on ports of its own, and the balancer before them."""
    ports = _master_ports(startup.data_dir, len(endpoints))
    apis = [
        _apiserver(
            startup,
            # Its own master's member first: the etcd client's channel stays on the
            # first member that answers, so with one shared order every API server
            # would sit on member 0 and a partition of that one master would stall
            # them all (the fault tests saw 7 s). kubeadm's stacked masters point
            # each API server at its local member likewise.
            endpoints[index:] + endpoints[:index],
            cluster_pki,
            p["apiserver"],
            index=index,
            agent_port=p["agent"],
        )
        for index, p in enumerate(ports)
    ]
    for api in apis:
        _wait_apiserver(startup, api)
    balancer = _balancer(startup, apis, cluster_pki)
    return Masters(url=balancer, etcd=endpoints, apiservers=apis, balancer=balancer)


def haproxy_config(bind: str, servers: list[str]) -> str:
    """HAProxy's configuration: listen on ``bind``, balance across ``servers`` (host:port)."""
    lines = [f'    server apiserver{i} "{server}"' for i, server in enumerate(servers, 1)]
    return _HAPROXY_HEAD.format(bind=bind) + "\n".join(lines) + "\n"


def find_haproxy() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        raise processes.ProcessError(
            "--masters needs HAProxy in front of the API servers: ./dev deps, "
            "or apt-get install haproxy"
        )
    return found


def _balancer(startup: Startup, apis: list[processes.ApiServer], cluster_pki: ClusterPki) -> str:
    """HAProxy on --port, before the API servers; its URL once it passes a request on."""
    args = startup.args
    host = metricsup.url_host(args.host)
    config = startup.data_dir / "haproxy.cfg"
    config.write_text(
        haproxy_config(f"{args.host}:{args.port}", [f"{host}:{api.port}" for api in apis])
    )
    child = processes.ManagedProcess(
        "haproxy", [find_haproxy(), "-db", "-f", str(config)], startup.logs / "haproxy.log"
    )
    startup.supervisor.add(child)
    child.start()
    url = f"https://{host}:{args.port}"
    processes.wait_until(
        lambda: processes.http_ok(f"{url}/readyz", ca_file=cluster_pki.ca_cert),
        args.ready_timeout,
        "haproxy",
        alive=child.running,
    )
    startup.check()
    print(f"balancer      {url} -> {len(apis)} API servers  (haproxy; config: {config})")
    return url
