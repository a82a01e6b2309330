"""The address plan: ClusterIPs, NodePorts and pod CIDRs are unique and stay put."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from typing import Any

import pytest

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corral.objects import Obj
from corralctl.processes import ManagedProcess, free_port
from tests.conftest import LocalCluster, unique_name
from tests.support import eventually

SERVICES = REGISTRY.resolve("services")
NODES = REGISTRY.resolve("nodes")
assert SERVICES is not None and NODES is not None


def service(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec},
    }


async def test_cluster_ips_are_unique_and_in_the_service_cidr(
    client: Client, namespace: str
) -> None:
    created = await asyncio.gather(
        *(client.create(SERVICES, service(f"s{i}"), namespace) for i in range(20))
    )
    addresses = [s["spec"]["clusterIP"] for s in created]
    assert len(set(addresses)) == 20
    for address in addresses:
        assert ipaddress.ip_address(address) in ipaddress.ip_network("10.96.0.0/16")
    assert created[0]["spec"]["clusterIPs"] == [addresses[0]]


async def test_a_requested_address_is_kept_and_cannot_be_taken_twice(
    client: Client, namespace: str
) -> None:
    first = await client.create(SERVICES, service("fixed", clusterIP="10.96.200.10"), namespace)
    assert first["spec"]["clusterIP"] == "10.96.200.10"
    with pytest.raises(ApiError) as caught:
        await client.create(SERVICES, service("thief", clusterIP="10.96.200.10"), namespace)
    assert caught.value.code == 422
    assert "already allocated" in caught.value.message
    # The failed create left nothing allocated for "thief".
    await client.delete(SERVICES, "fixed", namespace)
    again = await client.create(SERVICES, service("thief", clusterIP="10.96.200.10"), namespace)
    assert again["spec"]["clusterIP"] == "10.96.200.10"


async def test_headless_and_external_name_services_get_no_address(
    client: Client, namespace: str
) -> None:
    headless = await client.create(SERVICES, service("headless", clusterIP="None"), namespace)
    assert headless["spec"]["clusterIP"] == "None"
    external = await client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "db.example.internal"},
        },
        namespace,
    )
    assert "clusterIP" not in external["spec"]


async def test_node_ports_are_allocated_kept_on_reapply_and_released(
    client: Client, namespace: str
) -> None:
    created = await client.create(
        SERVICES,
        service(
            "np",
            type="NodePort",
            ports=[{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
        ),
        namespace,
    )
    ports = [p["nodePort"] for p in created["spec"]["ports"]]
    assert len(set(ports)) == 2 and all(30000 <= p <= 32767 for p in ports)
    # A manifest re-applied without nodePort and clusterIP keeps both.
    reapplied = await client.patch(
        SERVICES, "np", {"metadata": {"labels": {"v": "2"}}}, namespace, patch_type="merge"
    )
    assert [p["nodePort"] for p in reapplied["spec"]["ports"]] == ports
    replaced = dict(reapplied)
    replaced["spec"] = {
        **reapplied["spec"],
        "clusterIP": "",
        "clusterIPs": None,
        "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
    }
    replaced["spec"] = {k: v for k, v in replaced["spec"].items() if v is not None}
    kept = await client.replace(SERVICES, replaced, namespace)
    assert [p["nodePort"] for p in kept["spec"]["ports"]] == ports
    assert kept["spec"]["clusterIP"] == created["spec"]["clusterIP"]
    with pytest.raises(ApiError):
        await client.create(
            SERVICES,
            service("np2", type="NodePort", ports=[{"port": 80, "nodePort": ports[0]}]),
            namespace,
        )
    await client.delete(SERVICES, "np", namespace)
    reuse = await client.create(
        SERVICES,
        service("np2", type="NodePort", ports=[{"port": 80, "nodePort": ports[0]}]),
        namespace,
    )
    assert reuse["spec"]["ports"][0]["nodePort"] == ports[0]


async def test_nodes_get_distinct_pod_cidrs_that_survive_re_registration(
    cluster: LocalCluster, client: Client, tmp_path: Any
) -> None:
    names = [unique_name("cidr") for _ in range(3)]
    agents = []

    def start(name: str) -> ManagedProcess:
        agent = ManagedProcess(
            name,
            [
                sys.executable,
                "-m",
                "nodeagent",
                *cluster.agent_args(name),
                "--runtime",
                "hollow",
                "--data-dir",
                str(tmp_path / name),
                "--listen-port",
                str(free_port()),
            ],
            tmp_path / f"{name}.log",
        )
        agent.start()
        return agent

    try:
        agents = [start(name) for name in names]

        async def cidrs() -> dict[str, str] | None:
            found = {}
            for name in names:
                try:
                    node = await client.get(NODES, name)
                except ApiError:
                    return None
                cidr = (node.get("spec") or {}).get("podCIDR")
                if not cidr:
                    return None
                found[name] = cidr
            return found

        first = await eventually(cidrs, timeout=30, message="pod CIDRs for three nodes")
        assert len(set(first.values())) == 3
        for cidr in first.values():
            network = ipaddress.ip_network(cidr)
            assert network.prefixlen == 24
            assert network.subnet_of(ipaddress.ip_network("10.244.0.0/16"))
        agents[0].kill()
        agents[0] = start(names[0])
        again = await eventually(cidrs, timeout=30, message="pod CIDRs after a restart")
        assert again == first
    finally:
        for agent in agents:
            agent.stop()
        for name in names:
            try:
                await client.delete(NODES, name)
            except ApiError:
                pass
