"""What one node's pod network is made of: its namespace, bridge, ranges and state."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from nodeagent.network.cidr import gateway_of, parse_network
from nodeagent.network.nft import TABLE

_NFT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


@dataclass(frozen=True)
class NetworkConfig:
    # None: the process's own namespace (production); a name: a simulated
    # host's namespace under /run/netns, as the tests create.
    host_netns: str | None
    pod_cidr: str  # this node's share of cluster_cidr (Node.spec.podCIDR)
    state_dir: Path  # IPAM allocations, kept across agent restarts
    node_ip: str
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    bridge: str = "crl0"
    mtu: int = 1500
    cluster_domain: str = "cluster.local"
    # Its own, when another cluster's pod network shares the namespace.
    nft_table: str = TABLE

    def __post_init__(self) -> None:
        pod = parse_network(self.pod_cidr, "pod_cidr")
        cluster = parse_network(self.cluster_cidr, "cluster_cidr")
        service = parse_network(self.service_cidr, "service_cidr")
        if not pod.subnet_of(cluster):
            raise ValueError(f"pod_cidr {pod} is not inside cluster_cidr {cluster}")
        if cluster.overlaps(service):
            raise ValueError(f"cluster_cidr {cluster} overlaps service_cidr {service}")
        if pod.num_addresses < 4:
            raise ValueError(f"pod_cidr {pod} is too small for a gateway and a pod")
        ipaddress.IPv4Address(self.node_ip)
        if not 1 <= len(self.bridge) <= 15:
            raise ValueError(f"bridge name {self.bridge!r} must be 1-15 characters")
        if not _NFT_NAME.fullmatch(self.nft_table):
            raise ValueError(f"nftables table name {self.nft_table!r} is not an identifier")
        if not 576 <= self.mtu <= 65535:
            raise ValueError(f"mtu {self.mtu} is out of range")

    @property
    def netns_path(self) -> str:
        """The host namespace as a path for setns(2); '' for the process's own."""
        return f"/run/netns/{self.host_netns}" if self.host_netns else ""

    @property
    def gateway(self) -> str:
        return gateway_of(self.pod_cidr)

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.pod_cidr).prefixlen
