"""Kubernetes Services and Endpoints (JSON dicts) reduced to what the data plane programs."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from corral.objects import Obj, name_of, namespace_of, spec

log = logging.getLogger(__name__)

DEFAULT_AFFINITY_SECONDS = 10800  # Kubernetes' sessionAffinityConfig default: 3 hours
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp"}
# Names end up in nft identifiers and DNS labels: only what Kubernetes allows.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


@dataclass(frozen=True, order=True)
class Backend:
    ip: str
    port: int


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service with a ClusterIP, and its ready backends."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "tcp" or "udp"
    cluster_ip: str
    port: int
    node_port: int | None
    affinity_seconds: int | None  # None: no session affinity
    backends: tuple[Backend, ...]

    @property
    def key(self) -> str:
        """Unique per service port, readable in `nft list`: ns/name/proto/port-name."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name or self.port}"


def namespace_and_name(obj: Obj) -> tuple[str, str]:
    """(namespace, name), with "default" for an object that names no namespace."""
    return namespace_of(obj) or "default", name_of(obj)


def has_cluster_ip(service: Obj) -> bool:
    ip = spec(service).get("clusterIP") or ""
    return ip not in ("", "None")


def is_headless(service: Obj) -> bool:
    return spec(service).get("clusterIP") == "None"


def valid_ipv4(text: Any) -> bool:
    """A dotted-quad IPv4 address (inet_pton: strict, and far cheaper than ipaddress)."""
    try:
        socket.inet_pton(socket.AF_INET, text)
    except (OSError, TypeError):
        return False
    return True


def valid_name(text: str) -> bool:
    return bool(_NAME.match(text))


def index_endpoints(endpoints: Iterable[Obj]) -> dict[tuple[str, str], Obj]:
    return {namespace_and_name(obj): obj for obj in endpoints}


def ready_addresses(endpoints: Obj | None) -> list[Obj]:
    """Every ready address of an Endpoints object (notReadyAddresses excluded)."""
    found: list[Obj] = []
    for subset in (endpoints or {}).get("subsets") or []:
        for address in subset.get("addresses") or []:
            if valid_ipv4(address.get("ip")):
                found.append(address)
    return found


def _backends(endpoints: Obj | None, port_name: str, protocol: str) -> tuple[Backend, ...]:
    """Ready backends for the service port named ``port_name``, matched as kube-proxy does."""
    found: set[Backend] = set()
    for subset in (endpoints or {}).get("subsets") or []:
        for port in subset.get("ports") or []:
            if (port.get("name") or "") != port_name:
                continue
            if str(port.get("protocol") or "TCP").upper() != protocol.upper():
                continue
            number = port.get("port")
            if not isinstance(number, int) or not 0 < number < 65536:
                continue
            for address in subset.get("addresses") or []:
                if valid_ipv4(address.get("ip")):
                    found.add(Backend(address["ip"], number))
    return tuple(sorted(found, key=lambda b: (socket.inet_aton(b.ip), b.port)))


def service_ports(services: Iterable[Obj], endpoints: Iterable[Obj]) -> list[ServicePort]:
    """The ports the proxy programs: services with a ClusterIP, TCP and UDP."""
    by_name = index_endpoints(endpoints)
    result: list[ServicePort] = []
    for service in services:
        namespace, name = namespace_and_name(service)
        spec = service.get("spec") or {}
        if not has_cluster_ip(service) or spec.get("type") == "ExternalName":
            continue
        cluster_ip = str(spec.get("clusterIP"))
        if not valid_ipv4(cluster_ip) or not valid_name(namespace) or not valid_name(name):
            log.warning("skipping service %s/%s: unusable name or clusterIP", namespace, name)
            continue
        affinity: int | None = None
        if spec.get("sessionAffinity") == "ClientIP":
            config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
            affinity = int(config.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
        node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
        for port in spec.get("ports") or []:
            protocol = _PROTOCOLS.get(str(port.get("protocol") or "TCP").upper())
            number = port.get("port")
            port_name = str(port.get("name") or "")
            if protocol is None or not isinstance(number, int) or not 0 < number < 65536:
                continue
            if port_name and not valid_name(port_name):
                continue
            node_port = port.get("nodePort") if node_ports else None
            if not isinstance(node_port, int) or not 0 < node_port < 65536:
                node_port = None
            result.append(
                ServicePort(
                    namespace=namespace,
                    name=name,
                    port_name=port_name,
                    protocol=protocol,
                    cluster_ip=cluster_ip,
                    port=number,
                    node_port=node_port,
                    affinity_seconds=affinity,
                    backends=_backends(by_name.get((namespace, name)), port_name, protocol),
                )
            )
    return result
