"""The cluster's address plan: pod CIDRs, Service IPs and node ports, with their allocators."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.apiserver.allocators import RangeAllocator, addresses, ports, subnets
from controlplane.apiserver.config import ServerConfig
from controlplane.storage.store import Store
from controlplane.storage.watchcache import WatchCache


@dataclass
class AddressPlan:
    cluster_cidr: str
    service_cidr: str
    pod_cidrs: RangeAllocator
    service_ips: RangeAllocator
    node_ports: RangeAllocator

    @classmethod
    def build(cls, config: ServerConfig, store: Store, cache: WatchCache) -> AddressPlan:
        def node_exists(owner: str) -> bool:
            return cache.get("nodes", store.key("nodes", None, owner).decode()) is not None

        def service_exists(owner: str) -> bool:
            namespace, _, rest = owner.partition("/")
            name = rest.split("/", 1)[0]
            key = store.key("services", namespace, name).decode()
            return cache.get("services", key) is not None

        low, high = config.node_port_range
        return cls(
            cluster_cidr=config.cluster_cidr,
            service_cidr=config.service_cidr,
            pod_cidrs=RangeAllocator(
                store,
                "podcidrs",
                subnets(config.cluster_cidr, config.node_cidr_prefix),
                node_exists,
                config.clock,
            ),
            service_ips=RangeAllocator(
                store, "serviceips", addresses(config.service_cidr), service_exists, config.clock
            ),
            node_ports=RangeAllocator(
                store, "nodeports", ports(low, high), service_exists, config.clock
            ),
        )
