from __future__ import annotations

from typing import Any

from nodeagent.network.nftrules import (
    ProxyLayout,
    chain_name,
    delta_script,
    full_script,
    render,
)
from nodeagent.network.services import service_ports

LAYOUT = ProxyLayout(cluster_cidr="10.244.0.0/16", pod_cidr="10.244.0.0/24")


def web(**spec: Any) -> Any:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "clusterIP": "10.96.0.10",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            **spec,
        },
    }


def web_endpoints(*ips: str) -> Any:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [
            {
                "addresses": [{"ip": ip} for ip in ips],
                "notReadyAddresses": [{"ip": "10.244.9.9"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        ],
    }


def rendered(services: list[Any], endpoints: list[Any], node_ips: tuple[str, ...] = ()) -> Any:
    return render(service_ports(services, endpoints), LAYOUT, node_ips)


SVC = chain_name("svc", "shop/web/tcp/http")
EP1 = chain_name("ep", "shop/web/tcp/http__10.244.0.5/8080")
EP2 = chain_name("ep", "shop/web/tcp/http__10.244.1.5/8080")


def test_chain_names_are_readable_and_stable() -> None:
    assert SVC.startswith("svc-")
    assert SVC.endswith("-shop/web/tcp/http")
    assert chain_name("svc", "shop/web/tcp/http") == SVC
    assert len(SVC.split("-")[1]) == 8


def test_a_service_balances_over_ready_endpoints() -> None:
    ruleset = rendered([web()], [web_endpoints("10.244.1.5", "10.244.0.5")])
    assert ruleset.elements["service-ips"] == {"10.96.0.10 . tcp . 80": f"goto {SVC}"}
    assert ruleset.chains[SVC] == (
        "ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        "meta l4proto tcp dnat ip to numgen random mod 2 "
        "map { 0 : 10.244.0.5 . 8080, 1 : 10.244.1.5 . 8080 }",
    )
    assert EP1 not in ruleset.chains  # no chain per endpoint without affinity
    assert not any("10.244.9.9" in rule for rules in ruleset.chains.values() for rule in rules)
    assert ruleset.elements["no-endpoint-services"] == {}


def test_session_affinity_uses_per_endpoint_timeout_sets() -> None:
    service = web(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )
    ruleset = rendered([service], [web_endpoints("10.244.0.5", "10.244.1.5")])
    affinity = chain_name("aff", "shop/web/tcp/http__10.244.0.5/8080")
    assert ruleset.sets[affinity] == "type ipv4_addr; flags dynamic,timeout; timeout 60s;"
    assert f"ip saddr @{affinity} goto {EP1}" in ruleset.chains[SVC]
    assert ruleset.chains[SVC][-1].startswith("numgen random mod 2")
    assert ruleset.chains[EP1] == (
        f"update @{affinity} {{ ip saddr }}",
        "meta l4proto tcp dnat to 10.244.0.5:8080",
    )
    default = rendered([web(sessionAffinity="ClientIP")], [web_endpoints("10.244.0.5")])
    assert "timeout 10800s" in default.sets[affinity]


def test_node_ports_masquerade_and_share_the_service_chain() -> None:
    service = web(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    ruleset = rendered([service], [web_endpoints("10.244.0.5")], ("192.168.240.1",))
    external = chain_name("ext", "shop/web/tcp/http")
    assert ruleset.elements["service-nodeports"] == {"tcp . 30080": f"goto {external}"}
    assert ruleset.chains[external] == ("jump mark-for-masquerade", f"goto {SVC}")
    assert ruleset.elements["nodeport-ips"] == {"192.168.240.1": ""}
    assert ruleset.chains[SVC][-1] == "meta l4proto tcp dnat to 10.244.0.5:8080"  # no numgen


def test_services_without_ready_endpoints_reject() -> None:
    service = web(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    ruleset = rendered([service], [])
    assert ruleset.elements["no-endpoint-services"] == {
        "10.96.0.10 . tcp . 80": "goto reject-chain"
    }
    assert ruleset.elements["no-endpoint-nodeports"] == {"tcp . 30080": "goto reject-chain"}
    assert ruleset.elements["service-ips"] == {}
    assert ruleset.chains["reject-chain"] == ("meta l4proto tcp reject with tcp reset", "reject")


def test_udp_ports_headless_and_external_names() -> None:
    dns = {
        "metadata": {"name": "dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "10.96.0.53", "ports": [{"port": 53, "protocol": "UDP"}]},
    }
    endpoints = {
        "metadata": {"name": "dns", "namespace": "kube-system"},
        "subsets": [
            {"addresses": [{"ip": "10.244.0.9"}], "ports": [{"port": 5353, "protocol": "UDP"}]}
        ],
    }
    headless = web(clusterIP="None")
    external = web(type="ExternalName", externalName="example.org")
    ruleset = rendered([dns, headless, external], [endpoints])
    assert list(ruleset.elements["service-ips"]) == ["10.96.0.53 . udp . 53"]
    service_chain = chain_name("svc", "kube-system/dns/udp/53")
    assert ruleset.chains[service_chain][-1] == "meta l4proto udp dnat to 10.244.0.9:5353"


def test_same_node_and_hairpin_traffic_is_masqueraded_on_the_bridge() -> None:
    masquerading = rendered([], []).chains["masquerading"]
    assert masquerading[0] == (
        "ip saddr 10.244.0.0/24 ip daddr 10.244.0.0/24 ct status dnat masquerade fully-random"
    )
    assert masquerading[1] == "ip daddr != 10.244.0.0/16 ct status dnat masquerade fully-random"


def test_full_script_replaces_the_table_in_one_go() -> None:
    script = full_script(rendered([web()], [web_endpoints("10.244.0.5")]))
    lines = script.splitlines()
    assert lines[:3] == ["add table ip corral", "delete table ip corral", "add table ip corral"]
    assert (
        "add map ip corral service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }"
        in lines
    )
    hook = "type nat hook prerouting priority dstnat; policy accept;"
    assert f"add chain ip corral nat-prerouting {{ {hook} }}" in lines
    # Chains exist before the map elements that jump to them.
    assert lines.index(f"add chain ip corral {SVC}") < lines.index(
        f"add element ip corral service-ips {{ 10.96.0.10 . tcp . 80 : goto {SVC} }}"
    )


def test_delta_touches_only_what_changed() -> None:
    other = web()
    other["metadata"]["name"] = "other"
    other["spec"]["clusterIP"] = "10.96.0.20"
    other_endpoints = web_endpoints("10.244.2.5")
    other_endpoints["metadata"]["name"] = "other"
    before = rendered([web(), other], [web_endpoints("10.244.0.5", "10.244.1.5"), other_endpoints])
    after = rendered([web(), other], [web_endpoints("10.244.0.5"), other_endpoints])
    script = delta_script(before, after)
    assert script is not None
    assert script.splitlines() == [
        f"flush chain ip corral {SVC}",
        f"add rule ip corral {SVC} ip daddr 10.96.0.10 tcp dport 80 "
        "ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"add rule ip corral {SVC} meta l4proto tcp dnat to 10.244.0.5:8080",
    ]
    assert delta_script(after, after) == ""


def test_delta_removes_endpoint_chains_and_affinity_sets() -> None:
    sticky = web(sessionAffinity="ClientIP")
    before = rendered([sticky], [web_endpoints("10.244.0.5", "10.244.1.5")])
    after = rendered([sticky], [web_endpoints("10.244.0.5")])
    lines = (delta_script(before, after) or "").splitlines()
    affinity = chain_name("aff", "shop/web/tcp/http__10.244.1.5/8080")
    assert f"flush chain ip corral {SVC}" in lines
    assert lines.index(f"flush chain ip corral {EP2}") < lines.index(
        f"delete chain ip corral {EP2}"
    )
    assert lines.index(f"delete chain ip corral {EP2}") < lines.index(
        f"delete set ip corral {affinity}"
    )
    assert not any(EP1 in line and "flush" in line for line in lines)


def test_delta_moves_a_service_between_reject_and_balance() -> None:
    before = rendered([web()], [])
    after = rendered([web()], [web_endpoints("10.244.0.5")])
    lines = (delta_script(before, after) or "").splitlines()
    assert "delete element ip corral no-endpoint-services { 10.96.0.10 . tcp . 80 }" in lines
    assert f"add element ip corral service-ips {{ 10.96.0.10 . tcp . 80 : goto {SVC} }}" in lines
    back = (delta_script(after, before) or "").splitlines()
    assert back.index("delete element ip corral service-ips { 10.96.0.10 . tcp . 80 }") < (
        back.index(f"delete chain ip corral {SVC}")
    )


def test_delta_gives_up_when_an_affinity_timeout_changes() -> None:
    endpoints = [web_endpoints("10.244.0.5")]
    before = rendered([web(sessionAffinity="ClientIP")], endpoints)
    after = rendered(
        [
            web(
                sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5}},
            )
        ],
        endpoints,
    )
    assert delta_script(before, after) is None


def test_a_second_cluster_in_the_namespace_writes_only_its_own_table() -> None:
    before = rendered([web()], [web_endpoints("10.244.0.5")])
    after = rendered([web()], [web_endpoints("10.244.0.6")])
    for script in (full_script(after, "corral1"), delta_script(before, after, "corral1") or ""):
        tables = {line.split()[3] for line in script.splitlines() if " ip " in line}
        assert tables == {"corral1"}, script
