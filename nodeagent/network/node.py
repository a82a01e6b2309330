"""The node's pod network: a bridge holding the pod CIDR's gateway, one veth per pod,
host-gw routes to the other nodes, and unreachable routes over the cluster and service
ranges so that a pod or service address never follows a default route off the node.

Every step adopts what already exists, so a restarted agent calls ``setup()``
again and carries on with the pods it wired before, whose addresses IPAM
kept on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import shutil
from collections.abc import Mapping
from typing import Any

from nodeagent.network.cidr import host_ifname, is_pod_ifname, parse_network
from nodeagent.network.config import NetworkConfig
from nodeagent.network.ipam import Ipam
from nodeagent.network.netlink import NetlinkError
from nodeagent.network.nft import delete_table
from nodeagent.network.nsthread import acall_in_netns, read_sysctl, write_sysctl
from nodeagent.network.podlink import PodLink, plug, unplug
from nodeagent.network.rtnl import (
    RTPROT_CORRAL,
    Handle,
    corral_routes,
    delete_route,
    ensure_address,
    is_code,
    link_index,
    open_rtnl,
    route_dst,
)

log = logging.getLogger(__name__)

_RTN_UNREACHABLE = 7


class NetworkNotReady(Exception):
    """attach() before setup(), or after teardown()."""


class NodeNetwork:
    def __init__(self, config: NetworkConfig) -> None:
        self.config = config
        self.ipam = Ipam(config.state_dir / "ipam", config.pod_cidr)
        self._host: Handle | None = None
        self._bridge_index: int | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    # --- the node --------------------------------------------------------------------

    async def setup(self) -> None:
        """Bridge, gateway address, forwarding, unreachable routes. Idempotent."""
        config = self.config
        host = await self._handle()
        index = await link_index(host, config.bridge)
        if index is None:
            with contextlib.suppress(NetlinkError):  # EEXIST: a racing setup() made it
                await host.link("add", ifname=config.bridge, kind="bridge", mtu=config.mtu)
            index = await link_index(host, config.bridge)
            if index is None:
                raise RuntimeError(f"bridge {config.bridge} could not be created")
        await host.link("set", index=index, mtu=config.mtu, state="up")
        await ensure_address(host, index, config.gateway, config.prefixlen)
        self._bridge_index = index
        # Written only when off: in a container /proc/sys may be read-only,
        # with forwarding already switched on by the runtime (compose's sysctls).
        if (
            await acall_in_netns(config.netns_path, lambda: read_sysctl("", "net.ipv4.ip_forward"))
            != "1"
        ):
            await acall_in_netns(
                config.netns_path, lambda: write_sysctl("", "net.ipv4.ip_forward", "1")
            )
        # Less specific than the bridge's own /24 and every peer's route, so
        # those win; anything else in these ranges is answered "unreachable"
        # here instead of leaking to the default gateway.
        for cidr in (config.cluster_cidr, config.service_cidr):
            await host.route(
                "replace", dst=cidr, type="unreachable", proto=RTPROT_CORRAL, table=254
            )
        log.info(
            "pod network ready: %s on %s (%s), node %s",
            config.pod_cidr,
            config.bridge,
            config.gateway,
            config.node_ip,
        )

    async def set_peers(self, peers: Mapping[str, tuple[str, str]]) -> None:
        """Host-gw routes: every other node's pod CIDR via its address; stale ones go."""
        config = self.config
        cluster = parse_network(config.cluster_cidr)
        wanted: dict[str, str] = {}
        for name, (pod_cidr, node_ip) in sorted(peers.items()):
            if not pod_cidr or not node_ip:
                continue  # a node without a CIDR or address yet
            network = parse_network(pod_cidr, f"pod CIDR of node {name}")
            if network == parse_network(config.pod_cidr) or node_ip == config.node_ip:
                continue
            if not network.subnet_of(cluster):
                log.warning("ignoring node %s: %s is outside %s", name, network, cluster)
                continue
            ipaddress.IPv4Address(node_ip)
            wanted[str(network)] = node_ip
        host = await self._handle()
        keep = {config.cluster_cidr, config.service_cidr}
        for route in await self._own_routes(host):
            dst = route_dst(route)
            if route["type"] == _RTN_UNREACHABLE and dst in keep:
                continue
            if dst in wanted and route.get("RTA_GATEWAY") == wanted[dst]:
                del wanted[dst]
                continue
            await delete_route(host, route)
        for dst, gateway in wanted.items():
            await host.route("replace", dst=dst, gateway=gateway, proto=RTPROT_CORRAL, table=254)

    async def teardown(self) -> None:
        """Remove everything this module made on the node: veths, bridge, routes, table, IPAM."""
        config = self.config
        host = await self._handle()
        index = await link_index(host, config.bridge)
        dumped = await host.link("dump")
        # Only the veths on this node's bridge: another cluster's may share the namespace.
        pods = [
            link
            async for link in dumped
            if is_pod_ifname(link.get("ifname") or "") and link.get("master") == index
        ]
        for link in pods:
            await _delete_link(host, link["index"], link.get("ifname") or "")
        if index is not None:
            await _delete_link(host, index, config.bridge)
        for route in await self._own_routes(host):
            await delete_route(host, route)
        await delete_table(config.host_netns, config.nft_table)
        shutil.rmtree(self.ipam.directory, ignore_errors=True)
        self.close()

    async def _own_routes(self, host: Handle) -> list[Any]:
        """corral's routes within this cluster's ranges; another local cluster's stay."""
        ranges = [parse_network(self.config.cluster_cidr), parse_network(self.config.service_cidr)]
        return [
            route
            for route in await corral_routes(host)
            if any(parse_network(route_dst(route)).subnet_of(net) for net in ranges)
        ]

    def close(self) -> None:
        """Drop the netlink handle; the network itself stays as it is."""
        if self._host is not None:
            self._host.close()
            self._host = None
        self._bridge_index = None

    # --- pods ------------------------------------------------------------------------

    async def attach(self, pod_uid: str, netns_path: str) -> str:
        """Wire the pod's namespace to the bridge; its address. Idempotent per uid."""
        config = self.config
        async with self._lock(pod_uid):
            host = await self._handle()
            if self._bridge_index is None:
                raise NetworkNotReady("setup() has not run")
            existing = self.ipam.lookup(pod_uid)
            address = self.ipam.allocate(pod_uid)
            spec = PodLink(
                host_ifname=host_ifname(pod_uid),
                bridge_index=self._bridge_index,
                address=address,
                prefixlen=config.prefixlen,
                gateway=config.gateway,
                mtu=config.mtu,
            )
            try:
                await plug(host, netns_path, spec)
            except BaseException:
                try:
                    await unplug(host, spec.host_ifname)
                except Exception as error:
                    # The plug's own error is what the caller needs and is
                    # raised below; a half-made link left behind is logged.
                    log.warning(
                        "pod %s: link %s not removed after a failed attach: %s",
                        pod_uid,
                        spec.host_ifname,
                        error,
                    )
                if existing is None:
                    self.ipam.release(pod_uid)
                raise
            return address

    async def detach(self, pod_uid: str) -> None:
        """Remove the pod's veth and free its address. Idempotent."""
        async with self._lock(pod_uid):
            host = await self._handle()
            await unplug(host, host_ifname(pod_uid))
            self.ipam.release(pod_uid)
        self._locks.pop(pod_uid, None)

    def address_of(self, pod_uid: str) -> str | None:
        return self.ipam.lookup(pod_uid)

    # --- helpers ---------------------------------------------------------------------

    def _lock(self, pod_uid: str) -> asyncio.Lock:
        return self._locks.setdefault(pod_uid, asyncio.Lock())

    async def _handle(self) -> Handle:
        if self._host is None:
            self._host = await open_rtnl(self.config.netns_path)
        if self._bridge_index is None and self._host is not None:
            self._bridge_index = await link_index(self._host, self.config.bridge)
        return self._host


async def _delete_link(host: Handle, index: int, name: str) -> None:
    """Delete a link on teardown, which goes on past one that will not go."""
    try:
        await host.link("del", index=index)
    except NetlinkError as error:
        if is_code(error, errno.ENODEV):
            return  # gone already: deleting a pod's veth takes its peer with it
        log.warning("link %s not deleted on teardown: %s", name or index, error)
