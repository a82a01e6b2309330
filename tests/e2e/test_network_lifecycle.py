"""A node's network over time: many pods coming and going, an agent restart, teardown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nodeagent.network import NetworkConfig, NodeNetwork, ServiceProxy
from nodeagent.network.testbed import (
    SimHost,
    Testbed,
    add_netns,
    cleanup,
    create_hosts,
    delete_netns,
    http_get,
    namespaces,
    root_links,
    run,
    start_http_server,
    stop,
)

PREFIX = "crl-nl"


def config(host: SimHost, index: int, state: Path) -> NetworkConfig:
    return NetworkConfig(
        host_netns=host.name,
        pod_cidr=f"10.244.{index}.0/24",
        state_dir=state / host.name,
        node_ip=host.ip,
    )


async def snapshot(netns: str) -> tuple[str, str, str]:
    """Links, addresses and routes of a namespace (names and prefixes, not counters)."""
    links = await run("ip", "netns", "exec", netns, "ip", "-o", "link", "show")
    names = "\n".join(sorted(line.split(":")[1].strip() for line in links.splitlines()))
    addresses = await run("ip", "netns", "exec", netns, "ip", "-o", "-4", "addr", "show")
    routes = await run("ip", "netns", "exec", netns, "ip", "route", "show")
    # The bridge's carrier (and so its route's "linkdown" flag) follows its
    # ports through the kernel's link watch, a moment after they change.
    routes = routes.replace(" linkdown", "")
    return names, "\n".join(sorted(a.split()[3] for a in addresses.splitlines())), routes


async def nft_table(netns: str) -> str:
    return await run("nsenter", f"--net=/run/netns/{netns}", "nft", "list", "ruleset")


@pytest.fixture
async def bed() -> AsyncIterator[Testbed]:
    before, links_before = namespaces(), root_links()
    await cleanup(prefix=PREFIX)
    built = await create_hosts(2, PREFIX)
    try:
        yield built
    finally:
        for name in namespaces():
            if name.startswith(f"{PREFIX}-pod"):
                await delete_netns(name)
        await cleanup(built, PREFIX)
        assert namespaces() == before
        assert root_links() == links_before


async def test_200_pods_come_and_go_without_a_trace(bed: Testbed, tmp_path: Path) -> None:
    host = bed.hosts[0]
    net = NodeNetwork(config(host, 0, tmp_path))
    await net.setup()
    await ServiceProxy(net.config).sync([], [], [host.ip])
    slots = [await add_netns(f"{PREFIX}-pod-{n}") for n in range(10)]
    host_before = await snapshot(host.name)
    pods_before = [await snapshot(f"{PREFIX}-pod-{n}") for n in range(10)]
    table_before = await nft_table(host.name)
    seen: set[str] = set()
    try:
        for batch in range(20):
            uids = [f"pod-{batch}-{n}" for n in range(10)]
            addresses = await asyncio.gather(
                *(net.attach(uid, path) for uid, path in zip(uids, slots, strict=True))
            )
            assert len(set(addresses)) == 10
            seen.update(addresses)
            await asyncio.gather(*(net.detach(uid) for uid in uids))
        assert await snapshot(host.name) == host_before
        assert [await snapshot(f"{PREFIX}-pod-{n}") for n in range(10)] == pods_before
        assert await nft_table(host.name) == table_before
        assert net.ipam.allocations() == {}
        assert len(seen) > 10  # freed addresses were not handed straight back
    finally:
        net.close()


async def test_attach_and_detach_are_idempotent(bed: Testbed, tmp_path: Path) -> None:
    host = bed.hosts[0]
    net = NodeNetwork(config(host, 0, tmp_path))
    await net.setup()
    await net.setup()
    path = await add_netns(f"{PREFIX}-pod-a")
    try:
        first = await net.attach("uid-a", path)
        assert await net.attach("uid-a", path) == first
        await net.detach("uid-a")
        await net.detach("uid-a")
        await net.detach("never-attached")
        assert net.address_of("uid-a") is None
    finally:
        net.close()


async def test_a_restarted_agent_keeps_addresses_and_connectivity(
    bed: Testbed, tmp_path: Path
) -> None:
    peers = {h.name: (f"10.244.{i}.0/24", h.ip) for i, h in enumerate(bed.hosts)}
    nets = [NodeNetwork(config(h, i, tmp_path)) for i, h in enumerate(bed.hosts)]
    pods = {
        "a": (0, await add_netns(f"{PREFIX}-pod-a")),
        "b": (1, await add_netns(f"{PREFIX}-pod-b")),
    }
    server = None
    try:
        for net in nets:
            await net.setup()
            await net.set_peers(peers)
        addresses = {
            pod: await nets[i].attach(f"uid-{pod}", path) for pod, (i, path) in pods.items()
        }
        server = await start_http_server(f"{PREFIX}-pod-b", "b")
        assert (await http_get(f"{PREFIX}-pod-a", addresses["b"], 8080)).startswith("b ")
        routes_before = [await snapshot(h.name) for h in bed.hosts]
        for net in nets:
            net.close()

        # The agent restarts: new objects on the same namespaces and state.
        nets = [NodeNetwork(config(h, i, tmp_path)) for i, h in enumerate(bed.hosts)]
        for net in nets:
            await net.setup()
            await net.set_peers(peers)
        again = {pod: await nets[i].attach(f"uid-{pod}", path) for pod, (i, path) in pods.items()}
        assert again == addresses
        assert [await snapshot(h.name) for h in bed.hosts] == routes_before
        assert (await http_get(f"{PREFIX}-pod-a", addresses["b"], 8080)).startswith("b ")
        assert nets[0].address_of("uid-a") == addresses["a"]
    finally:
        if server is not None:
            await stop(server)
        for net in nets:
            net.close()


async def test_peers_follow_nodes_joining_and_leaving(bed: Testbed, tmp_path: Path) -> None:
    host = bed.hosts[0]
    net = NodeNetwork(config(host, 0, tmp_path))
    await net.setup()
    try:
        await net.set_peers(
            {
                "self": ("10.244.0.0/24", host.ip),
                "b": ("10.244.1.0/24", "192.168.240.2"),
                "c": ("10.244.2.0/24", "192.168.240.3"),
                "new": ("", ""),
                "outside": ("10.50.0.0/24", "192.168.240.9"),
            }
        )
        routes = await run("ip", "netns", "exec", host.name, "ip", "route", "show", "proto", "150")
        assert "10.244.1.0/24 via 192.168.240.2" in routes
        assert "10.244.2.0/24 via 192.168.240.3" in routes
        assert "10.50.0.0" not in routes
        await net.set_peers({"b": ("10.244.1.0/24", "192.168.240.4")})
        routes = await run("ip", "netns", "exec", host.name, "ip", "route", "show", "proto", "150")
        assert "10.244.1.0/24 via 192.168.240.4" in routes
        assert "10.244.2.0/24" not in routes
        assert "unreachable 10.244.0.0/16" in routes
    finally:
        net.close()


async def test_teardown_removes_everything(bed: Testbed, tmp_path: Path) -> None:
    host = bed.hosts[0]
    before = await snapshot(host.name)
    net = NodeNetwork(config(host, 0, tmp_path))
    await net.setup()
    await net.set_peers({"b": ("10.244.1.0/24", "192.168.240.2")})
    await ServiceProxy(net.config).sync([], [], [host.ip])
    path = await add_netns(f"{PREFIX}-pod-a")
    await net.attach("uid-a", path)
    await net.teardown()
    assert await snapshot(host.name) == before
    assert await nft_table(host.name) == ""
    assert not (tmp_path / host.name / "ipam").exists()
    pod_links = await run("ip", "netns", "exec", f"{PREFIX}-pod-a", "ip", "-o", "link", "show")
    assert "eth0" not in pod_links
