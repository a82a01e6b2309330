"""Service environment variables, computed exactly as the kubelet does
(pkg/kubelet/envvars and Kubelet.getServiceEnvVarMap)."""

from __future__ import annotations

from collections.abc import Iterable

from corral.objects import Obj, spec
from nodeagent.network.services import has_cluster_ip, namespace_and_name

# Services whose variables every pod gets, from the "default" namespace.
MASTER_SERVICES = frozenset({"kubernetes"})


def _variable_name(name: str) -> str:
    return name.replace("-", "_").upper()


def service_env(services: Iterable[Obj]) -> dict[str, str]:
    """``{NAME}_SERVICE_HOST`` and friends for these services (envvars.FromServices)."""
    result: dict[str, str] = {}
    for service in services:
        if not has_cluster_ip(service):
            continue
        spec = service.get("spec") or {}
        ports = spec.get("ports") or []
        if not ports:
            continue
        prefix = _variable_name(namespace_and_name(service)[1])
        cluster_ip = str(spec["clusterIP"])
        result[f"{prefix}_SERVICE_HOST"] = cluster_ip
        result[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for port in ports:
            if port.get("name"):
                result[f"{prefix}_SERVICE_PORT_{_variable_name(port['name'])}"] = str(port["port"])
        for index, port in enumerate(ports):
            protocol = str(port.get("protocol") or "TCP")
            number = str(port.get("port"))
            host_port = (
                f"[{cluster_ip}]:{number}" if ":" in cluster_ip else f"{cluster_ip}:{number}"
            )
            url = f"{protocol.lower()}://{host_port}"
            if index == 0:
                result[f"{prefix}_PORT"] = url  # Docker special-cases the first port
            port_prefix = f"{prefix}_PORT_{number}_{protocol.upper()}"
            result[port_prefix] = url
            result[f"{port_prefix}_PROTO"] = protocol.lower()
            result[f"{port_prefix}_PORT"] = number
            result[f"{port_prefix}_ADDR"] = cluster_ip
    return result


def pod_service_env(pod: Obj, services: Iterable[Obj]) -> dict[str, str]:
    """The variables a pod gets: its namespace's services when ``enableServiceLinks``
    (the default), and always the master services of "default"."""
    namespace = namespace_and_name(pod)[0]
    links = spec(pod).get("enableServiceLinks", True) is not False
    chosen: dict[str, Obj] = {}
    for service in services:
        if not has_cluster_ip(service):
            continue
        service_namespace, name = namespace_and_name(service)
        if service_namespace == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, service)
        elif service_namespace == namespace and links:
            chosen[name] = service
    return service_env(chosen.values())
