"""The cluster's DNS data, built from Services and Endpoints, and the answer to one question.

Names follow Kubernetes' DNS specification: ``<svc>.<ns>.svc.<zone>`` is
the ClusterIP, or a headless service's ready endpoint addresses;
``<hostname>.<svc>.<ns>.svc.<zone>`` an endpoint with a hostname;
``<a-b-c-d>.<ns>.pod.<zone>`` a pod address;
``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV records for a named port (the
Service itself as target, or each ready endpoint of a headless one, named
by its hostname or its dashed address); ``<d.c.b.a>.in-addr.arpa`` PTR
records for ClusterIPs and ready endpoint addresses. An ExternalName
Service is a CNAME. Names the zone does not own (``owns``) are REFUSED
here; the server forwards them when it has upstream resolvers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from corral.objects import Obj
from nodeagent.network.dnswire import (
    ANY,
    CLASS_IN,
    CNAME,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    PTR,
    QUESTION_NAME,
    REFUSED,
    SOA,
    SRV,
    A,
    Question,
    Record,
    Response,
    a_rdata,
    encode_name,
    reverse_name,
    soa_rdata,
    srv_rdata,
)
from nodeagent.network.services import (
    index_endpoints,
    namespace_and_name,
    ready_addresses,
    valid_ipv4,
)

TTL = 5  # seconds, as CoreDNS's kubernetes plugin answers


@dataclass
class Zone:
    domain: str = "cluster.local"
    addresses: dict[str, list[str]] = field(default_factory=dict)  # name -> A records
    aliases: dict[str, str] = field(default_factory=dict)  # name -> CNAME target
    # Names that exist without records of their own (empty non-terminals).
    names: set[str] = field(default_factory=set)
    # name -> (priority, weight, port, target) per SRV record
    services: dict[str, list[tuple[int, int, int, str]]] = field(default_factory=dict)
    pointers: dict[str, str] = field(default_factory=dict)  # reverse name -> PTR target
    serial: int = 1

    def owns(self, name: str) -> bool:
        """Whether the zone answers ``name`` itself (the cluster domain, or a known address)."""
        domain = self.domain
        return name == domain or name.endswith("." + domain) or name in self.pointers

    def answer(self, question: Question) -> Response:
        name, domain = question.name, self.domain
        if question.qclass not in (CLASS_IN, ANY):
            return Response(REFUSED, authoritative=False)
        if not self.owns(name):
            return Response(REFUSED, authoritative=False)
        if name in self.pointers:
            return self._pointer(question)
        if question.qtype in (ANY, SRV) and name in self.services:
            return Response(NOERROR, answers=self._srv(name))
        if question.qtype in (ANY, A) and name in self.addresses:
            return Response(
                NOERROR,
                answers=[Record(QUESTION_NAME, A, TTL, a_rdata(ip)) for ip in self.addresses[name]],
            )
        if name in self.aliases and question.qtype in (ANY, A, CNAME):
            target = encode_name(self.aliases[name])
            return Response(NOERROR, answers=[Record(QUESTION_NAME, CNAME, TTL, target)])
        if question.qtype == SOA and name == domain:
            return Response(NOERROR, answers=[self._soa(QUESTION_NAME)])
        exists = (
            name in self.addresses
            or name in self.aliases
            or name in self.names
            or name in self.services
        )
        if not exists:
            pod = self._pod_address(name)
            if pod is not None:
                if question.qtype in (ANY, A):
                    return Response(NOERROR, answers=[Record(QUESTION_NAME, A, TTL, a_rdata(pod))])
                exists = True
        if exists:
            return Response(NOERROR, authority=[self._soa(encode_name(domain))])
        return Response(NXDOMAIN, authority=[self._soa(encode_name(domain))])

    def _pointer(self, question: Question) -> Response:
        if question.qtype not in (ANY, PTR):
            return Response(NOERROR)  # the name exists, without records of that type
        target = encode_name(self.pointers[question.name])
        return Response(NOERROR, answers=[Record(QUESTION_NAME, PTR, TTL, target)])

    def _srv(self, name: str) -> list[Record]:
        return [
            Record(QUESTION_NAME, SRV, TTL, srv_rdata(priority, weight, port, target))
            for priority, weight, port, target in self.services[name]
        ]

    def _soa(self, owner: bytes) -> Record:
        return Record(owner, SOA, TTL, soa_rdata(self.domain, self.serial, TTL))

    def _pod_address(self, name: str) -> str | None:
        suffix = f".pod.{self.domain}"
        if not name.endswith(suffix):
            return None
        labels = name[: -len(suffix)].split(".")
        if len(labels) != 2:
            return None
        ip = labels[0].replace("-", ".")
        return ip if valid_ipv4(ip) else None


def build_zone(services: Iterable[Obj], endpoints: Iterable[Obj], domain: str) -> Zone:
    zone = Zone(domain=domain)
    by_name = index_endpoints(endpoints)
    zone.names.update({domain, f"svc.{domain}", f"pod.{domain}"})
    for service in services:
        namespace, name = namespace_and_name(service)
        if not name:
            continue
        spec = service.get("spec") or {}
        fqdn = f"{name}.{namespace}.svc.{domain}"
        zone.names.update({f"{namespace}.svc.{domain}", f"{namespace}.pod.{domain}"})
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").rstrip(".").lower()
            if target:
                zone.aliases[fqdn] = target
            continue
        _add_service(zone, fqdn, spec, by_name.get((namespace, name)))
    return zone


def _add_service(zone: Zone, fqdn: str, spec: Obj, endpoints: Obj | None) -> None:
    cluster_ip = spec.get("clusterIP") or ""
    ready = ready_addresses(endpoints)
    headless = cluster_ip == "None"
    if headless:
        ips = sorted({address["ip"] for address in ready})
        if ips:
            zone.addresses[fqdn] = ips
        else:
            zone.names.add(fqdn)
    elif valid_ipv4(cluster_ip):
        zone.addresses[fqdn] = [cluster_ip]
        zone.pointers.setdefault(reverse_name(cluster_ip), fqdn)
    else:
        zone.names.add(fqdn)
    for address in ready:
        # Named by its hostname, else by its dashed address, as CoreDNS names endpoints.
        ip = address["ip"]
        hostname = str(address.get("hostname") or "")
        endpoint = f"{hostname or ip.replace('.', '-')}.{fqdn}"
        if hostname or headless:
            zone.addresses.setdefault(endpoint, []).append(ip)
        zone.pointers.setdefault(reverse_name(ip), endpoint)
    _add_srv(zone, fqdn, spec, endpoints if headless else None)


def _add_srv(zone: Zone, fqdn: str, spec: Obj, headless_endpoints: Obj | None) -> None:
    """SRV records per named port: the Service as target, or each endpoint if headless."""
    for port in spec.get("ports") or ():
        port_name = str(port.get("name") or "").lower()
        protocol = str(port.get("protocol") or "TCP").lower()
        if not port_name:
            continue  # only named ports have SRV names
        owner = f"_{port_name}._{protocol}.{fqdn}"
        zone.names.add(f"_{protocol}.{fqdn}")
        if headless_endpoints is None:
            number = port.get("port")
            if isinstance(number, int) and 0 < number < 65536:
                zone.services[owner] = [(0, 100, number, fqdn)]
            continue
        records = _endpoint_srv(fqdn, headless_endpoints, port_name, protocol)
        if records:
            zone.services[owner] = records
        else:
            zone.names.add(owner)


def _endpoint_srv(
    fqdn: str, endpoints: Obj, port_name: str, protocol: str
) -> list[tuple[int, int, int, str]]:
    found: list[tuple[int, str]] = []
    for subset in endpoints.get("subsets") or ():
        for port in subset.get("ports") or ():
            if str(port.get("name") or "").lower() != port_name:
                continue
            if str(port.get("protocol") or "TCP").lower() != protocol:
                continue
            number = port.get("port")
            if not isinstance(number, int) or not 0 < number < 65536:
                continue
            for address in subset.get("addresses") or ():
                ip = str(address.get("ip") or "")
                if not valid_ipv4(ip):
                    continue
                label = str(address.get("hostname") or "") or ip.replace(".", "-")
                found.append((number, f"{label}.{fqdn}"))
    unique = sorted(set(found))
    if not unique:
        return []
    # Equal shares of 100, as CoreDNS weighs a set of endpoints.
    weight = max(100 // len(unique), 1)
    return [(0, weight, number, target) for number, target in unique]


def unsupported_opcode() -> Response:
    return Response(NOTIMP, authoritative=False)
