"""Building Endpoints: port resolution, readiness, grouping into subsets."""

from __future__ import annotations

from typing import Any

from controlplane.controllers.endpoints import build_subsets, resolve_port
from corral.objects import Obj


def service(ports: list[Obj], **spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"ports": ports, **spec}}


def pod(
    name: str,
    ip: str | None,
    *,
    ready: bool = True,
    ports: list[Obj] | None = None,
    **extra: Any,
) -> Obj:
    status: Obj = {
        "phase": extra.pop("phase", "Running"),
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    metadata: Obj = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    if "deletionTimestamp" in extra:
        metadata["deletionTimestamp"] = extra.pop("deletionTimestamp")
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "c", "ports": ports or []}], **extra},
        "status": status,
    }


def test_target_port_by_number_or_by_name_and_protocol() -> None:
    p = pod(
        "p",
        "10.0.0.1",
        ports=[
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
        ],
    )
    assert resolve_port(p, {"port": 80, "targetPort": 9090}) == 9090
    assert resolve_port(p, {"port": 80, "targetPort": "http"}) == 8080
    assert resolve_port(p, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 5353
    assert resolve_port(p, {"port": 53, "targetPort": "dns", "protocol": "TCP"}) is None
    assert resolve_port(p, {"port": 80, "targetPort": "missing"}) is None
    assert resolve_port(p, {"port": 80}) == 80  # targetPort defaults to port


def test_ready_and_not_ready_addresses_sorted_and_referenced() -> None:
    pods = [
        pod("b", "10.0.0.2", ports=[{"name": "http", "containerPort": 8080}], nodeName="n2"),
        pod("a", "10.0.0.1", ports=[{"name": "http", "containerPort": 8080}]),
        pod("c", "10.0.0.3", ready=False, ports=[{"name": "http", "containerPort": 8080}]),
        pod("no-ip", None, ports=[{"name": "http", "containerPort": 8080}]),
        pod("done", "10.0.0.9", phase="Succeeded", ports=[{"name": "http", "containerPort": 8080}]),
        pod(
            "going",
            "10.0.0.8",
            deletionTimestamp="2026-01-01T00:00:00Z",
            ports=[{"name": "http", "containerPort": 8080}],
        ),
    ]
    (subset,) = build_subsets(service([{"name": "web", "port": 80, "targetPort": "http"}]), pods)
    assert [a["ip"] for a in subset["addresses"]] == ["10.0.0.1", "10.0.0.2"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.0.0.3"]
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert subset["addresses"][1]["nodeName"] == "n2"
    assert subset["addresses"][0]["targetRef"] == {
        "kind": "Pod",
        "namespace": "ns",
        "name": "a",
        "uid": "uid-a",
    }


def test_pods_resolving_different_ports_land_in_different_subsets() -> None:
    ports = [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "m", "port": 9100}]
    pods = [
        pod("new", "10.0.0.1", ports=[{"name": "http", "containerPort": 8080}]),
        pod("old", "10.0.0.2", ports=[{"name": "web", "containerPort": 80}]),
    ]
    subsets = build_subsets(service(ports), pods)
    by_ips = {tuple(a["ip"] for a in s["addresses"]): s["ports"] for s in subsets}
    assert by_ips == {
        ("10.0.0.1",): [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "m", "port": 9100, "protocol": "TCP"},
        ],
        ("10.0.0.2",): [{"name": "m", "port": 9100, "protocol": "TCP"}],
    }


def test_publish_not_ready_addresses_lists_everything_as_ready() -> None:
    pods = [
        pod("a", "10.0.0.1", ready=False),
        pod("b", "10.0.0.2", deletionTimestamp="2026-01-01T00:00:00Z"),
    ]
    (subset,) = build_subsets(service([{"port": 80}], publishNotReadyAddresses=True), pods)
    assert [a["ip"] for a in subset["addresses"]] == ["10.0.0.1", "10.0.0.2"]
    assert "notReadyAddresses" not in subset


def test_headless_services_may_have_no_ports_and_hostnames_are_published() -> None:
    pods = [pod("a", "10.0.0.1", hostname="db-0", subdomain="web")]
    (subset,) = build_subsets(service([], clusterIP="None"), pods)
    assert "ports" not in subset
    assert subset["addresses"][0]["hostname"] == "db-0"
    assert build_subsets(service([]), pods) == []
