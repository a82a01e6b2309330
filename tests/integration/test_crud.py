"""Create, read, update, patch and delete against a real etcd, with Kubernetes' rules."""

from __future__ import annotations

import pytest

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.rest import Client
from corral.objects import Obj


def rt(name: str) -> ResourceType:
    found = REGISTRY.resolve(name)
    assert found is not None
    return found


PODS = rt("pods")
RCS = rt("rc")
NAMESPACES = rt("namespaces")
DEPLOYMENTS = rt("deployments")
SECRETS = rt("secrets")


def pod(name: str, **labels: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
    }


def rc(name: str, replicas: int = 1) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
            },
        },
    }


async def test_create_sets_server_fields_and_defaults(client: Client, namespace: str) -> None:
    created = await client.create(PODS, pod("p1"), namespace)
    metadata = created["metadata"]
    assert metadata["uid"]
    assert metadata["creationTimestamp"].endswith("Z")
    assert int(metadata["resourceVersion"]) > 0
    assert metadata["namespace"] == namespace
    assert created["spec"]["restartPolicy"] == "Always"
    assert created["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    fetched = await client.get(PODS, "p1", namespace)
    assert fetched == created


async def test_create_existing_name_is_already_exists(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("p1"), namespace)
    with pytest.raises(ApiError) as caught:
        await client.create(PODS, pod("p1"), namespace)
    assert caught.value.code == 409
    assert caught.value.reason == "AlreadyExists"
    assert 'pods "p1" already exists' in caught.value.message


async def test_generate_name(client: Client, namespace: str) -> None:
    body = pod("x")
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "web-"
    first = await client.create(PODS, body, namespace)
    second = await client.create(PODS, body, namespace)
    assert first["metadata"]["name"].startswith("web-")
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_namespace_must_exist(client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        await client.create(PODS, pod("p1"), "no-such-namespace")
    assert caught.value.code == 404
    assert 'namespaces "no-such-namespace" not found' in caught.value.message


async def test_default_namespaces_exist(client: Client) -> None:
    names = {n["metadata"]["name"] for n in (await client.list(NAMESPACES))["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


async def test_stale_resource_version_is_conflict(client: Client, namespace: str) -> None:
    created = await client.create(RCS, rc("web"), namespace)
    first = dict(created, spec={**created["spec"], "replicas": 2})
    updated = await client.replace(RCS, first, namespace)
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    stale = dict(created, spec={**created["spec"], "replicas": 3})
    with pytest.raises(ApiError) as caught:
        await client.replace(RCS, stale, namespace)
    assert caught.value.code == 409
    assert caught.value.reason == "Conflict"
    assert (await client.get(RCS, "web", namespace))["spec"]["replicas"] == 2


async def test_update_bumps_generation_only_on_spec_change(client: Client, namespace: str) -> None:
    created = await client.create(RCS, rc("web"), namespace)
    assert created["metadata"]["generation"] == 1
    labelled = await client.patch(RCS, "web", {"metadata": {"labels": {"a": "b"}}}, namespace)
    assert labelled["metadata"]["generation"] == 1
    scaled = await client.patch(RCS, "web", {"spec": {"replicas": 4}}, namespace)
    assert scaled["metadata"]["generation"] == 2


async def test_main_resource_ignores_status_and_status_ignores_spec(
    client: Client, namespace: str
) -> None:
    await client.create(RCS, rc("web"), namespace)
    patched = await client.patch(
        RCS, "web", {"spec": {"replicas": 3}, "status": {"replicas": 7}}, namespace
    )
    assert patched["spec"]["replicas"] == 3
    assert patched["status"]["replicas"] == 0
    via_status = await client.patch(
        RCS,
        "web",
        {"spec": {"replicas": 9}, "status": {"replicas": 7}},
        namespace,
        subresource="status",
    )
    assert via_status["spec"]["replicas"] == 3
    assert via_status["status"]["replicas"] == 7


async def test_noop_update_keeps_resource_version(client: Client, namespace: str) -> None:
    created = await client.create(RCS, rc("web"), namespace)
    same = await client.replace(RCS, created, namespace)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_patch_types(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("p1"), namespace)
    merged = await client.patch(
        PODS, "p1", {"metadata": {"labels": {"tier": "front"}}}, namespace, patch_type="merge"
    )
    assert merged["metadata"]["labels"] == {"app": "web", "tier": "front"}
    json_patched = await client.patch(
        PODS,
        "p1",
        [{"op": "remove", "path": "/metadata/labels/tier"}],
        namespace,
        patch_type="json",
    )
    assert json_patched["metadata"]["labels"] == {"app": "web"}
    strategic = await client.patch(
        PODS,
        "p1",
        {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}},
        namespace,
        patch_type="strategic",
    )
    assert strategic["spec"]["containers"][0]["image"] == "busybox:2"
    assert strategic["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


async def test_patch_with_stale_resource_version_is_conflict(
    client: Client, namespace: str
) -> None:
    created = await client.create(PODS, pod("p1"), namespace)
    await client.patch(PODS, "p1", {"metadata": {"labels": {"x": "1"}}}, namespace)
    with pytest.raises(ApiError) as caught:
        await client.patch(
            PODS,
            "p1",
            {
                "metadata": {
                    "labels": {"x": "2"},
                    "resourceVersion": created["metadata"]["resourceVersion"],
                }
            },
            namespace,
        )
    assert caught.value.code == 409


async def test_pod_spec_is_immutable_but_image_is_not(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("p1"), namespace)
    with pytest.raises(ApiError) as caught:
        await client.patch(PODS, "p1", {"spec": {"restartPolicy": "Never"}}, namespace)
    assert caught.value.code == 422
    assert any(c.field.startswith("spec") for c in caught.value.causes)


async def test_dry_run_stores_nothing(client: Client, namespace: str) -> None:
    created = await client.create(PODS, pod("p1"), namespace, dry_run=True)
    assert created["metadata"]["name"] == "p1"
    with pytest.raises(ApiError) as caught:
        await client.get(PODS, "p1", namespace)
    assert caught.value.code == 404


async def test_delete_returns_object_and_removes_it(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("p1"), namespace)
    deleted = await client.delete(PODS, "p1", namespace, grace_period_seconds=0)
    assert deleted["metadata"]["name"] == "p1"
    with pytest.raises(ApiError):
        await client.get(PODS, "p1", namespace)


async def test_finalizers_hold_deletion_until_removed(client: Client, namespace: str) -> None:
    body = rc("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create(RCS, body, namespace)
    terminating = await client.delete(RCS, "held", namespace)
    assert terminating["metadata"]["deletionTimestamp"]
    still = await client.get(RCS, "held", namespace)
    assert still["metadata"]["finalizers"] == ["example.com/hold"]
    await client.patch(RCS, "held", {"metadata": {"finalizers": None}}, namespace)
    with pytest.raises(ApiError) as caught:
        await client.get(RCS, "held", namespace)
    assert caught.value.code == 404


async def test_bound_pod_deletes_gracefully(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("p1"), namespace)
    await client.subresource(
        PODS,
        "p1",
        "binding",
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "p1"},
            "target": {"kind": "Node", "name": "node-a"},
        },
        namespace,
    )
    bound = await client.get(PODS, "p1", namespace)
    assert bound["spec"]["nodeName"] == "node-a"
    assert any(
        c["type"] == "PodScheduled" and c["status"] == "True" for c in bound["status"]["conditions"]
    )
    deleting = await client.delete(PODS, "p1", namespace)
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 30
    # The node agent confirms termination with a zero grace period.
    await client.delete(PODS, "p1", namespace, grace_period_seconds=0)
    with pytest.raises(ApiError):
        await client.get(PODS, "p1", namespace)


async def test_binding_twice_is_conflict(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("p1"), namespace)
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p1"},
        "target": {"kind": "Node", "name": "node-a"},
    }
    await client.subresource(PODS, "p1", "binding", binding, namespace)
    with pytest.raises(ApiError) as caught:
        await client.subresource(PODS, "p1", "binding", binding, namespace)
    assert caught.value.code == 409
    assert "already assigned" in caught.value.message


async def test_scale_subresource(client: Client, namespace: str) -> None:
    await client.create(RCS, rc("web", 2), namespace)
    scale = await client.request(
        "GET", f"/api/v1/namespaces/{namespace}/replicationcontrollers/web/scale"
    )
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=web"
    patched = await client.patch(
        RCS, "web", {"spec": {"replicas": 5}}, namespace, subresource="scale"
    )
    assert patched["spec"]["replicas"] == 5
    assert (await client.get(RCS, "web", namespace))["spec"]["replicas"] == 5


async def test_secret_string_data_is_folded_into_data(client: Client, namespace: str) -> None:
    created = await client.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "stringData": {"password": "hunter2"},
        },
        namespace,
    )
    assert created["data"] == {"password": "aHVudGVyMg=="}
    assert "stringData" not in created


async def test_apps_group_paths(client: Client, namespace: str) -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
            },
        },
    }
    created = await client.create(DEPLOYMENTS, body, namespace)
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"
    assert created["spec"]["revisionHistoryLimit"] == 10
    scaled = await client.patch(
        DEPLOYMENTS, "d", {"spec": {"replicas": 3}}, namespace, subresource="scale"
    )
    assert scaled["status"]["selector"] == "app=d"
