"""Discovery, OpenAPI and docs: what clients read to learn the API."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import orjson

from corral.client.rest import Client
from tests.conftest import LocalCluster
from tests.integration.test_crud import PODS, pod


async def test_version_reports_the_kubernetes_level(client: Client) -> None:
    version = await client.request("GET", "/version")
    assert (version["major"], version["minor"]) == ("1", "32")
    assert "corral" in version["gitVersion"]


async def test_core_and_group_discovery(client: Client) -> None:
    api = await client.request("GET", "/api")
    assert api["versions"] == ["v1"]
    groups = {g["name"]: g for g in (await client.request("GET", "/apis"))["groups"]}
    assert {"apps", "policy", "coordination.k8s.io"} <= set(groups)
    core = {r["name"]: r for r in (await client.request("GET", "/api/v1"))["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"]
    assert core["replicationcontrollers/scale"]["group"] == "autoscaling"
    assert core["nodes"]["namespaced"] is False
    apps = {r["name"] for r in (await client.request("GET", "/apis/apps/v1"))["resources"]}
    assert {"deployments", "deployments/scale", "replicasets"} <= apps


async def test_openapi_v3_declares_server_side_field_validation(client: Client) -> None:
    index = await client.request("GET", "/openapi/v3")
    url = index["paths"]["api/v1"]["serverRelativeURL"]
    document = await client.request("GET", url)
    patch = document["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
    assert "Pod" in document["components"]["schemas"]


def test_docs_are_served_without_a_cdn(cluster: LocalCluster) -> None:
    with urllib.request.urlopen(f"{cluster.url}/docs", context=cluster.ssl_context()) as response:
        html = response.read().decode()
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        with urllib.request.urlopen(cluster.url + asset, context=cluster.ssl_context()) as response:
            assert response.status == 200
    with urllib.request.urlopen(
        f"{cluster.url}/openapi.json", context=cluster.ssl_context()
    ) as response:
        spec = orjson.loads(response.read())
    assert "/apis/apps/v1/namespaces/{namespace}/deployments" in spec["paths"]


def _etcd_watchers(cluster: LocalCluster) -> float:
    assert cluster.etcd is not None
    with urllib.request.urlopen(f"{cluster.etcd.endpoint}/metrics") as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("etcd_debugging_mvcc_watcher_total "):
            return float(line.split()[1])
    raise AssertionError("etcd exposes no watcher count")


async def test_many_client_watches_cost_no_etcd_watches(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    created = await client.create(PODS, pod("w"), namespace)
    before = _etcd_watchers(cluster)
    streams: list[Any] = []
    for _ in range(50):
        stream = client.watch(
            PODS, namespace, resource_version=created["metadata"]["resourceVersion"]
        )
        streams.append(stream)
    # Open every stream: each one's first event arrives after this update.
    pending = [s.__anext__() for s in streams]
    await client.patch(PODS, "w", {"metadata": {"labels": {"x": "1"}}}, namespace)
    for step in pending:
        event = await step
        assert event["type"] == "MODIFIED"
    during = _etcd_watchers(cluster)
    for stream in streams:
        await stream.aclose()
    assert during - before == 0
