"""The ``table ip corral`` ruleset for a set of service ports, and the nft scripts that
install it: whole, or as the difference from what is installed. Pure functions, no I/O.

The layout follows kube-proxy's nftables mode: verdict maps keyed by
destination address, protocol and port jump to one chain per service port,
which DNATs to a backend picked with ``numgen random``; with ClientIP
affinity, the backend a per-endpoint timeout set remembers for the client,
through a chain per endpoint.

Masquerading, so that nothing depends on br_netfilter:
- a DNATed packet from a pod of this node to a pod of this node (a backend on
  the same node, or the client itself): the backend would answer straight
  across the bridge, bypassing the conntrack entry that must undo the DNAT,
  so the source becomes the gateway. Matched on addresses, not interfaces:
  where br_netfilter is loaded, this postrouting hook runs from the bridge
  with no input interface at all;
- a DNATed packet to a backend outside the cluster CIDR (a host-network
  endpoint such as the API server), which may have no route to pods;
- NodePort traffic, whose reply must come back through this node;
- ClusterIP traffic from outside the cluster CIDR.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from nodeagent.network.nft import TABLE
from nodeagent.network.services import ServicePort

MASQ_MARK = "0x00004000"


def _t(table: str) -> str:
    return f"ip {table}"


# Maps and sets that always exist; their elements change.
_STATIC_SETS = {
    "service-ips": "type ipv4_addr . inet_proto . inet_service : verdict;",
    "service-nodeports": "type inet_proto . inet_service : verdict;",
    "no-endpoint-services": "type ipv4_addr . inet_proto . inet_service : verdict;",
    "no-endpoint-nodeports": "type inet_proto . inet_service : verdict;",
    "nodeport-ips": "type ipv4_addr;",
}


@dataclass(frozen=True)
class ProxyLayout:
    """What the rules need to know about the node."""

    cluster_cidr: str
    pod_cidr: str  # this node's


@dataclass
class Ruleset:
    # chain -> its rules; a base chain's first line is its "type ... hook ..." header
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # set or map -> its declaration
    sets: dict[str, str] = field(default_factory=dict)
    # set or map -> element -> value ("" for a plain set)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)

    def rule_count(self) -> int:
        return sum(len(rules) for rules in self.chains.values())


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest())[:8].decode()


def chain_name(kind: str, key: str) -> str:
    """e.g. ``svc-4BH3OM2Q-default/web/tcp/http``: readable and unique."""
    return f"{kind}-{_hash(key)}-{key}"


def _base_chains(layout: ProxyLayout) -> dict[str, tuple[str, ...]]:
    local = layout.pod_cidr
    return {
        "nat-prerouting": (
            "type nat hook prerouting priority dstnat; policy accept;",
            "jump services",
        ),
        "nat-output": ("type nat hook output priority -100; policy accept;", "jump services"),
        "nat-postrouting": (
            "type nat hook postrouting priority srcnat; policy accept;",
            "jump masquerading",
        ),
        # Before DNAT: a service without ready endpoints is refused at once.
        "filter-prerouting": (
            "type filter hook prerouting priority dstnat - 10; policy accept;",
            "ct state new jump endpoints-check",
        ),
        "filter-output": (
            "type filter hook output priority -110; policy accept;",
            "ct state new jump endpoints-check",
        ),
        "endpoints-check": (
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports",
        ),
        "reject-chain": ("meta l4proto tcp reject with tcp reset", "reject"),
        "services": (
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
        ),
        "mark-for-masquerade": (f"meta mark set meta mark | {MASQ_MARK}",),
        "masquerading": (
            f"ip saddr {local} ip daddr {local} ct status dnat masquerade fully-random",
            # A backend outside the pod network (the API server behind the
            # "kubernetes" Service) may have no route back to pod addresses.
            f"ip daddr != {layout.cluster_cidr} ct status dnat masquerade fully-random",
            f"meta mark & {MASQ_MARK} == 0 return",
            f"meta mark set meta mark ^ {MASQ_MARK}",
            "masquerade fully-random",
        ),
    }


def render(ports: Iterable[ServicePort], layout: ProxyLayout, node_ips: Iterable[str]) -> Ruleset:
    ruleset = Ruleset(chains=_base_chains(layout), sets=dict(_STATIC_SETS))
    ruleset.elements = {name: {} for name in _STATIC_SETS}
    for ip in sorted(set(node_ips)):
        ruleset.elements["nodeport-ips"][ip] = ""
    for port in ports:
        fragment = _port_fragment(port, layout)
        ruleset.chains.update(fragment.chains)
        ruleset.sets.update(fragment.sets)
        for name, elements in fragment.elements.items():
            ruleset.elements[name].update(elements)
    return ruleset


# A sync renders every service again; an unchanged port (a frozen, hashable
# value) reuses its fragment, so the cost follows the number of changes.
@functools.lru_cache(maxsize=32768)
def _port_fragment(port: ServicePort, layout: ProxyLayout) -> Ruleset:
    fragment = Ruleset(elements={name: {} for name in _STATIC_SETS})
    _render_port(fragment, port, layout)
    return fragment


def _render_port(ruleset: Ruleset, port: ServicePort, layout: ProxyLayout) -> None:
    proto = port.protocol
    service_key = f"{port.cluster_ip} . {proto} . {port.port}"
    nodeport_key = f"{proto} . {port.node_port}" if port.node_port else ""
    if not port.backends:
        ruleset.elements["no-endpoint-services"][service_key] = "goto reject-chain"
        if nodeport_key:
            ruleset.elements["no-endpoint-nodeports"][nodeport_key] = "goto reject-chain"
        return
    service_chain = chain_name("svc", port.key)
    rules = [
        f"ip daddr {port.cluster_ip} {proto} dport {port.port} "
        f"ip saddr != {layout.cluster_cidr} jump mark-for-masquerade"
    ]
    if port.affinity_seconds is None:
        # Without affinity the service chain DNATs itself: fewer chains make
        # every nft transaction cheaper, since nft reads the table first.
        targets = [f"{backend.ip} . {backend.port}" for backend in port.backends]
        if len(targets) == 1:
            backend = port.backends[0]
            rules.append(f"meta l4proto {proto} dnat to {backend.ip}:{backend.port}")
        else:
            choices = ", ".join(f"{i} : {target}" for i, target in enumerate(targets))
            rules.append(
                f"meta l4proto {proto} dnat ip to numgen random mod {len(targets)} "
                f"map {{ {choices} }}"
            )
    else:
        _render_affinity(ruleset, port, rules)
    ruleset.chains[service_chain] = tuple(rules)
    ruleset.elements["service-ips"][service_key] = f"goto {service_chain}"
    if nodeport_key:
        external_chain = chain_name("ext", port.key)
        ruleset.chains[external_chain] = ("jump mark-for-masquerade", f"goto {service_chain}")
        ruleset.elements["service-nodeports"][nodeport_key] = f"goto {external_chain}"


def _render_affinity(ruleset: Ruleset, port: ServicePort, rules: list[str]) -> None:
    """ClientIP affinity as kube-proxy does it: a timeout set per endpoint remembers
    its clients, and a chain per endpoint refreshes the entry and DNATs."""
    endpoint_chains: list[str] = []
    for backend in port.backends:
        endpoint_key = f"{port.key}__{backend.ip}/{backend.port}"
        endpoint_chain = chain_name("ep", endpoint_key)
        affinity = chain_name("aff", endpoint_key)
        endpoint_chains.append(endpoint_chain)
        ruleset.sets[affinity] = (
            f"type ipv4_addr; flags dynamic,timeout; timeout {port.affinity_seconds}s;"
        )
        rules.append(f"ip saddr @{affinity} goto {endpoint_chain}")
        ruleset.chains[endpoint_chain] = (
            f"update @{affinity} {{ ip saddr }}",
            f"meta l4proto {port.protocol} dnat to {backend.ip}:{backend.port}",
        )
    if len(endpoint_chains) == 1:
        rules.append(f"goto {endpoint_chains[0]}")
    else:
        choices = ", ".join(f"{i} : goto {chain}" for i, chain in enumerate(endpoint_chains))
        rules.append(f"numgen random mod {len(endpoint_chains)} vmap {{ {choices} }}")


# --- scripts -------------------------------------------------------------------------------


def _is_base(rules: tuple[str, ...]) -> bool:
    return bool(rules) and rules[0].startswith("type ")


def _element(key: str, value: str) -> str:
    return f"{key} : {value}" if value else key


def _add_set(t: str, name: str, body: str) -> str:
    kind = "map" if ": verdict" in body else "set"
    return f"add {kind} {t} {name} {{ {body} }}"


def _add_chain(t: str, name: str, rules: tuple[str, ...]) -> str:
    if _is_base(rules):
        return f"add chain {t} {name} {{ {rules[0]} }}"
    return f"add chain {t} {name}"


def _add_rules(t: str, lines: list[str], name: str, rules: tuple[str, ...]) -> None:
    body = rules[1:] if _is_base(rules) else rules
    lines.extend(f"add rule {t} {name} {rule}" for rule in body)


def _add_elements(t: str, lines: list[str], name: str, elements: dict[str, str]) -> None:
    items = [_element(key, value) for key, value in elements.items()]
    # Chunks keep each command a sane length; all are still one transaction.
    for start in range(0, len(items), 1000):
        lines.append(f"add element {t} {name} {{ {', '.join(items[start : start + 1000])} }}")


def full_script(ruleset: Ruleset, table: str = TABLE) -> str:
    """Replace the whole table. The add-then-delete makes the delete valid when it is absent."""
    t = _t(table)
    lines = [f"add table {t}", f"delete table {t}", f"add table {t}"]
    lines += [_add_set(t, name, body) for name, body in ruleset.sets.items()]
    lines += [_add_chain(t, name, rules) for name, rules in ruleset.chains.items()]
    for name, rules in ruleset.chains.items():
        _add_rules(t, lines, name, rules)
    for name, elements in ruleset.elements.items():
        if elements:
            _add_elements(t, lines, name, elements)
    return "\n".join(lines) + "\n"


def delta_script(old: Ruleset, new: Ruleset, table: str = TABLE) -> str | None:
    """The changes from ``old`` to ``new`` as one script; None if only a full replace will do.

    Unchanged chains and affinity sets are left alone, which keeps both the
    transaction small and the clients' affinity entries.
    """
    for name, body in old.sets.items():
        if name in new.sets and new.sets[name] != body:
            return None  # a changed declaration (affinity timeout): rebuild
    for name, rules in {**old.chains, **new.chains}.items():
        if _is_base(rules) and old.chains.get(name) != new.chains.get(name):
            return None  # a hook changed: rebuild
    t = _t(table)
    lines: list[str] = []
    added_sets = [name for name in new.sets if name not in old.sets]
    lines += [_add_set(t, name, new.sets[name]) for name in added_sets]
    added = [name for name in new.chains if name not in old.chains]
    removed = [name for name in old.chains if name not in new.chains]
    changed = [
        name for name in new.chains if name in old.chains and old.chains[name] != new.chains[name]
    ]
    lines += [_add_chain(t, name, new.chains[name]) for name in added]
    for name, old_elements in old.elements.items():
        new_elements = new.elements.get(name, {})
        gone = [
            key
            for key, value in old_elements.items()
            if key not in new_elements or new_elements[key] != value
        ]
        if gone:
            lines.append(f"delete element {t} {name} {{ {', '.join(gone)} }}")
    lines += [f"flush chain {t} {name}" for name in (*changed, *removed)]
    lines += [f"delete chain {t} {name}" for name in removed]
    lines += [f"delete set {t} {name}" for name in old.sets if name not in new.sets]
    for name in (*changed, *added):
        _add_rules(t, lines, name, new.chains[name])
    for name, new_elements in new.elements.items():
        old_elements = old.elements.get(name, {})
        fresh = {
            key: value
            for key, value in new_elements.items()
            if key not in old_elements or old_elements[key] != value
        }
        if fresh:
            _add_elements(t, lines, name, fresh)
    return "\n".join(lines) + "\n" if lines else ""
