"""``corral describe`` for the kinds test_describe.py leaves out: storage, namespaces,
config maps and disruption budgets, each in kubectl 1.32's layout, whole."""

from __future__ import annotations

from corral.objects import Obj
from tests.unit.cli.test_describe import FakeClient, pod, run_describe, utc

__all__ = ["utc"]  # The fixture pins TZ, so the layouts' times read the same everywhere.

PV: Obj = {
    "apiVersion": "v1",
    "kind": "PersistentVolume",
    "metadata": {
        "name": "pv-data",
        "uid": "uid-pv",
        "labels": {"type": "local"},
        "finalizers": ["kubernetes.io/pv-protection"],
    },
    "spec": {
        "storageClassName": "local",
        "claimRef": {"namespace": "default", "name": "data"},
        "persistentVolumeReclaimPolicy": "Delete",
        "accessModes": ["ReadWriteOnce", "ReadWriteOncePod"],
        "capacity": {"storage": "1024Mi"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": ["node-1"],
                            }
                        ]
                    }
                ]
            }
        },
        "local": {"path": "/var/lib/corral/volumes/pv-data"},
    },
    "status": {"phase": "Bound"},
}
PVC: Obj = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {
        "name": "data",
        "namespace": "default",
        "uid": "uid-pvc",
        "finalizers": ["kubernetes.io/pvc-protection"],
    },
    "spec": {
        "storageClassName": "local",
        "volumeName": "pv-data",
        "accessModes": ["ReadWriteOnce"],
    },
    "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]},
}
STORAGE_CLASS: Obj = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "local",
        "uid": "uid-sc",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "corral.io/local",
    "parameters": {"root": "/var/lib/corral/volumes"},
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}


def storage_client() -> FakeClient:
    user = pod("db-0")
    user["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    return FakeClient(PV, PVC, STORAGE_CLASS, user, pod("web-1"))


def test_persistent_volume() -> None:
    code, out, err = run_describe(storage_client(), "pv", "pv-data")
    assert (code, err) == (0, "")
    assert out == (
        "Name:              pv-data\n"
        "Labels:            type=local\n"
        "Annotations:       <none>\n"
        "Finalizers:        [kubernetes.io/pv-protection]\n"
        "StorageClass:      local\n"
        "Status:            Bound\n"
        "Claim:             default/data\n"
        "Reclaim Policy:    Delete\n"
        "Access Modes:      RWO,RWOP\n"
        "VolumeMode:        Filesystem\n"
        "Capacity:          1Gi\n"
        "Node Affinity:     \n"
        "  Required Terms:  \n"
        "    Term 0:        kubernetes.io/hostname in [node-1]\n"
        "Message:           \n"
        "Source:\n"
        "  Type:    LocalVolume (a persistent volume backed by local storage on a node)\n"
        "    Path:  /var/lib/corral/volumes/pv-data\n"
        "Events:    <none>\n"
    )


def test_persistent_volume_claim_names_the_pods_that_use_it() -> None:
    code, out, err = run_describe(storage_client(), "pvc", "data")
    assert (code, err) == (0, "")
    assert out == (
        "Name:          data\n"
        "Namespace:     default\n"
        "StorageClass:  local\n"
        "Status:        Bound\n"
        "Volume:        pv-data\n"
        "Labels:        <none>\n"
        "Annotations:   <none>\n"
        "Finalizers:    [kubernetes.io/pvc-protection]\n"
        "Capacity:      1Gi\n"
        "Access Modes:  RWO\n"
        "VolumeMode:    Filesystem\n"
        "Used By:       db-0\n"
        "Events:        <none>\n"
    )


def test_storage_class() -> None:
    code, out, err = run_describe(storage_client(), "storageclass", "local")
    assert (code, err) == (0, "")
    assert out == (
        "Name:                  local\n"
        "IsDefaultClass:        Yes\n"
        "Annotations:           storageclass.kubernetes.io/is-default-class: true\n"
        "Provisioner:           corral.io/local\n"
        "Parameters:            root=/var/lib/corral/volumes\n"
        "AllowVolumeExpansion:  <unset>\n"
        "MountOptions:          <none>\n"
        "ReclaimPolicy:         Delete\n"
        "VolumeBindingMode:     WaitForFirstConsumer\n"
        "Events:                <none>\n"
    )


NAMESPACE: Obj = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {
        "name": "shop",
        "uid": "uid-ns",
        "labels": {"kubernetes.io/metadata.name": "shop"},
    },
    "status": {"phase": "Active"},
}
CONFIG_MAP: Obj = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "app-config", "namespace": "default", "uid": "uid-cm"},
    "data": {"mode": "production", "motd": "hello\nworld"},
    "binaryData": {"logo.png": "iVBORw0KGgo="},
}
BUDGET: Obj = {
    "apiVersion": "policy/v1",
    "kind": "PodDisruptionBudget",
    "metadata": {"name": "web", "namespace": "default", "uid": "uid-pdb"},
    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    "status": {
        "disruptionsAllowed": 1,
        "currentHealthy": 3,
        "desiredHealthy": 2,
        "expectedPods": 3,
    },
}


def test_namespace() -> None:
    code, out, _ = run_describe(FakeClient(NAMESPACE), "namespace", "shop")
    assert code == 0
    assert out == (
        "Name:         shop\n"
        "Labels:       kubernetes.io/metadata.name=shop\n"
        "Annotations:  <none>\n"
        "Status:       Active\n"
    )


def test_config_map_shows_values_and_only_the_size_of_binary_data() -> None:
    code, out, _ = run_describe(FakeClient(CONFIG_MAP), "configmap", "app-config")
    assert code == 0
    assert out == (
        "Name:         app-config\n"
        "Namespace:    default\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "\n"
        "Data\n"
        "====\n"
        "mode:\n"
        "----\n"
        "production\n"
        "\n"
        "motd:\n"
        "----\n"
        "hello\n"
        "world\n"
        "\n"
        "\n"
        "BinaryData\n"
        "====\n"
        "logo.png: 8 bytes\n"
        "\n"
        "Events:  <none>\n"
    )


def test_pod_disruption_budget() -> None:
    code, out, _ = run_describe(FakeClient(BUDGET), "pdb", "web")
    assert code == 0
    assert out == (
        "Name:           web\n"
        "Namespace:      default\n"
        "Min available:  2\n"
        "Selector:       app=web\n"
        "Status:\n"
        "    Allowed disruptions:  1\n"
        "    Current:              3\n"
        "    Desired:              2\n"
        "    Total:                3\n"
        "Events:                   <none>\n"
    )
