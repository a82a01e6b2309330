"""One pod's veth pair: the node end on the bridge, ``eth0`` inside the pod's namespace."""

from __future__ import annotations

import errno
from dataclasses import dataclass

from nodeagent.network.netlink import NetlinkError
from nodeagent.network.rtnl import Handle, ensure_address, link_get, link_index, rtnl

POD_IFNAME = "eth0"
_HAIRPIN = 1  # IFLA_BRPORT_MODE: a frame may leave the port it came in on
_LOOPBACK = 1  # lo is the first device of every network namespace


@dataclass(frozen=True)
class PodLink:
    host_ifname: str
    bridge_index: int
    address: str
    prefixlen: int
    gateway: str
    mtu: int


async def _pod_side_matches(pod: Handle, host_index: int) -> bool:
    """Whether the pod's eth0 is the peer of the node's veth at ``host_index``."""
    index = await link_index(pod, POD_IFNAME)
    if index is None:
        return False
    link = await link_get(pod, index)
    return link is not None and link.get("IFLA_LINK") == host_index


async def plug(host: Handle, netns_path: str, spec: PodLink) -> None:
    """Create (or complete) the pod's veth pair and configure both ends. Idempotent."""
    async with rtnl(netns_path) as pod:
        host_index = await link_index(host, spec.host_ifname)
        if host_index is not None and not await _pod_side_matches(pod, host_index):
            # A veth left from an earlier sandbox of the same pod: its peer
            # is elsewhere (or gone), so it is of no use to this namespace.
            await _delete_index(host, host_index)
            host_index = None
        if host_index is None:
            if await link_index(pod, POD_IFNAME) is not None:
                raise RuntimeError(f"{netns_path} already has an {POD_IFNAME} of another origin")
            # One request: the peer is created straight inside the pod's
            # namespace (no eth0 ever appears on the node to clash with a
            # host NIC), and the node end joins the bridge already up.
            await host.link(
                "add",
                ifname=spec.host_ifname,
                kind="veth",
                mtu=spec.mtu,
                master=spec.bridge_index,
                state="up",
                peer={"ifname": POD_IFNAME, "net_ns_fd": netns_path, "mtu": spec.mtu},
            )
            host_index = await link_index(host, spec.host_ifname)
            if host_index is None:
                raise RuntimeError(f"veth {spec.host_ifname} vanished after creation")
        else:
            await host.link(
                "set", index=host_index, master=spec.bridge_index, mtu=spec.mtu, state="up"
            )
        await host.brport("set", index=host_index, mode=_HAIRPIN)

        await pod.link("set", index=_LOOPBACK, state="up")
        eth0 = await link_index(pod, POD_IFNAME)
        if eth0 is None:
            raise RuntimeError(f"{POD_IFNAME} is missing in {netns_path}")
        await pod.link("set", index=eth0, mtu=spec.mtu, state="up")
        await ensure_address(pod, eth0, spec.address, spec.prefixlen)
        await pod.route("replace", dst="0.0.0.0/0", gateway=spec.gateway, oif=eth0)


async def unplug(host: Handle, host_ifname: str) -> bool:
    """Delete the pair by its node end (the pod end goes with it); False if none was there."""
    index = await link_index(host, host_ifname)
    if index is None:
        return False
    await _delete_index(host, index)
    return True


async def _delete_index(host: Handle, index: int) -> None:
    try:
        await host.link("del", index=index)
    except NetlinkError as error:
        if error.code not in (errno.ENODEV, errno.ENOENT):
            raise
