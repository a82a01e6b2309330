"""Services and Endpoints: ``ValidateService``, ``ValidateServiceUpdate``, ``ValidateEndpoints``."""

from __future__ import annotations

import ipaddress

from corral.api.core import EndpointAddress, Endpoints, Service, ServicePort, ServiceSpec
from corral.api.errors import Cause
from corral.api.validate.common import (
    dns_label,
    dns_subdomain,
    ip_address,
    qualified_name,
    validate_labels,
)
from corral.api.validate.containers import port_num_or_name
from corral.api.validate.field import (
    IMMUTABLE,
    child,
    duplicate,
    forbidden,
    index,
    invalid,
    invalid_each,
    required,
)
from corral.api.validation import is_valid_port_number

MAX_CLIENT_IP_AFFINITY_SECONDS = 86400
_IPV4_LOOPBACK_FIRST_OCTET = 127


def _cluster_ips(spec: ServiceSpec) -> tuple[list[str], str]:
    """The service's cluster IPs and the field they were given in.

    Kubernetes copies ``clusterIP`` into ``clusterIPs`` before validating;
    corral does not, so an IP given only as ``clusterIP`` is checked there.
    """
    if spec.cluster_ips:
        return spec.cluster_ips, "spec.clusterIPs"
    if spec.cluster_ip:
        return [spec.cluster_ip], "spec.clusterIP"
    return [], "spec.clusterIPs"


def is_headless(spec: ServiceSpec) -> bool:
    ips, _ = _cluster_ips(spec)
    return ips == ["None"]


def validate_service(svc: Service) -> list[Cause]:
    spec = svc.spec
    causes: list[Cause] = []
    headless = is_headless(spec)
    if not spec.ports and not headless and spec.type != "ExternalName":
        causes.append(required("spec.ports"))
    _, ips_path = _cluster_ips(spec)
    if spec.type in ("LoadBalancer", "NodePort") and headless:
        first = ips_path if ips_path == "spec.clusterIP" else f"{ips_path}[0]"
        causes.append(invalid(first, "None", f"may not be set to 'None' for {spec.type} services"))
    elif spec.type == "ExternalName":
        causes.extend(_external_name(spec))

    names: set[str] = set()
    many = len(spec.ports or ()) > 1
    for i, port in enumerate(spec.ports or ()):
        causes.extend(_service_port(port, many, names, index("spec.ports", i)))
    if spec.selector is not None:
        causes.extend(validate_labels(spec.selector, "spec.selector"))

    affinity_config = spec.session_affinity_config
    if spec.session_affinity == "ClientIP":
        client_ip = affinity_config.client_ip if affinity_config else None
        # A missing config or timeout is defaulted (10800s), so only a set one is checked.
        timeout = client_ip.timeout_seconds if client_ip else None
        if timeout is not None and not 0 < timeout <= MAX_CLIENT_IP_AFFINITY_SECONDS:
            causes.append(
                invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    timeout,
                    f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}",
                )
            )
    elif affinity_config is not None:
        causes.append(
            forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")
        )

    if spec.type != "ExternalName":
        causes.extend(_cluster_ip_fields(spec))
    for i, ip in enumerate(spec.external_ips or ()):
        ip_path = index("spec.externalIPs", i)
        errs = ip_address(ip, ip_path)
        causes.extend(errs if errs else non_special_ip(ip, ip_path))

    if spec.type in ("ClusterIP", "ExternalName"):
        for i, port in enumerate(spec.ports or ()):
            if port.node_port:
                causes.append(
                    forbidden(
                        child(index("spec.ports", i), "nodePort"),
                        f"may not be used when `type` is '{spec.type}'",
                    )
                )
    causes.extend(_duplicate_ports(spec))

    accessible = spec.type in ("NodePort", "LoadBalancer") or (
        spec.type == "ClusterIP" and bool(spec.external_ips)
    )
    if spec.external_traffic_policy is not None and not accessible:
        causes.append(
            invalid(
                "spec.externalTrafficPolicy",
                spec.external_traffic_policy,
                "may only be set for externally-accessible services",
            )
        )
    return causes


def _external_name(spec: ServiceSpec) -> list[Cause]:
    causes: list[Cause] = []
    if spec.cluster_ips or spec.cluster_ip:
        causes.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
    if spec.ip_families:
        causes.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
    if spec.ip_family_policy is not None:
        causes.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
    # A trailing dot marks the CNAME as fully qualified.
    cname = spec.external_name or ""
    cname = cname[:-1] if cname.endswith(".") else cname
    if cname:
        causes.extend(dns_subdomain(cname, "spec.externalName"))
    else:
        causes.append(required("spec.externalName"))
    return causes


def _service_port(port: ServicePort, many: bool, names: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    name_path = f"{path}.name"
    if many and not port.name:
        causes.append(required(name_path))
    elif port.name:
        causes.extend(dns_label(port.name, name_path))
        if port.name in names:
            causes.append(duplicate(name_path, port.name))
        else:
            names.add(port.name)
    causes.extend(invalid_each(f"{path}.port", port.port, is_valid_port_number(port.port)))
    # An unset targetPort is defaulted to the port.
    if port.target_port is not None:
        causes.extend(port_num_or_name(port.target_port, f"{path}.targetPort"))
    if port.node_port:
        causes.extend(
            invalid_each(f"{path}.nodePort", port.node_port, is_valid_port_number(port.node_port))
        )
    if port.app_protocol is not None:
        causes.extend(qualified_name(port.app_protocol, f"{path}.appProtocol"))
    return causes


def _duplicate_ports(spec: ServiceSpec) -> list[Cause]:
    causes: list[Cause] = []
    node_ports: set[tuple[str, int]] = set()
    ports: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports or ()):
        port_path = index("spec.ports", i)
        if port.node_port:
            ident = (port.protocol, port.node_port)
            if ident in node_ports:
                causes.append(duplicate(f"{port_path}.nodePort", port.node_port))
            node_ports.add(ident)
        ident = (port.protocol, port.port)
        if ident in ports:
            causes.append(duplicate(port_path, {"port": port.port, "protocol": port.protocol}))
        ports.add(ident)
    return causes


def _ip_family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _cluster_ip_fields(spec: ServiceSpec) -> list[Cause]:
    """``ValidateServiceClusterIPsRelatedFields``."""
    causes: list[Cause] = []
    if spec.cluster_ip and spec.cluster_ips and spec.cluster_ips[0] != spec.cluster_ip:
        causes.append(
            invalid("spec.clusterIPs", spec.cluster_ips, "first value must match `clusterIP`")
        )
    elif not spec.cluster_ip and spec.cluster_ips:
        causes.append(
            invalid(
                "spec.clusterIPs",
                spec.cluster_ips,
                "must be empty when `clusterIP` is not specified",
            )
        )
    families = spec.ip_families or []
    for i, family in enumerate(families):
        if family in families[:i]:
            causes.append(duplicate(index("spec.ipFamilies", i), family))
    ips, ips_path = _cluster_ips(spec)
    bad = False
    for i, ip in enumerate(ips):
        ip_path = ips_path if ips_path == "spec.clusterIP" else f"{ips_path}[{i}]"
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                causes.append(invalid(ips_path, ips, "'None' must be the first and only value"))
            continue
        errs = ip_address(ip, ip_path)
        bad = bad or bool(errs)
        causes.extend(errs)
    if len(ips) > 2:
        causes.append(invalid(ips_path, ips, "may only hold up to 2 values"))
    if bad:
        return causes
    if len(ips) > 1 and len({_ip_family(ip) for ip in ips}) != len(ips):
        causes.append(invalid(ips_path, ips, "may specify no more than one IP for each IP family"))
    if ips and ips != ["None"]:
        for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
            ip_path = ips_path if ips_path == "spec.clusterIP" else f"{ips_path}[{i}]"
            if family == "IPv4" and _ip_family(ip) == 6:
                causes.append(
                    invalid(
                        ip_path, ip, f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"
                    )
                )
            if family == "IPv6" and _ip_family(ip) == 4:
                causes.append(
                    invalid(
                        ip_path, ip, f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"
                    )
                )
    return causes


def validate_service_update(new: Service, old: Service) -> list[Cause]:
    if "ExternalName" in (new.spec.type, old.spec.type):
        return []
    if is_headless(new.spec) and is_headless(old.spec):
        return []
    # An update that leaves clusterIP out keeps the allocated one; only a
    # different value is a change.
    new_ip, old_ip = new.spec.cluster_ip, old.spec.cluster_ip
    if old_ip and new_ip and new_ip != old_ip:
        return [invalid("spec.clusterIP", new_ip, IMMUTABLE)]
    new_ips, old_ips = new.spec.cluster_ips or [], old.spec.cluster_ips or []
    for i, (new_ip, old_ip) in enumerate(zip(new_ips, old_ips, strict=False)):
        if new_ip != old_ip:
            return [invalid(index("spec.clusterIPs", i), new_ips, "may not change once set")]
    return []


# --- endpoints ------------------------------------------------------------------------------


def non_special_ip(ip: str, path: str) -> list[Cause]:
    """``ValidateNonSpecialIP`` for an address already known to parse."""
    causes: list[Cause] = []
    if _ip_family(ip) == 4:
        octets = [int(part) for part in ip.split(".")]
        unspecified = octets == [0, 0, 0, 0]
        loopback = octets[0] == _IPV4_LOOPBACK_FIRST_OCTET
        link_local = octets[:2] == [169, 254]
        link_local_multicast = octets[:3] == [224, 0, 0]
    else:
        try:
            addr = ipaddress.IPv6Address(ip)
        except ValueError:
            return causes
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return non_special_ip(str(mapped), path)
        unspecified = addr.is_unspecified
        loopback = addr.is_loopback
        link_local = addr.is_link_local
        link_local_multicast = addr.is_multicast and (addr.packed[1] & 0x0F) == 2
    if unspecified:
        causes.append(invalid(path, ip, f"may not be unspecified ({ip})"))
    if loopback:
        causes.append(invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if link_local:
        causes.append(
            invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        )
    if link_local_multicast:
        causes.append(
            invalid(
                path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
            )
        )
    return causes


def _endpoint_address(address: EndpointAddress, path: str) -> list[Cause]:
    ip_path = f"{path}.ip"
    ip_errs = ip_address(address.ip, ip_path)
    causes = ip_errs or non_special_ip(address.ip, ip_path)
    if address.hostname:
        causes.extend(dns_label(address.hostname, f"{path}.hostname"))
    if address.node_name is not None:
        causes.extend(dns_subdomain(address.node_name, f"{path}.nodeName"))
    return causes


def validate_endpoints(ep: Endpoints) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(ep.subsets or ()):
        subset_path = index("subsets", i)
        if not subset.addresses and not subset.not_ready_addresses:
            causes.append(required(subset_path, "must specify `addresses` or `notReadyAddresses`"))
        for j, address in enumerate(subset.addresses or ()):
            causes.extend(_endpoint_address(address, index(f"{subset_path}.addresses", j)))
        for j, address in enumerate(subset.not_ready_addresses or ()):
            causes.extend(_endpoint_address(address, index(f"{subset_path}.notReadyAddresses", j)))
        many = len(subset.ports or ()) > 1
        for j, port in enumerate(subset.ports or ()):
            port_path = index(f"{subset_path}.ports", j)
            if many and not port.name:
                causes.append(required(f"{port_path}.name"))
            elif port.name:
                causes.extend(dns_label(port.name, f"{port_path}.name"))
            causes.extend(
                invalid_each(f"{port_path}.port", port.port, is_valid_port_number(port.port))
            )
            if port.app_protocol is not None:
                causes.extend(qualified_name(port.app_protocol, f"{port_path}.appProtocol"))
    return causes
