"""The cluster's DNS data, built from Services and Endpoints, and the answer to one question.

Names follow Kubernetes' DNS specification: ``<svc>.<ns>.svc.<zone>`` is
the ClusterIP, or a headless service's ready endpoint addresses;
``<hostname>.<svc>.<ns>.svc.<zone>`` an endpoint with a hostname;
``<a-b-c-d>.<ns>.pod.<zone>`` a pod address. Names outside the zone are
refused: the cluster's DNS never forwards.
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
    QUESTION_NAME,
    REFUSED,
    SOA,
    A,
    Question,
    Record,
    Response,
    a_rdata,
    encode_name,
    soa_rdata,
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
    serial: int = 1

    def answer(self, question: Question) -> Response:
        name, domain = question.name, self.domain
        if question.qclass not in (CLASS_IN, ANY):
            return Response(REFUSED, authoritative=False)
        if name != domain and not name.endswith("." + domain):
            return Response(REFUSED, authoritative=False)
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
        exists = name in self.addresses or name in self.aliases or name in self.names
        if not exists:
            pod = self._pod_address(name)
            if pod is not None:
                if question.qtype in (ANY, A):
                    return Response(NOERROR, answers=[Record(QUESTION_NAME, A, TTL, a_rdata(pod))])
                exists = True
        if exists:
            return Response(NOERROR, authority=[self._soa(encode_name(domain))])
        return Response(NXDOMAIN, authority=[self._soa(encode_name(domain))])

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
        cluster_ip = spec.get("clusterIP") or ""
        ready = ready_addresses(by_name.get((namespace, name)))
        if cluster_ip == "None":
            ips = sorted({address["ip"] for address in ready})
            if ips:
                zone.addresses[fqdn] = ips
            else:
                zone.names.add(fqdn)
        elif valid_ipv4(cluster_ip):
            zone.addresses[fqdn] = [cluster_ip]
        else:
            zone.names.add(fqdn)
        for address in ready:
            hostname = str(address.get("hostname") or "")
            if hostname:
                zone.addresses.setdefault(f"{hostname}.{fqdn}", []).append(address["ip"])
    return zone


def unsupported_opcode() -> Response:
    return Response(NOTIMP, authoritative=False)
