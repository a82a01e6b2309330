"""Three real agents as three simulated hosts: pods across nodes, Services, NodePorts, DNS.

The hosts are network namespaces on an underlay bridge (nodeagent.network
.testbed); each agent makes one of them its host side (--network-netns)
and advertises its underlay address (--node-ip), so host-gw routes carry
pod traffic between them. Pods run in the shared test dockerd. Every
namespace, link and container is removed at the end.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.client.rest import Client
from corral.objects import Obj
from corralctl.processes import ManagedProcess
from nodeagent.network.testbed import Testbed, cleanup, create_hosts, namespaces, root_links
from tests.conftest import LocalCluster
from tests.e2e.conftest import TEST_IMAGE, AgentProcess, Agents, Dockerd, wait_for_node
from tests.support import eventually, resource

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PREFIX = "crl-e2ec"


PODS, SERVICES = resource("pods"), resource("services")


@dataclass
class Net:
    cluster: LocalCluster
    client: Client
    bed: Testbed
    agents: list[AgentProcess]
    pool: Agents

    def exec(self, pod: str, script: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "corralctl.main", "exec", pod, "-n", "default",
             "--kubeconfig", str(self.cluster.kubeconfig), "--", "sh", "-c", script],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return done.stdout

    async def pod_ip(self, name: str) -> str:
        async def running() -> str | None:
            status = (await self.client.get(PODS, name, "default")).get("status") or {}
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            return status.get("podIP") if ready else None

        ip: str = await eventually(running, timeout=90, message=f"{name} ready")
        return ip


def _agent_args(host_name: str, host_ip: str) -> tuple[str, ...]:
    return ("--network-netns", host_name, "--node-ip", host_ip)


@pytest.fixture
async def net(
    cluster_factory: Callable[..., LocalCluster],
    dockerd: Dockerd,
    test_image: str,
    tmp_path: Path,
) -> AsyncIterator[Net]:
    links_before = root_links()
    await cleanup(prefix=PREFIX)
    bed = await create_hosts(3, prefix=PREFIX)
    cluster = cluster_factory()
    endpoints = ManagedProcess(
        "controller-manager",
        [
            sys.executable, "-m", "controlplane", "controller-manager",
            "--kubeconfig", str(cluster.component_kubeconfig("controller-manager")),
            "--controllers", "endpoints", "--leader-elect", "false",
        ],
        tmp_path / "controller-manager.log",
    )  # fmt: skip
    endpoints.start()
    pool = Agents(cluster, dockerd, tmp_path)
    try:
        agents = [pool.start(extra=_agent_args(h.name, h.ip)) for h in bed.hosts]
        for agent in agents:
            wait_for_node(cluster, agent.node)
        async with Client(cluster.client_config(), max_connections=16) as client:
            yield Net(cluster, client, bed, agents, pool)
    finally:
        pool.stop_all()
        endpoints.stop()
        await cleanup(bed, prefix=PREFIX)
    assert not {n for n in namespaces() if n.startswith(PREFIX)}
    assert root_links() <= links_before, root_links() - links_before


def _echo(name: str, node: str) -> Obj:
    script = (
        "mkdir -p /www; echo $(hostname) > /www/index.html; touch /www/ready; "
        "httpd -f -p 8080 -h /www"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "echo"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": TEST_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {
                        "httpGet": {"path": "/ready", "port": 8080},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }


GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port} | tail -n 1"


async def test_pods_services_and_node_ports_across_three_simulated_hosts(net: Net) -> None:
    nodes = [a.node for a in net.agents]
    for index, node in enumerate(nodes):
        await net.client.create(PODS, _echo(f"echo-{index}", node), "default")
    ips = [await net.pod_ip(f"echo-{i}") for i in range(3)]
    assert len(set(ips)) == 3

    # Pod to pod by IP, across nodes, both ways. Routes to peers arrive
    # with the next heartbeat after a node gets its pod CIDR.
    for source, target in ((0, 1), (1, 0), (2, 0)):

        def answered(source: int = source, target: int = target) -> bool:
            reply = net.exec(f"echo-{source}", GET.format(ip=ips[target], port=8080))
            return reply.strip() == f"echo-{target}"

        await eventually(answered, timeout=30, interval=0.5, message=f"{source} to {target}")

    service = await net.client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "echo"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "echo"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
        "default",
    )
    cluster_ip = service["spec"]["clusterIP"]
    node_port = service["spec"]["ports"][0]["nodePort"]

    def spread() -> Counter[str] | None:
        loop = f"for i in $(seq 1 100); do {GET.format(ip=cluster_ip, port=80)}; done"
        seen = Counter(line for line in net.exec("echo-0", loop).split() if line)
        return seen if len(seen) == 3 and sum(seen.values()) == 100 else None

    seen = await eventually(spread, timeout=60, interval=1, message="100 requests, 3 backends")
    assert set(seen) == {"echo-0", "echo-1", "echo-2"}

    # The cluster's DNS gives the Service's name.
    lookup = net.exec("echo-1", "nslookup echo.default.svc.cluster.local")
    assert cluster_ip in lookup, lookup

    # The host (a node's namespace) reaches the NodePort on another node.
    host, other = net.bed.hosts[0], net.bed.hosts[1]
    fetched = subprocess.run(
        ["ip", "netns", "exec", host.name, "sh", "-c",
         GET.format(ip=other.ip, port=node_port).replace("nc", "busybox nc")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert fetched.stdout.strip() in {"echo-0", "echo-1", "echo-2"}, fetched

    # A backend turning unready leaves the Service; ready again, it returns.
    net.exec("echo-2", "rm /www/ready")
    unready_at = time.monotonic()

    def without_echo_2() -> bool:
        loop = f"for i in $(seq 1 30); do {GET.format(ip=cluster_ip, port=80)}; done"
        return "echo-2" not in net.exec("echo-0", loop)

    await eventually(without_echo_2, timeout=30, interval=0.2, message="echo-2 out")
    print(
        f"\nFIGURE unready backend out of the Service after {time.monotonic() - unready_at:.1f} s"
    )
    net.exec("echo-2", "touch /www/ready")
    await eventually(lambda: spread() is not None, timeout=30, interval=1, message="echo-2 back")

    # An agent restart keeps its pods' addresses and connectivity.
    restarted = net.agents[1]
    restarted.process.stop()
    restarted.process.start()
    wait_for_node(net.cluster, restarted.node)
    assert await net.pod_ip("echo-1") == ips[1]

    def reached() -> bool:
        return net.exec("echo-1", GET.format(ip=ips[0], port=8080)).strip() == "echo-0"

    # Through the restarted agent (exec) and its node's network, both ways.
    await eventually(reached, timeout=30, interval=0.5, message="echo-1 after the restart")
    assert net.exec("echo-0", GET.format(ip=ips[1], port=8080)).strip() == "echo-1"

    # From a host namespace, unassigned cluster and service addresses are
    # unreachable, never sent to the default gateway.
    for address in ("10.244.250.9", "10.96.250.9"):
        found = subprocess.run(
            ["ip", "-n", host.name, "route", "get", address],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert found.returncode != 0 and "No route to host" in found.stderr, found
