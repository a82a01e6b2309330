from __future__ import annotations

from typing import Any

from nodeagent.network.resolvconf import parse_resolv_conf, pod_resolv_conf, resolv_conf

HOST = "# the host's\nnameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}


def test_resolv_conf_for_a_cluster_first_pod() -> None:
    expected = (
        "nameserver 10.244.0.1\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )
    assert resolv_conf("shop", "10.244.0.1") == expected
    # The host's search domains follow the cluster's, as the kubelet appends them:
    # the cluster DNS forwards such names to the host's resolvers.
    assert pod_resolv_conf(pod(), "10.244.0.1", HOST) == expected.replace(
        "cluster.local\n", "cluster.local corp.example\n", 1
    )


def test_policies() -> None:
    assert pod_resolv_conf(pod(dnsPolicy="Default"), "10.244.0.1", HOST) == (
        "nameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"
    )
    # ClusterFirst on the host's network falls back to the host's, as in the kubelet...
    assert "10.255.255.53" in pod_resolv_conf(pod(hostNetwork=True), "10.244.0.1", HOST)
    # ...unless the pod asks for the cluster's.
    with_host_net = pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    assert pod_resolv_conf(with_host_net, "10.244.0.1", HOST).startswith("nameserver 10.244.0.1")


def test_dns_config_is_merged() -> None:
    custom = pod(
        dnsPolicy="None",
        dnsConfig={
            "nameservers": ["10.96.0.53"],
            "searches": ["a.example", "a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        },
    )
    assert pod_resolv_conf(custom, "10.244.0.1", HOST) == (
        "nameserver 10.96.0.53\nsearch a.example\noptions ndots:2 edns0\n"
    )
    tuned = pod(dnsConfig={"options": [{"name": "ndots", "value": "1"}]})
    assert pod_resolv_conf(tuned, "10.244.0.1", HOST).endswith("options ndots:1\n")


def test_parse_resolv_conf_ignores_comments() -> None:
    parsed = parse_resolv_conf("nameserver 1.1.1.1 # x\n; comment\ndomain a\nsearch b c\n")
    assert parsed.nameservers == ["1.1.1.1"]
    assert parsed.searches == ["b", "c"]
