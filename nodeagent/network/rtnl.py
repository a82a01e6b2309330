"""pyroute2 handles on a namespace, and the few idempotent link, address and route steps."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nodeagent.network.netlink import AsyncIPRoute, NetlinkError
from nodeagent.network.nsthread import acall_in_netns, netlink_socket_in

# Routes corral installs carry this protocol number, so a restarted agent can
# tell its own routes (peers, unreachables) from anyone else's. Unassigned in
# iproute2's rt_protos.
RTPROT_CORRAL = 150

Handle = Any  # pyroute2 is untyped; AsyncIPRoute


async def open_rtnl(netns_path: str) -> Handle:
    """An AsyncIPRoute bound to ``netns_path`` ('' = this namespace); the caller closes it."""
    if not netns_path:
        ipr = AsyncIPRoute()
    else:
        sock = await acall_in_netns(netns_path, lambda: netlink_socket_in(""))
        ipr = AsyncIPRoute(fileno=sock.detach())
    await ipr.setup_endpoint()
    return ipr


@asynccontextmanager
async def rtnl(netns_path: str) -> AsyncIterator[Handle]:
    ipr = await open_rtnl(netns_path)
    try:
        yield ipr
    finally:
        ipr.close()


def is_code(error: BaseException, *codes: int) -> bool:
    return isinstance(error, NetlinkError) and error.code in codes


async def link_index(ipr: Handle, name: str) -> int | None:
    try:
        found = await ipr.link("get", ifname=name)
    except NetlinkError as error:
        if error.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise
    for link in found:
        return int(link["index"])
    return None


async def link_get(ipr: Handle, index: int) -> Any | None:
    try:
        found = await ipr.link("get", index=index)
    except NetlinkError as error:
        if error.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise
    for link in found:
        return link
    return None


async def delete_link(ipr: Handle, name: str) -> bool:
    """Remove a link by name; False when there was none."""
    index = await link_index(ipr, name)
    if index is None:
        return False
    try:
        await ipr.link("del", index=index)
    except NetlinkError as error:
        if error.code not in (errno.ENODEV, errno.ENOENT):
            raise
        return False
    return True


async def ensure_address(ipr: Handle, index: int, address: str, prefixlen: int) -> None:
    try:
        await ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    except NetlinkError as error:
        if error.code != errno.EEXIST:
            raise


async def addresses(ipr: Handle, index: int) -> list[tuple[str, int]]:
    found = await ipr.addr("dump", index=index, family=2)
    return [(a.get("IFA_ADDRESS"), int(a["prefixlen"])) async for a in found]


async def corral_routes(ipr: Handle) -> list[Any]:
    """Routes of the main table that corral installed, found by their protocol."""
    dumped = await ipr.route("dump", family=2, table=254)
    return [r async for r in dumped if r.get("proto") == RTPROT_CORRAL]


def route_dst(route: Any) -> str:
    return f"{route.get('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"


async def delete_route(ipr: Handle, route: Any) -> None:
    spec: dict[str, Any] = {
        "dst": route_dst(route),
        "table": 254,
        "type": route["type"],
        "proto": RTPROT_CORRAL,
    }
    try:
        await ipr.route("del", **spec)
    except NetlinkError as error:
        if error.code not in (errno.ESRCH, errno.ENOENT):
            raise
