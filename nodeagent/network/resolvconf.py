"""A pod's /etc/resolv.conf, following its dnsPolicy and dnsConfig as the kubelet does
(pkg/kubelet/network/dns): a ClusterFirst pod searches its namespace, the cluster's
Services and the cluster domain, then the host's own search domains (the cluster DNS
forwards those names to the host's resolvers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.objects import Obj
from nodeagent.network.services import namespace_and_name

_MAX_NAMESERVERS = 3
_MAX_SEARCHES = 32


@dataclass
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"nameserver {server}" for server in self.nameservers[:_MAX_NAMESERVERS]]
        if self.searches:
            lines.append("search " + " ".join(self.searches[:_MAX_SEARCHES]))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


def resolv_conf(namespace: str, nameserver: str, domain: str = "cluster.local") -> str:
    """The resolv.conf of a ClusterFirst pod in ``namespace``."""
    return _cluster_first(namespace, nameserver, domain).render()


def _cluster_first(namespace: str, nameserver: str, domain: str) -> ResolvConf:
    return ResolvConf(
        nameservers=[nameserver],
        searches=[f"{namespace}.svc.{domain}", f"svc.{domain}", domain],
        options=["ndots:5"],
    )


def parse_resolv_conf(text: str) -> ResolvConf:
    parsed = ResolvConf()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            parsed.nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            parsed.searches = words[1:]
        elif words[0] == "options":
            parsed.options.extend(words[1:])
    return parsed


def _merge_options(base: list[str], extra: list[Obj]) -> list[str]:
    merged: dict[str, str] = {}
    for text in base:
        merged[text.partition(":")[0]] = text
    for option in extra:
        name = str(option.get("name") or "")
        if name:
            value = option.get("value")
            merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return list(merged.values())


def pod_resolv_conf(
    pod: Obj, nameserver: str, host_resolv_conf: str, domain: str = "cluster.local"
) -> str:
    """The resolv.conf for ``pod``: ClusterFirst (the default), Default (the host's),
    ClusterFirstWithHostNet, or None, then merged with ``spec.dnsConfig``."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network):
        conf = _cluster_first(namespace_and_name(pod)[0], nameserver, domain)
        for search in parse_resolv_conf(host_resolv_conf).searches:
            if search not in conf.searches:
                conf.searches.append(search)
    elif policy == "None":
        conf = ResolvConf()
    else:  # Default, and ClusterFirst on the host's network, as the kubelet does
        conf = parse_resolv_conf(host_resolv_conf)
    extra = spec.get("dnsConfig") or {}
    for server in extra.get("nameservers") or []:
        if server not in conf.nameservers:
            conf.nameservers.append(str(server))
    for search in extra.get("searches") or []:
        if search not in conf.searches:
            conf.searches.append(str(search))
    conf.options = _merge_options(conf.options, extra.get("options") or [])
    return conf.render()
