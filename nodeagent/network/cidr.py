"""Address arithmetic for pod and service ranges (IPv4 only, as corral's network is)."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator

# Linux interface names are at most 15 bytes: "crl" and 12 hex digits of the
# pod uid's hash, which makes a clash between two pods of one node negligible.
HOST_IFNAME_PREFIX = "crl"
_HASH_DIGITS = 12


def parse_network(text: str, what: str = "CIDR") -> ipaddress.IPv4Network:
    """A strict IPv4 network: host bits set is an error, not silently masked."""
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as error:
        raise ValueError(f"{what} {text!r} is not an IPv4 network: {error}") from None


def gateway_of(cidr: str) -> str:
    """The first usable address, which the node's bridge holds."""
    return str(parse_network(cidr)[1])


def pod_addresses(cidr: str) -> Iterator[str]:
    """Addresses a pod may get: all hosts but the gateway (network and broadcast excluded)."""
    network = parse_network(cidr)
    gateway = network[1]
    for address in network.hosts():
        if address != gateway:
            yield str(address)


def contains(cidr: str, address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address) in parse_network(cidr)
    except ValueError:
        return False


def host_ifname(pod_uid: str) -> str:
    """The node-side veth name of a pod: stable, so a restarted agent finds it again."""
    digest = hashlib.sha256(pod_uid.encode()).hexdigest()[:_HASH_DIGITS]
    return f"{HOST_IFNAME_PREFIX}{digest}"


def is_pod_ifname(name: str) -> bool:
    suffix = name.removeprefix(HOST_IFNAME_PREFIX)
    return (
        name.startswith(HOST_IFNAME_PREFIX)
        and len(suffix) == _HASH_DIGITS
        and all(c in "0123456789abcdef" for c in suffix)
    )
