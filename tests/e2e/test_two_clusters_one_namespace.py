"""Two local clusters' pod networks in one host namespace, as two plain ``corral up`` have.

Each node gets the names ``corral up`` picks for it (corralctl.localnames):
its own bridge, pod and Service ranges, DNS address and nftables table. In
one simulated host (standing in for the machine's own namespace, which the
tests leave alone) both are set up, each serves DNS on its gateway's port 53
and programs its Service rules, and each refreshes its routes; neither may
undo the other's. Tearing one down leaves the other's bridge, pod veth,
unreachable routes and table.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nodeagent.network import ClusterDNS, NetworkConfig, NodeNetwork, ServiceProxy
from nodeagent.network.testbed import (
    Testbed,
    add_netns,
    cleanup,
    create_hosts,
    delete_netns,
    namespaces,
    root_links,
    run,
)

pytestmark = [pytest.mark.e2e]

PREFIX = "crl-2c"


@pytest.fixture
async def bed() -> AsyncIterator[Testbed]:
    before, links_before = namespaces(), root_links()
    await cleanup(prefix=PREFIX)
    built = await create_hosts(1, PREFIX)
    try:
        yield built
    finally:
        for name in namespaces():
            if name.startswith(f"{PREFIX}-pod"):
                await delete_netns(name)
        await cleanup(built, PREFIX)
        assert namespaces() == before
        assert root_links() == links_before


def _config(netns: str, ip: str, slot: int, state: Path) -> NetworkConfig:
    return NetworkConfig(
        host_netns=netns,
        pod_cidr=f"10.{244 + slot}.0.0/24",
        state_dir=state / str(slot),
        node_ip=ip,
        cluster_cidr=f"10.{244 + slot}.0.0/16",
        service_cidr=f"10.{96 + slot}.0.0/16",
        bridge=f"crl{slot}",
        nft_table="corral" if slot == 0 else f"corral{slot}",
    )


async def _state(netns: str) -> tuple[str, str, str]:
    links = await run("ip", "-n", netns, "-o", "link", "show")
    routes = await run("ip", "-n", netns, "route", "show")
    tables = await run("nsenter", f"--net=/run/netns/{netns}", "nft", "list", "tables")
    return links, routes, tables


async def test_two_clusters_share_a_namespace_and_one_teardown_leaves_the_other(
    bed: Testbed, tmp_path: Path
) -> None:
    host = bed.hosts[0]
    first = NodeNetwork(_config(host.name, host.ip, 0, tmp_path))
    second = NodeNetwork(_config(host.name, host.ip, 1, tmp_path))
    dns = [ClusterDNS(net.config.gateway, host_netns=host.name) for net in (first, second)]
    try:
        for net, server in zip((first, second), dns, strict=True):
            await net.setup()
            # The second used to fail here: "Address already in use" on 10.244.0.1:53.
            await server.start()
            await ServiceProxy(net.config).sync([], [], [host.ip])
        pods = [await add_netns(f"{PREFIX}-pod-{n}") for n in range(2)]
        address_a = await first.attach("uid-a", pods[0])
        address_b = await second.attach("uid-b", pods[1])
        assert address_a.startswith("10.244.0.") and address_b.startswith("10.245.0."), (
            address_a,
            address_b,
        )
        # Each refreshes its routes; the other's stay.
        await first.set_peers({})
        await second.set_peers({})
        links, routes, tables = await _state(host.name)
        for wanted in ("crl0:", "crl1:"):
            assert wanted in links, links
        for cidr in ("10.244.0.0/16", "10.96.0.0/16", "10.245.0.0/16", "10.97.0.0/16"):
            assert f"unreachable {cidr}" in routes, routes
        assert "table ip corral\n" in tables + "\n" and "table ip corral1" in tables, tables
        for server in dns:
            # Each cluster's DNS answers on its own gateway.
            await run(
                "ip", "netns", "exec", host.name, sys.executable, "-c",
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                f"s.settimeout(3); s.sendto(bytes.fromhex('{_QUERY}'), ('{server.address}', 53)); "
                "s.recv(512)",
            )  # fmt: skip

        await dns[0].stop()
        await first.teardown()
        links, routes, tables = await _state(host.name)
        assert "crl0:" not in links and "crl1:" in links, links
        assert sum(" master crl1 " in line for line in links.splitlines()) == 1, links
        assert "10.244.0.0/16" not in routes and "10.96.0.0/16" not in routes, routes
        assert "unreachable 10.245.0.0/16" in routes and "unreachable 10.97.0.0/16" in routes
        assert "table ip corral1" in tables and "table ip corral\n" not in tables + "\n", tables
        await second.detach("uid-b")
        await second.teardown()
    finally:
        for server in dns:
            await server.stop()
        for net in (first, second):
            net.close()


def _query() -> str:
    """A DNS query for kubernetes.default.svc.cluster.local, type A, as hex."""
    name = b"".join(
        bytes([len(part)]) + part.encode()
        for part in ["kubernetes", "default", "svc", "cluster", "local"]
    )
    header = (0x1234).to_bytes(2, "big") + b"\x01\x00" + b"\x00\x01" + b"\x00" * 6
    return (header + name + b"\x00" + b"\x00\x01\x00\x01").hex()


_QUERY = _query()
