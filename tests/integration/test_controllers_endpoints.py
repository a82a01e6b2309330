"""The endpoints controller against a real API server.

There are no node agents here: the test plays the agent, reporting pods
Running with an IP and a Ready condition through the status subresource.
"""

from __future__ import annotations

from typing import Any

from controlplane.controllers.endpoints import EndpointsController
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.objects import Obj
from tests.integration.test_controllers_harness import (
    ENDPOINTS,
    PODS,
    SERVICES,
    bare_pod,
    container,
    running,
    set_ready,
)
from tests.support import eventually


def _service(name: str, selector: dict[str, str], ports: list[Obj], **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"team": "web"}},
        "spec": {"selector": selector, "ports": ports, **spec},
    }


def _pod(name: str, port_name: str, number: int) -> Obj:
    pod = bare_pod(name, {"app": "web"})
    pod["spec"]["containers"] = [
        container(ports=[{"name": port_name, "containerPort": number, "protocol": "TCP"}])
    ]
    return pod


async def _subsets(client: Client, namespace: str, name: str) -> list[Obj] | None:
    try:
        endpoints = await client.get(ENDPOINTS, name, namespace)
    except ApiError as error:
        if error.code == 404:
            return None
        raise
    subsets: list[Obj] = endpoints.get("subsets") or []
    return subsets


def _ips(subsets: list[Obj] | None, field: str = "addresses") -> list[str]:
    return sorted(a["ip"] for s in subsets or [] for a in s.get(field) or [])


async def test_endpoints_list_ready_pods_and_follow_readiness(
    client: Client, namespace: str
) -> None:
    ports = [{"name": "http", "port": 80, "targetPort": "web"}, {"name": "admin", "port": 9000}]
    await client.create(SERVICES, _service("web", {"app": "web"}, ports), namespace)
    a = await client.create(PODS, _pod("a", "web", 8080), namespace)
    b = await client.create(PODS, _pod("b", "web", 8080), namespace)
    c = await client.create(PODS, _pod("c", "www", 8081), namespace)  # names its port otherwise
    await client.create(PODS, bare_pod("unrelated", {"app": "db"}), namespace)
    async with running(client, namespace, EndpointsController):
        await set_ready(client, a, "10.9.0.1")
        await set_ready(client, b, "10.9.0.2", ready=False)
        await set_ready(client, c, "10.9.0.3")

        async def listed() -> list[Obj] | None:
            subsets = await _subsets(client, namespace, "web")
            if _ips(subsets) == ["10.9.0.1", "10.9.0.3"] and _ips(subsets, "notReadyAddresses") == [
                "10.9.0.2"
            ]:
                return subsets
            return None

        subsets: list[Obj] = await eventually(listed, message="a and c ready, b not ready")
        by_ports = {tuple((p["name"], p["port"]) for p in s["ports"]): s for s in subsets}
        # c has no port named "web": it serves only the numeric admin port.
        assert set(by_ports) == {(("http", 8080), ("admin", 9000)), (("admin", 9000),)}
        both = by_ports[(("http", 8080), ("admin", 9000))]
        assert both["addresses"][0]["targetRef"] == {
            "kind": "Pod",
            "namespace": namespace,
            "name": "a",
            "uid": a["metadata"]["uid"],
        }
        endpoints = await client.get(ENDPOINTS, "web", namespace)
        assert endpoints["metadata"]["labels"] == {"team": "web"}

        await set_ready(client, b, "10.9.0.2")
        await set_ready(client, a, "10.9.0.1", ready=False)

        async def swapped() -> bool:
            subsets = await _subsets(client, namespace, "web")
            return _ips(subsets) == ["10.9.0.2", "10.9.0.3"] and _ips(
                subsets, "notReadyAddresses"
            ) == ["10.9.0.1"]

        await eventually(swapped, message="readiness followed")

        await client.delete(PODS, "c", namespace)
        await eventually(
            lambda: _ips_of(client, namespace, "web", ["10.9.0.2"]), message="c removed"
        )
        await client.delete(SERVICES, "web", namespace)

        async def removed() -> bool:
            return await _subsets(client, namespace, "web") is None

        await eventually(removed, message="endpoints removed with the service")


async def test_publish_not_ready_addresses_and_selectorless_services(
    client: Client, namespace: str
) -> None:
    ports = [{"port": 5432}]
    await client.create(
        SERVICES,
        _service("db", {"app": "web"}, ports, publishNotReadyAddresses=True, clusterIP="None"),
        namespace,
    )
    await client.create(SERVICES, _service("external", {}, ports), namespace)
    manual = {
        "metadata": {"name": "external"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}],
    }
    await client.create(ENDPOINTS, manual, namespace)
    pod = await client.create(PODS, _pod("p", "pg", 5432), namespace)
    async with running(client, namespace, EndpointsController):
        await set_ready(client, pod, "10.9.1.1", ready=False)
        await eventually(
            lambda: _ips_of(client, namespace, "db", ["10.9.1.1"]), message="not-ready published"
        )
        endpoints = await client.get(ENDPOINTS, "db", namespace)
        assert endpoints["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
        # A Service without a selector keeps the Endpoints its user wrote.
        assert _ips(await _subsets(client, namespace, "external")) == ["192.0.2.10"]


async def _ips_of(client: Client, namespace: str, name: str, want: list[str]) -> bool:
    return _ips(await _subsets(client, namespace, name)) == want
