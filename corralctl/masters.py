"""``corral up``'s masters: etcd, the API servers and, with several, a load balancer.

With ``--masters 1`` (the default) this is one etcd member and one API server
on ``--port``, as ``corral up`` always ran. With ``--masters N`` (3 or 5) it
runs N etcd members as one etcd cluster (peers authenticate each other with
certificates of etcd's own CA), N API servers each given every etcd
endpoint (its own master's first), and HAProxy on ``--port`` in front of
the API servers, configured as ``examples/ha/haproxy.cfg`` is.

Several masters run on simulated hosts, as ``--simulated-hosts`` agents do:
network namespaces ``crl-m<cluster id>-I`` on an underlay of their own
(``python -m nodeagent.testbed``), each master's etcd member and API server
started with ``ip netns exec`` (which execs, so the supervisor's pid is the
process's). Peers and API servers reach etcd at the hosts' underlay
addresses. HAProxy stays in this machine's namespace and reaches the API
servers through the underlay namespace (its ``namespace`` server option), so
its connections cross a master's ``eth0`` as a client's would: cutting a
master's ``eth0`` cuts it off from the balancer too. It also relays each
master's own ports (API, agent protocol, etcd client, metrics) from
loopback ports of the same numbers, so kubeconfig's list of servers, the
agents, ``up.json`` and Prometheus find every master where they did when
the masters shared loopback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from corralctl import cluster, down, localcluster, metricsup, processes
from corralctl.clusterpki import ClusterPki
from corralctl.etcdpki import EtcdPki
from corralctl.supervisor import Supervisor

MAX_MASTERS = 5
PORTS_FILE = "ports.json"
_MASTER_PORTS = ("etcd_client", "etcd_peer", "apiserver", "agent")
# In ports.json: the members were made on simulated hosts (see _loopback_members).
_ON_HOSTS = "masters_on_hosts"

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
    hosts: list[MasterHost] = field(default_factory=list)
    """The masters' simulated hosts, in master order; none with one master."""
    netns_prefix: str | None = None

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
        # Each agent port answers where its API server's URL does (a relay, with namespaces).
        control = ",".join(f"{urlsplit(a.url).hostname}:{a.agent_port}" for a in self.apiservers)
        return ["--server", ",".join(self.servers), "--control", control]

    def state(self) -> dict[str, Any]:
        """up.json's ``masters``."""
        return {
            "count": len(self.apiservers),
            "etcd": self.etcd,
            "apiservers": [api.url for api in self.apiservers],
            "load_balancer": self.balancer,
            "hosts": [{"netns": h.netns, "ip": h.ip} for h in self.hosts],
            "netns_prefix": self.netns_prefix,
        }


@dataclass(frozen=True)
class MasterHost:
    """A master's simulated host: its network namespace, and its address on the underlay."""

    netns: str
    ip: str


def netns_prefix(cluster_id: str) -> str:
    """The masters' namespaces' prefix: the cluster id's, so two local clusters never share."""
    return f"crl-m{cluster_id}"


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--masters",
        type=int,
        default=1,
        metavar="N",
        help="run N etcd members and N API servers behind a local HAProxy on --port, "
        "with more than one each pair on a simulated host (network namespace crl-mID-I) "
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
        cluster_pki = cluster.prepare_pki(
            startup.data_dir, cluster.serving_hosts(startup.args.host, [])
        )
        api = _apiserver(startup, endpoints, cluster_pki, startup.args.port)
        _wait_apiserver(startup, api)
        masters = Masters(url=api.url, etcd=endpoints, apiservers=[api])
    else:
        masters, cluster_pki = _several(startup, count)
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


def _loopback_members(data_dir: Path) -> str | None:
    """Why this data dir's members cannot run on hosts, if they were made on loopback.

    An etcd member keeps the peer URLs it was made with; those of a cluster
    made when the masters shared loopback name 127.0.0.1, which no host
    reaches, and the members would never find each other.
    """
    saved = _ports(data_dir)
    if not (data_dir / "etcd-0").exists() or "masters" not in saved or saved.get(_ON_HOSTS):
        return None
    return (
        f"{data_dir} holds the etcd data of masters made on this machine's loopback, before "
        "masters ran on simulated hosts; its members know each other only at 127.0.0.1. "
        f"Back it up if needed and start afresh: corral down --data-dir {data_dir} --purge"
    )


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
    chosen = {**saved, "masters": members, _ON_HOSTS: True}
    (data_dir / PORTS_FILE).write_text(json.dumps(chosen))
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


def _etcd_cluster(
    startup: Startup, ports: list[dict[str, int]], hosts: list[MasterHost]
) -> tuple[list[str], list[str]]:
    """One etcd member per master host, all started before any is waited for (quorum).

    Its client URLs twice: at the hosts' addresses (for the API servers, on
    the underlay), and at the balancer's relays (for this namespace).
    """
    etcd_pki = EtcdPki(startup.data_dir / "pki")
    # Peers dial each other at the hosts' addresses and check the names.
    etcd_pki.ensure([host.ip for host in hosts])
    names = [f"master-{index}" for index in range(len(ports))]
    spec = processes.EtcdCluster(
        initial_cluster=",".join(
            f"{name}=https://{host.ip}:{p['etcd_peer']}"
            for name, p, host in zip(names, ports, hosts, strict=True)
        ),
        token=f"corral-{startup.args.cluster_id}",
        ca_file=etcd_pki.ca_cert,
        cert_file=etcd_pki.server_cert,
        key_file=etcd_pki.server_key,
    )
    members, internal = [], []
    for index, (name, p, host) in enumerate(zip(names, ports, hosts, strict=True)):
        member = processes.Etcd(
            startup.data_dir / f"etcd-{index}",
            client_port=p["etcd_client"],
            peer_port=p["etcd_peer"],
            host=host.ip,
            name=name,
            log_path=startup.logs / f"etcd-{index}.log",
            cluster=spec,
        )
        member.name = f"etcd-{index}"  # the supervisor tells children apart by name
        _in_netns(member, host)
        internal.append(member.endpoint)
        member.endpoint = f"http://127.0.0.1:{p['etcd_client']}"  # its relay, for the waits
        startup.supervisor.add(member)
        member.start()
        members.append(member)
    for member, host in zip(members, hosts, strict=True):
        member.wait_ready(startup.args.ready_timeout)
        startup.check()
        print(
            f"etcd          {member.endpoint}  ({member.name} on {host.netns} {host.ip}; "
            f"data: {member.data_dir})"
        )
    return internal, [member.endpoint for member in members]


def _in_netns(child: processes.ManagedProcess, host: MasterHost) -> None:
    """Run ``child`` on ``host``: ``ip netns exec`` execs it, so the pid stays the child's."""
    child.argv = ["ip", "netns", "exec", host.netns, *child.argv]


def _apiserver(
    startup: Startup,
    endpoints: list[str],
    cluster_pki: ClusterPki,
    port: int,
    *,
    index: int | None = None,
    agent_port: int | None = None,
    on: MasterHost | None = None,
) -> processes.ApiServer:
    """An API server, started; ``index`` tells apart the masters' logs (None: the only one).

    ``on``: the master host it runs on (None: this machine's namespace).
    """
    args, logs = startup.args, startup.logs
    suffix = "" if index is None else f"-{index}"
    # One metrics port is recorded per component: the first API server serves it.
    metrics = metricsup.api_args(startup.data_dir) if not index else []
    api = processes.ApiServer(
        endpoints,
        port=port,
        agent_port=agent_port,
        host=args.host if on is None else on.ip,
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
    if on is not None:
        _in_netns(api, on)
        # Where this namespace reaches it: the balancer's relay of its port.
        api.url = f"https://{metricsup.url_host(args.host)}:{api.port}"
    startup.supervisor.add(api)
    api.start()
    return api


def _wait_apiserver(
    startup: Startup, api: processes.ApiServer, on: MasterHost | None = None
) -> None:
    api.wait_ready(startup.args.ready_timeout)
    startup.check()
    audit = startup.logs / api.log_path.name.replace("apiserver", "audit")
    where = f"{on.netns} {on.ip}; " if on is not None else ""
    print(f"apiserver     {api.url}  ({where}log: {api.log_path}; audit: {audit})")


def _several(startup: Startup, count: int) -> tuple[Masters, ClusterPki]:
    """``count`` masters on hosts of their own, and the balancer before them."""
    problem = _loopback_members(startup.data_dir)
    if problem is not None:
        raise processes.ProcessError(problem)
    ports = _master_ports(startup.data_dir, count)
    hosts, underlay = _master_hosts(startup, count)
    # First: the waits for etcd and the API servers go through its relays.
    balancer = _start_balancer(startup, ports, hosts, underlay)
    internal, relayed = _etcd_cluster(startup, ports, hosts)
    cluster_pki = cluster.prepare_pki(
        startup.data_dir, cluster.serving_hosts(startup.args.host, [host.ip for host in hosts])
    )
    apis = [
        _apiserver(
            startup,
            # Its own master's member first: the etcd client's channel stays on the
            # first member that answers, so with one shared order every API server
            # would sit on member 0 and a partition of that one master would stall
            # them all (the fault tests saw 7 s). kubeadm's stacked masters point
            # each API server at its local member likewise.
            internal[index:] + internal[:index],
            cluster_pki,
            p["apiserver"],
            index=index,
            agent_port=p["agent"],
            on=host,
        )
        for index, (p, host) in enumerate(zip(ports, hosts, strict=True))
    ]
    for api, host in zip(apis, hosts, strict=True):
        _wait_apiserver(startup, api, host)
    url = _wait_balancer(startup, balancer, cluster_pki, len(apis))
    masters = Masters(
        url=url, etcd=relayed, apiservers=apis, balancer=url, hosts=hosts,
        netns_prefix=netns_prefix(startup.args.cluster_id),
    )  # fmt: skip
    return masters, cluster_pki


def _master_hosts(startup: Startup, count: int) -> tuple[list[MasterHost], str]:
    """The masters' simulated hosts, removed on stop; them, and their underlay namespace."""
    prefix = netns_prefix(startup.args.cluster_id)
    # Recorded before they exist, so corral down removes them even after a crash halfway.
    state = localcluster.read_state(startup.data_dir)
    state["masters"] = {"netns_prefix": prefix}
    localcluster.write_state(startup.data_dir, state)

    def remove_hosts() -> None:
        removed = down.testbed("down", "--prefix", prefix)["removed"]
        print(f"removed the masters' hosts ({len(removed)} network namespaces)", flush=True)

    # Deferred before any master starts: it runs once they have all stopped.
    startup.supervisor.defer(remove_hosts)
    try:
        bed = down.testbed("up", "--hosts", str(count), "--prefix", prefix)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        raise processes.ProcessError(f"the masters' simulated hosts: {error}") from None
    hosts = [MasterHost(h["netns"], h["ip"]) for h in bed["hosts"]]
    listing = ", ".join(f"{h.netns} {h.ip}" for h in hosts)
    print(f"master hosts  {listing}  (underlay {bed['underlay']})")
    return hosts, str(bed["underlay"])


Relay = tuple[str, str, str]
"""A plain TCP relay of the balancer's: its name, where it listens, where it connects."""


def haproxy_config(
    bind: str,
    servers: list[str],
    *,
    namespace: str | None = None,
    relays: list[Relay] | None = None,
) -> str:
    """HAProxy's configuration: listen on ``bind``, balance across ``servers`` (host:port).

    ``namespace``: the network namespace HAProxy connects to servers from.
    ``relays``: more ports passed on, unbalanced and unchecked, to one server each.
    """
    via = f" namespace {namespace}" if namespace else ""
    lines = [f'    server apiserver{i} "{server}"{via}' for i, server in enumerate(servers, 1)]
    text = _HAPROXY_HEAD.format(bind=bind) + "\n".join(lines) + "\n"
    for name, listen, target in relays or []:
        text += f'\nlisten {name}\n    bind "{listen}"\n    server {name} "{target}"{via}\n'
    return text


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


def _start_balancer(
    startup: Startup, ports: list[dict[str, int]], hosts: list[MasterHost], underlay: str
) -> processes.ManagedProcess:
    """HAProxy on --port, before the masters' API servers, and relays of their own ports.

    It connects from the underlay namespace, so its traffic crosses each
    master's eth0 as a client's on the network would.
    """
    args = startup.args
    metrics = metricsup.ports(startup.data_dir)["apiserver"]
    relays: list[Relay] = []
    for index, (p, host) in enumerate(zip(ports, hosts, strict=True)):
        for kind, bind_host in (
            ("apiserver", args.host),
            ("agent", args.host),
            # etcd answers anyone who connects: on loopback only, as a lone etcd is.
            ("etcd_client", "127.0.0.1"),
        ):
            port = p[kind]
            relays.append((f"master{index}-{kind}", f"{bind_host}:{port}", f"{host.ip}:{port}"))
    # The first API server serves the metrics (see _apiserver).
    relays.append(("master0-metrics", f"{args.host}:{metrics}", f"{hosts[0].ip}:{metrics}"))
    config = startup.data_dir / "haproxy.cfg"
    servers = [f"{host.ip}:{p['apiserver']}" for p, host in zip(ports, hosts, strict=True)]
    config.write_text(
        haproxy_config(f"{args.host}:{args.port}", servers, namespace=underlay, relays=relays)
    )
    child = processes.ManagedProcess(
        "haproxy", [find_haproxy(), "-db", "-f", str(config)], startup.logs / "haproxy.log"
    )
    startup.supervisor.add(child)
    child.start()
    return child


def _wait_balancer(
    startup: Startup, child: processes.ManagedProcess, cluster_pki: ClusterPki, count: int
) -> str:
    """The balancer's URL, once it passes a request on."""
    args = startup.args
    url = f"https://{metricsup.url_host(args.host)}:{args.port}"
    processes.wait_until(
        lambda: processes.http_ok(f"{url}/readyz", ca_file=cluster_pki.ca_cert),
        args.ready_timeout,
        "haproxy",
        alive=child.running,
    )
    startup.check()
    config = startup.data_dir / "haproxy.cfg"
    print(f"balancer      {url} -> {count} API servers  (haproxy; config: {config})")
    return url
