"""Services and Endpoints."""

from __future__ import annotations

import pytest

from .builders import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    REQUIRED,
    Mutation,
    append,
    both,
    causes_of,
    drop,
    mutated,
    put,
    service,
    update_causes,
    validate,
)

CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("no ports", put("spec/ports", []), [("spec.ports", REQUIRED)]),
    (
        "headless without ports",
        put("spec", {"clusterIP": "None", "selector": {"app": "web"}}),
        [],
    ),
    (
        "external name without ports",
        put("spec", {"type": "ExternalName", "externalName": "db.example.com."}),
        [],
    ),
    (
        "external name missing",
        put("spec", {"type": "ExternalName"}),
        [("spec.externalName", REQUIRED)],
    ),
    (
        "external name not a domain",
        put("spec", {"type": "ExternalName", "externalName": "db_host"}),
        [("spec.externalName", INVALID)],
    ),
    (
        "external name with cluster IP",
        put(
            "spec",
            {"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.0.0.1"},
        ),
        [("spec.clusterIPs", FORBIDDEN)],
    ),
    ("unnamed port among many", drop("spec/ports/1/name"), [("spec.ports[1].name", REQUIRED)]),
    ("unnamed single port", both(drop("spec/ports/1"), drop("spec/ports/0/name")), []),
    ("duplicate port name", put("spec/ports/1/name", "http"), [("spec.ports[1].name", DUPLICATE)]),
    (
        "port name with capitals",
        put("spec/ports/1/name", "Metrics"),
        [("spec.ports[1].name", INVALID)],
    ),
    ("port out of range", put("spec/ports/1/port", 0), [("spec.ports[1].port", INVALID)]),
    ("same port twice", put("spec/ports/1/port", 80), [("spec.ports[1]", DUPLICATE)]),
    (
        "same port, other protocol",
        both(put("spec/ports/1/port", 80), put("spec/ports/1/protocol", "UDP")),
        [],
    ),
    (
        "target port too big",
        put("spec/ports/1/targetPort", 70000),
        [("spec.ports[1].targetPort", INVALID)],
    ),
    (
        "target port bad name",
        put("spec/ports/0/targetPort", "-http"),
        [("spec.ports[0].targetPort", INVALID)],
    ),
    (
        "node port on ClusterIP",
        both(put("spec/type", "ClusterIP"), drop("spec/externalTrafficPolicy")),
        [("spec.ports[0].nodePort", FORBIDDEN)],
    ),
    (
        "node port used twice",
        put("spec/ports/1/nodePort", 30080),
        [("spec.ports[1].nodePort", DUPLICATE)],
    ),
    # clusterIPs defaults from clusterIP, and the address is judged there.
    (
        "cluster IP not an IP",
        put("spec/clusterIP", "10.96.0"),
        [("spec.clusterIPs[0]", INVALID)],
    ),
    (
        "headless NodePort",
        put("spec/clusterIP", "None"),
        [("spec.clusterIPs[0]", INVALID)],
    ),
    (
        "cluster IPs not starting with cluster IP",
        put("spec/clusterIPs", ["10.96.0.21"]),
        [("spec.clusterIPs", INVALID)],
    ),
    (
        "dual stack",
        put("spec/clusterIPs", ["10.96.0.20", "fd00::20"]),
        [],
    ),
    (
        "two IPv4 cluster IPs",
        put("spec/clusterIPs", ["10.96.0.20", "10.96.0.21"]),
        [("spec.clusterIPs", INVALID)],
    ),
    (
        "affinity timeout too long",
        put("spec/sessionAffinityConfig/clientIP/timeoutSeconds", 86401),
        [("spec.sessionAffinityConfig.clientIP.timeoutSeconds", INVALID)],
    ),
    (
        "affinity config without ClientIP",
        put("spec/sessionAffinity", "None"),
        [("spec.sessionAffinityConfig", FORBIDDEN)],
    ),
    ("affinity timeout defaulted", drop("spec/sessionAffinityConfig"), []),
    (
        "traffic policy on internal service",
        both(put("spec/type", "ClusterIP"), drop("spec/ports/0/nodePort")),
        [("spec.externalTrafficPolicy", INVALID)],
    ),
    (
        "loopback external IP",
        put("spec/externalIPs", ["127.0.0.1"]),
        [("spec.externalIPs[0]", INVALID)],
    ),
    ("bad selector", put("spec/selector/app", "web server"), [("spec.selector", INVALID)]),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_service(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Service", mutation) == expected


UPDATES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("cluster IP changed", put("spec/clusterIP", "10.96.0.99"), [("spec.clusterIP", INVALID)]),
    ("cluster IP left out", drop("spec/clusterIP"), []),
    ("ports changed", put("spec/ports/1/port", 9100), []),
    (
        "to ExternalName",
        put("spec", {"type": "ExternalName", "externalName": "web.example.com"}),
        [],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in UPDATES], ids=[c[0] for c in UPDATES]
)
def test_service_update(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert update_causes("Service", mutation) == expected


def test_realistic_service_is_valid() -> None:
    assert validate("Service", service()) == []


def test_cluster_ip_immutable_message() -> None:
    [cause] = validate(
        "Service", mutated("Service", put("spec/clusterIP", "10.96.0.99")), service()
    )
    assert cause.message == 'Invalid value: "10.96.0.99": field is immutable'


def test_service_port_required_message() -> None:
    [cause] = validate("Service", mutated("Service", put("spec/ports", [])))
    assert (cause.field, cause.message) == ("spec.ports", "Required value")


EP = "subsets/0"
EPP = "subsets[0]"

ENDPOINT_CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "address not an IP",
        put(f"{EP}/addresses/0/ip", "10.244.1"),
        [(f"{EPP}.addresses[0].ip", INVALID)],
    ),
    (
        "loopback address",
        put(f"{EP}/addresses/0/ip", "127.0.0.1"),
        [(f"{EPP}.addresses[0].ip", INVALID)],
    ),
    (
        "link-local IPv6",
        put(f"{EP}/notReadyAddresses/0/ip", "fe80::1"),
        [(f"{EPP}.notReadyAddresses[0].ip", INVALID)],
    ),
    (
        "no addresses at all",
        both(drop(f"{EP}/addresses"), drop(f"{EP}/notReadyAddresses")),
        [(EPP, REQUIRED)],
    ),
    (
        "bad hostname",
        put(f"{EP}/notReadyAddresses/0/hostname", "web.1"),
        [(f"{EPP}.notReadyAddresses[0].hostname", INVALID)],
    ),
    ("unnamed port among many", drop(f"{EP}/ports/1/name"), [(f"{EPP}.ports[1].name", REQUIRED)]),
    ("bad port", put(f"{EP}/ports/0/port", 65536), [(f"{EPP}.ports[0].port", INVALID)]),
    (
        "bad app protocol",
        append(f"{EP}/ports", {"name": "grpc", "port": 9000, "appProtocol": "a b"}),
        [(f"{EPP}.ports[2].appProtocol", INVALID)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in ENDPOINT_CASES], ids=[c[0] for c in ENDPOINT_CASES]
)
def test_endpoints(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Endpoints", mutation) == expected
