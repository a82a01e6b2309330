"""A real agent's pod network: addresses, a Service's ClusterIP, cluster DNS, env vars.

The agent's host side is a network namespace this test creates (crl-*), so
nothing here touches the machine's own links or routes, and every packet
stays inside namespaces the test made.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator

import pytest

from corral.api.resources import REGISTRY
from corral.client.rest import Client
from tests.conftest import LocalCluster, unique_name
from tests.e2e.conftest import Agents, wait_for_node
from tests.e2e.test_agent import PODS, corral, pod, status_of
from tests.support import eventually

SERVICES = REGISTRY.resolve("services")
ENDPOINTS = REGISTRY.resolve("endpoints")
NODES = REGISTRY.resolve("nodes")
assert SERVICES is not None and ENDPOINTS is not None and NODES is not None


@pytest.fixture
def host_netns() -> Iterator[str]:
    name = unique_name("crl-e2e")[:15]
    yield name
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def _ip_in(netns: str, *argv: str) -> str:
    return subprocess.run(
        ["ip", "-n", netns, *argv], capture_output=True, text=True, check=True, timeout=30
    ).stdout


async def _running_ip(client: Client, name: str, namespace: str) -> str | None:
    status = await status_of(client, name, namespace)
    return status.get("podIP") if status.get("phase") == "Running" else None


async def _logs_with(cluster: LocalCluster, name: str, namespace: str, marker: str) -> str | None:
    logs = corral(cluster, "logs", name, "-n", namespace)
    return logs.stdout if logs.returncode == 0 and marker in logs.stdout else None


async def test_pods_get_addresses_and_reach_a_service_by_cluster_ip_and_dns_name(
    cluster: LocalCluster, client: Client, namespace: str, agents: Agents, host_netns: str
) -> None:
    agent = agents.start(extra=("--network-netns", host_netns))
    wait_for_node(cluster, agent.node)

    async def assigned() -> str | None:
        # Registration creates the Node, then gives it its share of the range.
        node = await client.get(NODES, agent.node)
        return (node.get("spec") or {}).get("podCIDR")

    pod_cidr = ipaddress.ip_network(await eventually(assigned, timeout=30, message="podCIDR"))

    # The host side: the bridge holds the gateway, and the cluster and
    # service ranges are covered by unreachable routes.
    def wired() -> str | None:
        try:
            routes = _ip_in(host_netns, "route", "show", "table", "main")
        except subprocess.CalledProcessError:
            return None  # the agent has not made its namespace yet
        return routes if "unreachable 10.96.0.0/16" in routes else None

    routes = await eventually(wired, timeout=30, message="the node's network")
    assert "unreachable 10.244.0.0/16" in routes and "unreachable 10.96.0.0/16" in routes
    assert str(next(pod_cidr.hosts())) in _ip_in(host_netns, "addr", "show", "crl0")

    await client.create(
        PODS,
        pod(
            "web",
            agent.node,
            "mkdir -p /www; hostname > /www/index.html; httpd -f -p 8080 -h /www",
        ),
        namespace,
    )
    web_ip = await eventually(
        lambda: _running_ip(client, "web", namespace), timeout=60, message="web running"
    )
    assert ipaddress.ip_address(web_ip) in pod_cidr

    # A Service without a selector, and its Endpoints written by hand (no
    # endpoints controller runs in this test's cluster).
    service = await client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
        namespace,
    )
    cluster_ip = service["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network("10.96.0.0/16")
    await client.create(
        ENDPOINTS,
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "web"},
            "subsets": [
                {
                    "addresses": [{"ip": web_ip}],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }
            ],
        },
        namespace,
    )

    fqdn = f"web.{namespace}.svc.cluster.local"
    # busybox's wget needs libc's resolver, which a static binary without
    # NSS libraries crashes in; nc and nslookup do not use it.
    command = (
        "echo HOST=$WEB_SERVICE_HOST PORT=$WEB_SERVICE_PORT; cat /etc/resolv.conf; "
        "get() { printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $1 $2 | tail -n 1; }; "
        "for i in $(seq 1 100); do "
        f"  resolved=$(nslookup {fqdn} | sed -n 's/^Address: *//p' | tail -n 1); "
        f"  a=$(get {web_ip} 8080); b=$(get {cluster_ip} 80); c=$(get $resolved 80); "
        '  [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] && '
        "  echo RESOLVED=$resolved DIRECT=$a CLUSTERIP=$b DNS=$c && break; sleep 0.5; "
        "done; echo END; sleep 3600"
    )
    # Created after the Service, so its environment names it.
    await client.create(PODS, pod("client", agent.node, command), namespace)
    text = await eventually(
        lambda: _logs_with(cluster, "client", namespace, "END"), timeout=90, message="client"
    )
    assert f"HOST={cluster_ip} PORT=80" in text
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in text
    assert f"nameserver {next(pod_cidr.hosts())}" in text
    assert f"RESOLVED={cluster_ip} DIRECT=web CLUSTERIP=web DNS=web" in text, text

    # Deleting the pods removes their links from the host side.
    await client.delete(PODS, "web", namespace, grace_period_seconds=0)
    await client.delete(PODS, "client", namespace, grace_period_seconds=0)

    async def links_gone() -> bool:
        links = _ip_in(host_netns, "-o", "link", "show", "master", "crl0")
        return links.strip() == ""

    await eventually(links_gone, timeout=60, message="pod veths removed")


async def test_an_address_outside_the_node_is_unreachable_from_a_pod(
    cluster: LocalCluster, client: Client, namespace: str, agents: Agents, host_netns: str
) -> None:
    agent = agents.start(extra=("--network-netns", host_netns))
    wait_for_node(cluster, agent.node)
    # An address inside the cluster range that no node owns, and one of the
    # service range with no Service: both end at an unreachable route,
    # never at a default route.
    command = (
        "nc -w 2 10.244.250.9 80 </dev/null 2>&1; echo rc=$?; "
        "nc -w 2 10.96.250.9 80 </dev/null 2>&1; echo rc=$?; echo END; sleep 3600"
    )
    await client.create(PODS, pod("probe", agent.node, command), namespace)
    text = await eventually(
        lambda: _logs_with(cluster, "probe", namespace, "END"), timeout=60, message="probe"
    )
    assert text.count("rc=1") == 2, text
    assert "(10.244.250.9): No route to host" in text, text
    # The host side routes neither anywhere: no default route can carry them.
    for address in ("10.244.250.9", "10.96.250.9"):
        found = subprocess.run(
            ["ip", "-n", host_netns, "route", "get", address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert found.returncode != 0 and "No route to host" in found.stderr, found
