"""The node's pod network and Service data plane.

- ``NodeNetwork``: bridge, per-pod veth and IPAM, host-gw peer routes,
  unreachable routes over the cluster and service ranges.
- ``ServiceProxy``: Services and Endpoints as nftables DNAT rules.
- ``ClusterDNS``: the cluster domain's DNS, served on the node;
  ``pod_resolv_conf`` and ``resolv_conf``: a pod's /etc/resolv.conf.
- ``service_env`` and ``pod_service_env``: the kubelet's Service variables.
"""

from nodeagent.network.config import NetworkConfig
from nodeagent.network.dns import ClusterDNS
from nodeagent.network.env import pod_service_env, service_env
from nodeagent.network.ipam import IpamExhausted
from nodeagent.network.node import NetworkNotReady, NodeNetwork
from nodeagent.network.proxy import ServiceProxy, SyncResult
from nodeagent.network.resolvconf import pod_resolv_conf, resolv_conf

__all__ = [
    "ClusterDNS",
    "IpamExhausted",
    "NetworkConfig",
    "NetworkNotReady",
    "NodeNetwork",
    "ServiceProxy",
    "SyncResult",
    "pod_resolv_conf",
    "pod_service_env",
    "resolv_conf",
    "service_env",
]
