"""The pod network and Service data plane on three simulated hosts.

Every host is a network namespace on a test underlay (nodeagent.network.testbed),
running a NodeNetwork, a ServiceProxy and, on the first, ClusterDNS. "Pods" are
plain namespaces with a tiny HTTP server that answers with its name and the
client address it saw. Traffic stays inside these namespaces.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from nodeagent.network import ClusterDNS, NetworkConfig, NodeNetwork, ServiceProxy, resolv_conf
from nodeagent.network.testbed import (
    SimHost,
    Testbed,
    add_netns,
    cleanup,
    connect_error,
    create_hosts,
    delete_netns,
    has_br_netfilter,
    http_get,
    namespaces,
    root_links,
    run,
    start_http_server,
    stop,
    write_resolv_conf,
)
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

PREFIX = "crl-nt"
NS = "shop"


def service(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "clusterIP": ip,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            **spec,
        },
    }


def endpoints(name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "subsets": [
            {
                "addresses": [{"ip": ip} for ip in ips],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        ]
        if ips
        else [],
    }


@dataclass
class Cluster:
    bed: Testbed
    nets: list[NodeNetwork]
    proxies: list[ProxyOn]
    pods: dict[str, str] = field(default_factory=dict)  # pod name -> IP
    servers: list[asyncio.subprocess.Process] = field(default_factory=list)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    dns: ClusterDNS | None = None

    def host(self, index: int) -> SimHost:
        return self.bed.hosts[index]

    async def sync(self) -> None:
        for proxy in self.proxies:
            await proxy.proxy.sync(
                list(self.services.values()), list(self.endpoints.values()), [proxy.node_ip]
            )
        if self.dns is not None:
            self.dns.update(list(self.services.values()), list(self.endpoints.values()))


@dataclass
class ProxyOn:
    proxy: ServiceProxy
    node_ip: str


@pytest.fixture(scope="module")
def nothing_left_behind() -> Iterator[None]:
    """Namespaces and root links before and after the module are the same."""
    before_ns, before_links = namespaces(), root_links()
    yield
    assert namespaces() == before_ns
    assert root_links() == before_links
    assert not list(Path("/etc/netns").glob(f"{PREFIX}-*"))


@pytest_asyncio.fixture(
    scope="module", loop_scope="module", params=["no-br_netfilter", "br_netfilter"]
)
async def cluster(
    request: pytest.FixtureRequest,
    nothing_left_behind: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Cluster]:
    br_netfilter = request.param == "br_netfilter"
    if br_netfilter and not has_br_netfilter():
        pytest.skip("the br_netfilter module is not loaded")
    await cleanup(prefix=PREFIX)  # whatever a killed earlier run left
    state = tmp_path_factory.mktemp("network")
    bed = await create_hosts(3, PREFIX, br_netfilter=br_netfilter)
    built = Cluster(bed, [], [])
    try:
        for index, host in enumerate(bed.hosts):
            config = NetworkConfig(
                host_netns=host.name,
                pod_cidr=f"10.244.{index}.0/24",
                state_dir=state / host.name,
                node_ip=host.ip,
            )
            net = NodeNetwork(config)
            await net.setup()
            built.nets.append(net)
            built.proxies.append(ProxyOn(ServiceProxy(config), host.ip))
        peers = {h.name: (f"10.244.{i}.0/24", h.ip) for i, h in enumerate(bed.hosts)}
        for net in built.nets:
            await net.set_peers(peers)
        # client c0 and backend b0 on host 0, b1 and c1 on host 1, b2 on host 2
        for pod, index in (("c0", 0), ("b0", 0), ("b1", 1), ("c1", 1), ("b2", 2)):
            name = f"{PREFIX}-pod-{pod}"
            path = await add_netns(name)
            built.pods[pod] = await built.nets[index].attach(f"uid-{pod}", path)
            if pod.startswith("b"):
                built.servers.append(await start_http_server(name, pod))
        backends = [built.pods["b0"], built.pods["b1"], built.pods["b2"]]
        built.services = {
            "web": service(
                "web",
                "10.96.0.10",
                type="NodePort",
                ports=[{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}],
            ),
            "sticky": service("sticky", "10.96.0.11", sessionAffinity="ClientIP"),
            "solo": service("solo", "10.96.0.12"),
            "empty": service(
                "empty",
                "10.96.0.13",
                type="NodePort",
                ports=[{"name": "http", "port": 80, "nodePort": 30081, "protocol": "TCP"}],
            ),
            "db": service("db", "None"),
            "shrink": service("shrink", "10.96.0.14"),
        }
        built.endpoints = {
            "web": endpoints("web", backends),
            "sticky": endpoints("sticky", backends),
            "solo": endpoints("solo", [built.pods["b0"]]),
            "empty": endpoints("empty", []),
            "db": endpoints("db", [built.pods["b1"], built.pods["b2"]]),
            "shrink": endpoints("shrink", backends),
        }
        built.dns = ClusterDNS(built.nets[0].config.gateway, host_netns=bed.hosts[0].name)
        await built.dns.start()
        await built.sync()
        write_resolv_conf(f"{PREFIX}-pod-c0", resolv_conf(NS, built.nets[0].config.gateway))
        yield built
    finally:
        if built.dns is not None:
            await built.dns.stop()
        for server in built.servers:
            await stop(server)
        for net in built.nets:
            net.close()
        for pod in ("c0", "b0", "b1", "c1", "b2"):
            await delete_netns(f"{PREFIX}-pod-{pod}")
        await cleanup(bed, PREFIX)


def pod_ns(pod: str) -> str:
    return f"{PREFIX}-pod-{pod}"


async def test_pod_to_pod_across_hosts_both_ways(cluster: Cluster) -> None:
    pods = cluster.pods
    assert await http_get(pod_ns("c0"), pods["b1"], 8080) == f"b1 {pods['c0']}"
    assert await http_get(pod_ns("c1"), pods["b0"], 8080) == f"b0 {pods['c1']}"
    assert await http_get(pod_ns("c0"), pods["b2"], 8080) == f"b2 {pods['c0']}"
    assert await http_get(pod_ns("c0"), pods["b0"], 8080) == f"b0 {pods['c0']}"  # same node


async def test_unassigned_cluster_and_service_addresses_are_unreachable(cluster: Cluster) -> None:
    host = cluster.host(0).name
    routes = await run("ip", "netns", "exec", host, "ip", "-o", "route", "show")
    assert "default via 192.168.240.254" in routes  # there is a default route to leak to
    assert "unreachable 10.244.0.0/16" in routes
    assert "unreachable 10.96.0.0/16" in routes
    for address in ("10.244.77.7", "10.96.200.1"):
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", host, "ip", "route", "get", address,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await process.communicate()
        assert process.returncode != 0, stdout
        assert b"No route to host" in stderr  # the kernel's answer for an unreachable route
        assert b"192.168.240.254" not in stdout
    # A pod is told at once (ICMP host unreachable), nothing is sent to the underlay.
    assert await connect_error(pod_ns("c0"), "10.244.77.7", 80) == errno.EHOSTUNREACH
    # A peer's pod CIDR is more specific than the unreachable route.
    assert "10.244.1.0/24 via 192.168.240.2" in routes


async def test_service_balances_over_backends_on_every_host(cluster: Cluster) -> None:
    seen: Counter[str] = Counter()
    for _ in range(100):
        body = await http_get(pod_ns("c0"), "10.96.0.10", 80)
        seen[body.split()[0]] += 1
    print(f"backends hit by 100 requests: {dict(seen)}")
    assert set(seen) == {"b0", "b1", "b2"}


async def test_client_addresses_backends_see(cluster: Cluster) -> None:
    pods = cluster.pods
    seen: dict[str, str] = {}
    for _ in range(60):
        backend, client = (await http_get(pod_ns("c0"), "10.96.0.10", 80)).split()
        seen[backend] = client
    # Remote backends see the pod itself; the same-node one sees the gateway,
    # because that path is masqueraded to keep the reply on the host.
    assert seen["b1"] == pods["c0"]
    assert seen["b2"] == pods["c0"]
    assert seen["b0"] == "10.244.0.1"


async def test_session_affinity_pins_a_client(cluster: Cluster) -> None:
    for client in ("c0", "c1"):
        hits = {(await http_get(pod_ns(client), "10.96.0.11", 80)).split()[0] for _ in range(20)}
        assert len(hits) == 1, hits


async def test_a_pod_reaches_itself_through_its_service(cluster: Cluster) -> None:
    for _ in range(5):
        backend, client = (await http_get(pod_ns("b0"), "10.96.0.12", 80)).split()
        assert backend == "b0"
        assert client == "10.244.0.1"


async def test_node_port_from_other_hosts_and_the_host_itself(cluster: Cluster) -> None:
    node0 = cluster.host(0).ip
    for source in (cluster.host(1).name, cluster.host(2).name, cluster.host(0).name):
        hits = {(await http_get(source, node0, 30080)).split()[0] for _ in range(30)}
        assert hits == {"b0", "b1", "b2"}, (source, hits)


async def test_services_without_endpoints_reject(cluster: Cluster) -> None:
    assert await connect_error(pod_ns("c0"), "10.96.0.13", 80) == errno.ECONNREFUSED
    node0 = cluster.host(0).ip
    assert await connect_error(cluster.host(1).name, node0, 30081) == errno.ECONNREFUSED
    # A ClusterIP with no such service at all is unreachable, not black-holed.
    assert await connect_error(pod_ns("c0"), "10.96.99.99", 80) == errno.EHOSTUNREACH


async def test_dns_through_the_pods_resolv_conf(cluster: Cluster) -> None:
    async def resolve(name: str) -> list[str]:
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", pod_ns("c0"), "getent", "ahostsv4", name,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        stdout, _ = await process.communicate()
        return sorted({line.split()[0] for line in stdout.decode().splitlines()})

    assert await resolve("web.shop.svc.cluster.local") == ["10.96.0.10"]
    assert await resolve("web") == ["10.96.0.10"]  # the search path
    assert await resolve("web.shop") == ["10.96.0.10"]
    assert await resolve("db") == sorted([cluster.pods["b1"], cluster.pods["b2"]])
    assert await resolve("nothing-here") == []
    nslookup = await run(
        "ip", "netns", "exec", pod_ns("c0"),
        "busybox", "nslookup", "sticky.shop.svc.cluster.local", "10.244.0.1",
        check=False,
    )  # fmt: skip
    assert "10.96.0.11" in nslookup


async def test_a_removed_backend_stops_getting_traffic(cluster: Cluster) -> None:
    pods = cluster.pods
    cluster.endpoints["shrink"] = endpoints("shrink", [pods["b0"], pods["b1"]])
    started = time.perf_counter()
    await cluster.sync()

    async def only_remaining() -> bool:
        hits = {(await http_get(pod_ns("c0"), "10.96.0.14", 80)).split()[0] for _ in range(30)}
        return hits <= {"b0", "b1"}

    await eventually(only_remaining, timeout=10, message="b2 out of rotation")
    print(f"backend removal effective after {time.perf_counter() - started:.3f} s")
