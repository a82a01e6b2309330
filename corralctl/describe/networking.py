"""Services and their Endpoints."""

from __future__ import annotations

from corral.objects import Obj, status
from corralctl.describe.events import write_events
from corralctl.describe.formatting import NONE, UNSET, format_labels, or_none, write_meta_header
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter


def format_endpoints(endpoints: Obj | None, port_name: str | None) -> str:
    """``formatEndpoints``: up to three ready ``ip:port`` for the named port, then a count."""
    subsets = (endpoints or {}).get("subsets") or []
    if not subsets:
        return NONE
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            targets = addresses
        else:
            targets = [
                f"[{ip}]:{p.get('port', 0)}" if ":" in ip else f"{ip}:{p.get('port', 0)}"
                for p in ports
                if port_name is None or (p.get("name") or "") == port_name
                for ip in addresses
            ]
        for target in targets:
            if len(shown) < 3:
                shown.append(target)
            count += 1
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


def _load_balancer_ingress(ingress: list[Obj]) -> str:
    parts = []
    for entry in ingress:
        if entry.get("ip"):
            mode = f" ({entry['ipMode']})" if entry.get("ipMode") else ""
            parts.append(entry["ip"] + mode)
        else:
            parts.append(entry.get("hostname", ""))
    return ", ".join(parts)


async def describe_service(src: DescribeSource, service: Obj) -> str:
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    endpoints = await src.get_or_none(
        src.rt("v1", "Endpoints"), meta.get("name", ""), meta.get("namespace")
    )
    events = await src.events(service)
    w = PrefixWriter()
    write_meta_header(w, service)
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec.get('type', '')}\n")
    if spec.get("ipFamilyPolicy") is not None:
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{or_none(','.join(spec.get('ipFamilies') or []))}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{or_none(','.join(spec.get('clusterIPs') or []))}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = (status(service).get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        w.write(0, f"LoadBalancer Ingress:\t{_load_balancer_ingress(ingress)}\n")
    for port in spec.get("ports") or []:
        name = port.get("name") or UNSET
        protocol = port.get("protocol") or "TCP"
        target = port.get("targetPort", port.get("port", 0))
        w.write(0, f"Port:\t{name}\t{port.get('port', 0)}/{protocol}\n")
        w.write(0, f"TargetPort:\t{target}/{protocol}\n")
        if port.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{port['nodePort']}/{protocol}\n")
        w.write(0, f"Endpoints:\t{format_endpoints(endpoints, port.get('name') or '')}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', '')}\n")
    for title, value in (
        ("External Traffic Policy", spec.get("externalTrafficPolicy")),
        ("Internal Traffic Policy", spec.get("internalTrafficPolicy")),
        ("HealthCheck NodePort", spec.get("healthCheckNodePort")),
    ):
        if value:
            w.write(0, f"{title}:\t{value}\n")
    if spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    if spec.get("trafficDistribution"):
        w.write(0, f"Traffic Distribution:\t{spec['trafficDistribution']}\n")
    write_events(w, src, events)
    return w.render()


def _ips(addresses: list[Obj] | None) -> str:
    return or_none(",".join(a.get("ip", "") for a in addresses or []))


async def describe_endpoints(src: DescribeSource, endpoints: Obj) -> str:
    events = await src.events(endpoints)
    w = PrefixWriter()
    write_meta_header(w, endpoints)
    w.write(0, "Subsets:\n")
    for subset in endpoints.get("subsets") or []:
        w.write(1, f"Addresses:\t{_ips(subset.get('addresses'))}\n")
        w.write(1, f"NotReadyAddresses:\t{_ips(subset.get('notReadyAddresses'))}\n")
        ports = subset.get("ports") or []
        if ports:
            w.write(1, "Ports:\n")
            w.write(2, "Name\tPort\tProtocol\n")
            w.write(2, "----\t----\t--------\n")
            for port in ports:
                w.write(
                    2,
                    f"{port.get('name') or UNSET}\t{port.get('port', 0)}\t"
                    f"{port.get('protocol') or 'TCP'}\n",
                )
        w.write(0, "\n")
    write_events(w, src, events)
    return w.render()
