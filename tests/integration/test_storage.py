"""PersistentVolumes, claims and classes against a real API server, with the storage controllers.

The test plays the scheduler (it writes ``volume.kubernetes.io/selected-node``)
and the node agent (it lifts ``corral.io/local-volume-cleanup``) where a flow
needs them; the e2e tests run the real ones.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.controllers.persistentvolume import PersistentVolumeController
from controlplane.controllers.volumeprotection import VolumeProtectionController
from corral import volumebinding as vb
from corral.api.errors import ApiError
from corral.api.storage import LOCAL_CLEANUP_FINALIZER, SELECTED_NODE_ANNOTATION
from corral.client.rest import Client
from corral.objects import Obj
from tests.integration.test_controllers_harness import PODS, rt, running
from tests.integration.test_kubectl import kubectl
from tests.support import eventually

PVS = rt("PersistentVolume")
PVCS = rt("PersistentVolumeClaim")
CLASSES = rt("StorageClass", "storage.k8s.io/v1")


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{os.urandom(3).hex()}"


def claim(name: str, cls: str | None, size: str = "1Gi") -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": spec,
    }


def static_volume(name: str, cls: str, size: str, policy: str = "Retain") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": cls,
            "local": {"path": name},
            "nodeAffinity": vb.pinned_to("node-a"),
        },
    }


def storage_class(name: str, provisioner: str = "corral.io/local", policy: str = "Delete") -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "reclaimPolicy": policy,
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def pod_using(name: str, claim_name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "app", "image": "busybox:1.36"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


async def phase(client: Client, rt_: Any, name: str, namespace: str | None = None) -> str:
    try:
        found = await client.get(rt_, name, namespace)
    except ApiError as error:
        if error.code == 404:
            return "<gone>"
        raise
    return str((found.get("status") or {}).get("phase") or "")


async def test_the_default_class_exists_and_claims_without_a_class_get_it(
    client: Client, namespace: str
) -> None:
    default = await client.get(CLASSES, "corral-local")
    assert default["provisioner"] == "corral.io/local"
    assert default["volumeBindingMode"] == "WaitForFirstConsumer"
    assert default["reclaimPolicy"] == "Delete"
    assert (
        default["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    )
    made = await client.create(PVCS, claim("data", None), namespace)
    assert made["spec"]["storageClassName"] == "corral-local"
    assert made["status"] == {"phase": "Pending"}
    assert made["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    # "" is an explicit "no class" and stays so.
    none = await client.create(PVCS, claim("none", ""), namespace)
    assert none["spec"].get("storageClassName", "") == ""


async def test_invalid_claims_are_422_naming_the_field(client: Client, namespace: str) -> None:
    bad = claim("bad", "corral-local")
    bad["spec"]["resources"] = {"requests": {}}
    with pytest.raises(ApiError) as refused:
        await client.create(PVCS, bad, namespace)
    assert refused.value.code == 422
    assert [c.field for c in refused.value.causes] == ["spec.resources[storage]"]
    made = await client.create(PVCS, claim("fixed", "corral-local"), namespace)
    made["spec"]["accessModes"] = ["ReadWriteMany"]
    with pytest.raises(ApiError) as immutable:
        await client.replace(PVCS, made, namespace)
    assert immutable.value.code == 422 and immutable.value.causes[0].field == "spec"


async def test_static_binding_picks_the_smallest_fitting_volume_and_retain_keeps_it(
    client: Client, namespace: str
) -> None:
    cls = unique("static")
    big, snug = unique("big"), unique("snug")
    # Immediate binding: the binder needs no scheduler.
    immediate = storage_class(cls + "-now", "kubernetes.io/no-provisioner", "Retain")
    immediate["volumeBindingMode"] = "Immediate"
    await client.create(CLASSES, immediate)
    await client.create(PVS, static_volume(big, cls + "-now", "10Gi"))
    await client.create(PVS, static_volume(snug, cls + "-now", "2Gi"))
    await client.create(PVCS, claim("data", cls + "-now"), namespace)
    async with running(client, namespace, PersistentVolumeController, VolumeProtectionController):
        await eventually(
            lambda: _bound(client, namespace, "data", snug), message="claim bound", timeout=15
        )
        volume = await client.get(PVS, snug)
        assert volume["spec"]["claimRef"]["name"] == "data"
        assert (await client.get(PVS, big))["status"]["phase"] == "Available"
        bound = await client.get(PVCS, "data", namespace)
        assert bound["status"]["capacity"] == {"storage": "2Gi"}
        assert bound["status"]["accessModes"] == ["ReadWriteOnce"]
        await client.delete(PVCS, "data", namespace)
        await eventually(lambda: _is(client, PVS, snug, "Released"), message="Released", timeout=15)
        # Retain: the volume and its claimRef stay; nothing binds to it again.
        await asyncio.sleep(0.5)
        assert await phase(client, PVS, snug) == "Released"
    for name in (big, snug):
        await client.delete(PVS, name)


async def _bound(client: Client, namespace: str, name: str, volume: str) -> bool:
    found = await client.get(PVCS, name, namespace)
    return (
        found["spec"].get("volumeName") == volume
        and (found.get("status") or {}).get("phase") == "Bound"
        and await phase(client, PVS, volume) == "Bound"
    )


async def _is(client: Client, rt_: Any, name: str, want: str, namespace: str | None = None) -> bool:
    return await phase(client, rt_, name, namespace) == want


async def test_a_waiting_claim_is_provisioned_on_its_selected_node_and_deleted_with_it(
    client: Client, namespace: str
) -> None:
    await client.create(PVCS, claim("data", "corral-local"), namespace)
    async with running(client, namespace, PersistentVolumeController, VolumeProtectionController):
        await asyncio.sleep(0.5)
        # WaitForFirstConsumer: nothing happens before a pod is placed.
        assert await phase(client, PVCS, "data", namespace) == "Pending"
        # Play the scheduler's PreBind.
        await client.patch(
            PVCS,
            "data",
            {"metadata": {"annotations": {SELECTED_NODE_ANNOTATION: "node-b"}}},
            namespace,
        )
        found = await client.get(PVCS, "data", namespace)
        name = f"pvc-{found['metadata']['uid']}"
        await eventually(
            lambda: _bound(client, namespace, "data", name), message="bound", timeout=15
        )
        volume = await client.get(PVS, name)
        assert volume["spec"]["local"] == {"path": name}
        assert vb.pinned_node(volume) == "node-b"
        assert (
            volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"]
            == "corral.io/local"
        )
        assert set(volume["metadata"]["finalizers"]) == {
            LOCAL_CLEANUP_FINALIZER,
            "kubernetes.io/pv-protection",
        }
        await client.delete(PVCS, "data", namespace)

        async def only_cleanup_left() -> bool:
            found = await client.get(PVS, name)
            return bool(found["metadata"].get("deletionTimestamp")) and found["metadata"].get(
                "finalizers"
            ) == [LOCAL_CLEANUP_FINALIZER]

        # Delete policy: the volume goes, held only by the node agent's cleanup.
        await eventually(only_cleanup_left, message="volume terminating", timeout=15)
        # Play the agent: the directory is gone, so the finalizer goes.
        await client.patch(PVS, name, {"metadata": {"finalizers": []}})
        await eventually(lambda: _is(client, PVS, name, "<gone>"), message="volume gone")


async def test_pvc_protection_keeps_a_claim_while_a_pod_uses_it(
    client: Client, namespace: str
) -> None:
    await client.create(PVCS, claim("data", "corral-local"), namespace)
    await client.create(PODS, pod_using("user", "data"), namespace)
    async with running(client, namespace, PersistentVolumeController, VolumeProtectionController):
        await client.delete(PVCS, "data", namespace)
        await asyncio.sleep(1.0)
        kept = await client.get(PVCS, "data", namespace)
        assert kept["metadata"]["deletionTimestamp"]
        assert kept["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        await client.delete(PODS, "user", namespace)
        await eventually(
            lambda: _is(client, PVCS, "data", "<gone>", namespace), message="claim gone"
        )


async def test_kubectl_and_the_python_client_see_volumes(
    client: Client, namespace: str, kubectl_env: dict[str, str], cluster: Any
) -> None:
    cls = unique("kc")
    immediate = storage_class(cls, "kubernetes.io/no-provisioner", "Retain")
    immediate["volumeBindingMode"] = "Immediate"
    await client.create(CLASSES, immediate)
    pv = unique("pv")
    await client.create(PVS, static_volume(pv, cls, "3Gi"))
    await client.create(PVCS, claim("data", cls), namespace)
    async with running(client, namespace, PersistentVolumeController):
        await eventually(lambda: _bound(client, namespace, "data", pv), message="bound", timeout=15)
    got = kubectl(kubectl_env, "get", "pv,pvc,sc", "-n", namespace).stdout
    lines = got.splitlines()
    pv_line = next(line for line in lines if line.startswith(f"persistentvolume/{pv} "))
    assert pv_line.split()[1:6] == ["3Gi", "RWO", "Retain", "Bound", f"{namespace}/data"], got
    pvc_line = next(line for line in lines if line.startswith("persistentvolumeclaim/data "))
    assert pvc_line.split()[1:6] == ["Bound", pv, "3Gi", "RWO", cls], got
    sc_line = next(line for line in lines if "storageclass.storage.k8s.io/corral-local" in line)
    assert sc_line.split()[1:6] == [
        "(default)",
        "corral.io/local",
        "Delete",
        "WaitForFirstConsumer",
        "false",
    ], got
    described = kubectl(kubectl_env, "describe", "pvc", "data", "-n", namespace).stdout
    assert "Status:" in described and "Bound" in described and f"Volume:        {pv}" in described
    assert "kubernetes.io/pvc-protection" in described
    listed = json.loads(kubectl(kubectl_env, "get", "pv", pv, "-o", "json").stdout)
    assert listed["spec"]["claimRef"]["name"] == "data"
    await client.delete(PVS, pv)


async def test_the_official_python_client_lists_volumes_and_classes(cluster: Any) -> None:
    def call() -> tuple[list[str], list[str]]:
        api_client = k8s_config.new_client_from_config(str(cluster.kubeconfig))
        classes = k8s.StorageV1Api(api_client).list_storage_class()
        volumes = k8s.CoreV1Api(api_client).list_persistent_volume()
        return [c.metadata.name for c in classes.items], [v.metadata.name for v in volumes.items]

    classes, _ = await asyncio.to_thread(call)
    assert "corral-local" in classes
