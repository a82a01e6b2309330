"""A pod resolves names outside the cluster, SRV, PTR and ExternalName names, through glibc.

Two namespaces the test creates: a "node" running the cluster DNS on its
pod-side address, and a "pod" joined to it by a veth with the cluster DNS in
its resolv.conf. The node's resolv.conf (/etc/netns/<node>/resolv.conf, as
a simulated host's) lists a loopback resolver, which must be skipped, and an
"upstream": a second DNS server, authoritative for example.org, on an
address of the node namespace's own. Nothing leaves these namespaces.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from corralctl.processes import free_port
from nodeagent.network import ClusterDNS, resolv_conf
from nodeagent.network.dnsforward import Upstream, node_upstreams
from nodeagent.network.dnszone import Zone
from nodeagent.network.testbed import add_netns, delete_netns, run, write_resolv_conf

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODE = "crl-dnsu-node"
POD = "crl-dnsu-pod"
NODE_IP = "10.250.0.1"
POD_IP = "10.250.0.2"
UPSTREAM_IP = "192.0.2.53"
# A second cluster DNS in the node namespace, forwarding from the test's own
# namespace (the default, as the agent does) to a resolver on its loopback.
AGENT_SIDE_IP = "10.250.0.3"

SERVICES: list[Any] = [
    {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]},
    },
    {
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"clusterIP": "None", "ports": [{"name": "mysql", "port": 3306}]},
    },
    {
        "metadata": {"name": "ext", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "www.example.org"},
    },
]
ENDPOINTS: list[Any] = [
    {
        "metadata": {"name": "db", "namespace": "shop"},
        "subsets": [
            {
                "addresses": [{"ip": "10.244.1.5", "hostname": "db-0"}],
                "ports": [{"name": "mysql", "port": 3306}],
            }
        ],
    }
]


async def _wire() -> None:
    await add_netns(NODE)
    await add_netns(POD)
    await run("ip", "-n", NODE, "link", "add", "veth0", "type", "veth",
              "peer", "name", "eth0", "netns", POD)  # fmt: skip
    await run("ip", "-n", NODE, "addr", "add", f"{NODE_IP}/24", "dev", "veth0")
    await run("ip", "-n", NODE, "addr", "add", f"{AGENT_SIDE_IP}/24", "dev", "veth0")
    await run("ip", "-n", NODE, "link", "set", "veth0", "up")
    # The upstream's address sits on the node's lo (no dummy links on every kernel):
    # not a loopback address, so it is kept as an upstream.
    await run("ip", "-n", NODE, "addr", "add", f"{UPSTREAM_IP}/32", "dev", "lo")
    await run("ip", "-n", POD, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
    await run("ip", "-n", POD, "link", "set", "eth0", "up")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def servers() -> AsyncIterator[list[Upstream]]:
    started: list[ClusterDNS] = []
    try:
        await _wire()
        write_resolv_conf(NODE, f"nameserver 127.0.0.53\nnameserver {UPSTREAM_IP}\n")
        write_resolv_conf(POD, resolv_conf("shop", NODE_IP))
        upstream = ClusterDNS(UPSTREAM_IP, host_netns=NODE, domain="example.org")
        upstream.zone = Zone(
            domain="example.org",
            addresses={"www.example.org": ["192.0.2.7"]},
            names={"example.org"},
        )
        await upstream.start()
        started.append(upstream)
        found = node_upstreams(NODE, own_addresses=[NODE_IP])
        cluster = ClusterDNS(NODE_IP, host_netns=NODE, upstreams=found, forward_netns=NODE)
        cluster.update(SERVICES, ENDPOINTS)
        await cluster.start()
        started.append(cluster)
        machine = ClusterDNS("127.0.0.1", port=free_port(), domain="example.org")
        machine.zone = Zone(
            domain="example.org",
            addresses={"www.example.org": ["192.0.2.8"]},
            names={"example.org"},
        )
        await machine.start()
        started.append(machine)
        agent_side = ClusterDNS(
            AGENT_SIDE_IP, host_netns=NODE, upstreams=[Upstream("127.0.0.1", machine.port)]
        )
        await agent_side.start()
        started.append(agent_side)
        yield found
    finally:
        for server in started:
            await server.stop()
        await delete_netns(POD)
        await delete_netns(NODE)


async def _in_pod(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", POD, *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(30):
        stdout, _ = await process.communicate()
    return stdout.decode()


async def _addresses(name: str) -> list[str]:
    output = await _in_pod("getent", "ahostsv4", name)
    return sorted({line.split()[0] for line in output.splitlines()})


async def test_the_nodes_resolvers_without_loopback_are_the_upstreams(
    servers: list[Upstream],
) -> None:
    assert servers == [Upstream(UPSTREAM_IP)]


async def test_a_pod_resolves_a_name_outside_the_cluster(servers: list[Upstream]) -> None:
    assert await _addresses("www.example.org") == ["192.0.2.7"]
    assert await _addresses("nothing.example.org") == []
    assert await _addresses("web") == ["10.96.0.10"]  # the cluster's names still first


async def test_an_external_name_service_resolves_to_its_targets_address(
    servers: list[Upstream],
) -> None:
    assert await _addresses("ext") == ["192.0.2.7"]
    assert await _addresses("ext.shop.svc.cluster.local") == ["192.0.2.7"]


async def test_srv_and_ptr_records_through_the_pods_resolver(servers: list[Upstream]) -> None:
    srv = await _in_pod(
        "busybox", "nslookup", "-type=srv", "_mysql._tcp.db.shop.svc.cluster.local", NODE_IP
    )
    assert "db-0.db.shop.svc.cluster.local" in srv and "3306" in srv
    srv = await _in_pod(
        "busybox", "nslookup", "-type=srv", "_http._tcp.web.shop.svc.cluster.local", NODE_IP
    )
    assert "web.shop.svc.cluster.local" in srv and " 80 " in srv
    # glibc's reverse lookup: an address back to its Service's name.
    assert "web.shop.svc.cluster.local" in await _in_pod("getent", "hosts", "10.96.0.10")
    assert "db-0.db.shop.svc.cluster.local" in await _in_pod("getent", "hosts", "10.244.1.5")


async def test_by_default_upstreams_are_asked_from_the_agents_own_namespace(
    servers: list[Upstream],
) -> None:
    # The node namespace has no route to the machine's loopback; the agent's has.
    output = await _in_pod("busybox", "nslookup", "www.example.org", AGENT_SIDE_IP)
    assert "192.0.2.8" in output
