"""Kubernetes protobuf bodies (corral.api.protobuf): every built-in kind round-trips
JSON -> protobuf (the generated classes) -> corral's decoder -> the same JSON."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.apiserver import http
from corral.api import protobuf, protobuf_encode
from corral.api.errors import ApiError
from corral.api.resources import RESOURCES

META = {
    "name": "x",
    "namespace": "ns",
    "uid": "0b7e5f0e-1111-4222-8333-444455556666",
    "resourceVersion": "12",
    "generation": 3,
    "creationTimestamp": "2024-05-06T07:08:09Z",
    "labels": {"app": "x"},
    "annotations": {"note": "hello"},
    "ownerReferences": [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "rs",
            "uid": "u",
            "controller": True,
        }
    ],
    "finalizers": ["example.com/keep"],
    "managedFields": [
        {
            "manager": "kubectl",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2024-05-06T07:08:09Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
        }
    ],
}
POD_SPEC: dict[str, Any] = {
    "containers": [
        {
            "name": "c",
            "image": "busybox",
            "command": ["sh", "-c", "sleep 1"],
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            "resources": {"limits": {"cpu": "250m"}, "requests": {"memory": "64Mi"}},
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "http"},
                "periodSeconds": 5,
            },
            "readinessProbe": {"tcpSocket": {"port": 8080}},
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            "securityContext": {"runAsUser": 0, "privileged": False},
        }
    ],
    "volumes": [
        {"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "conf", "configMap": {"name": "cm", "defaultMode": 420}},
    ],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 0,
    "automountServiceAccountToken": False,
    "nodeSelector": {"disk": "ssd"},
    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
    "imagePullSecrets": [{"name": "registry"}],
}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}
SELECTOR = {
    "matchLabels": {"app": "x"},
    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
}
JOB_SPEC = {"parallelism": 2, "backoffLimit": 0, "template": TEMPLATE, "suspend": False}
RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
SUBJECTS = [{"kind": "ServiceAccount", "name": "robot", "namespace": "ns"}]
ROLE_REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}

# One object of every built-in kind corral serves that Kubernetes has a protobuf message for.
OBJECTS: dict[tuple[str, str], dict[str, Any]] = {
    ("v1", "Namespace"): {"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
    ("v1", "Pod"): {
        "spec": POD_SPEC,
        "status": {"phase": "Running", "podIP": "10.0.0.2", "startTime": "2024-05-06T07:08:10Z"},
    },
    ("v1", "ReplicationController"): {
        "spec": {"replicas": 0, "selector": {"app": "x"}, "template": TEMPLATE},
    },
    ("v1", "Service"): {
        "spec": {
            "type": "NodePort",
            "selector": {"app": "x"},
            "ports": [{"name": "web", "port": 80, "targetPort": "http", "nodePort": 30080}],
            "clusterIP": "10.96.0.10",
        },
    },
    ("v1", "Endpoints"): {
        "subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 8080}]}],
    },
    ("v1", "Node"): {
        "spec": {"podCIDR": "10.0.1.0/24", "unschedulable": True},
        "status": {
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": "2024-05-06T07:08:09Z",
                    "lastTransitionTime": None,
                }
            ],
        },
    },
    ("v1", "Event"): {
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns"},
        "reason": "Started",
        "count": 2,
        "eventTime": "2024-05-06T07:08:09.123456Z",
        "firstTimestamp": "2024-05-06T07:08:09Z",
        "series": {"count": 3, "lastObservedTime": "2024-05-06T07:08:10.000001Z"},
    },
    ("v1", "ConfigMap"): {"data": {"k": "v", "empty": ""}, "binaryData": {"b": "AAEC/w=="}},
    ("v1", "Secret"): {"data": {"password": "czNjcj10"}, "type": "Opaque", "immutable": False},
    ("v1", "ServiceAccount"): {"secrets": [{"name": "tok"}], "automountServiceAccountToken": True},
    ("v1", "PersistentVolume"): {
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/srv", "type": "DirectoryOrCreate"},
            "persistentVolumeReclaimPolicy": "Delete",
        },
    },
    ("v1", "PersistentVolumeClaim"): {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    },
    ("apps/v1", "Deployment"): {
        "spec": {
            "replicas": 0,
            "selector": SELECTOR,
            "template": TEMPLATE,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
        },
        "status": {},
    },
    ("apps/v1", "ReplicaSet"): {
        "spec": {"replicas": 2, "selector": SELECTOR, "template": TEMPLATE}
    },
    ("apps/v1", "StatefulSet"): {
        "spec": {
            "serviceName": "web",
            "selector": SELECTOR,
            "template": TEMPLATE,
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
            ],
        },
    },
    ("apps/v1", "DaemonSet"): {"spec": {"selector": SELECTOR, "template": TEMPLATE}},
    ("apps/v1", "ControllerRevision"): {
        "data": {"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}},
        "revision": 4,
    },
    ("batch/v1", "Job"): {"spec": JOB_SPEC},
    ("batch/v1", "CronJob"): {
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": JOB_SPEC},
            "suspend": True,
        },
        "status": {"lastScheduleTime": "2024-05-06T07:05:00Z"},
    },
    ("policy/v1", "PodDisruptionBudget"): {"spec": {"minAvailable": "50%", "selector": SELECTOR}},
    ("coordination.k8s.io/v1", "Lease"): {
        "spec": {
            "holderIdentity": "node-a",
            "leaseDurationSeconds": 40,
            "renewTime": "2024-05-06T07:08:09.654321Z",
        },
    },
    ("storage.k8s.io/v1", "StorageClass"): {
        "provisioner": "corral.io/hostpath",
        "parameters": {"root": "/srv"},
        "reclaimPolicy": "Delete",
        "allowVolumeExpansion": False,
    },
    ("rbac.authorization.k8s.io/v1", "Role"): {"rules": RULES},
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): {
        "rules": RULES,
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]},
    },
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): {"subjects": SUBJECTS, "roleRef": ROLE_REF},
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): {
        "subjects": SUBJECTS,
        "roleRef": {**ROLE_REF, "kind": "ClusterRole"},
    },
    # Bodies of subresources and other endpoints.
    ("authentication.k8s.io/v1", "TokenRequest"): {
        "spec": {"audiences": ["api"], "expirationSeconds": 3600},
        "status": {"token": "", "expirationTimestamp": None},
    },
    ("policy/v1", "Eviction"): {"deleteOptions": {"gracePeriodSeconds": 0, "dryRun": ["All"]}},
    ("autoscaling/v1", "Scale"): {"spec": {"replicas": 3}, "status": {"replicas": 2}},
    ("meta.k8s.io/v1", "DeleteOptions"): {"propagationPolicy": "Foreground"},
}
# Served kinds that have no upstream message: their bodies are JSON only.
NO_PROTOBUF = {
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("metrics.k8s.io/v1beta1", "NodeMetrics"),
    ("metrics.k8s.io/v1beta1", "PodMetrics"),
}


def _whole(api_version: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    meta = {} if kind == "DeleteOptions" else {"metadata": META}
    return {"kind": kind, "apiVersion": api_version, **meta, **body}


def test_every_served_built_in_kind_has_an_object_here() -> None:
    served = {(r.api_version, r.kind) for r in RESOURCES}
    assert served - NO_PROTOBUF <= set(OBJECTS)
    for api_version, kind in NO_PROTOBUF:
        assert protobuf.message_class(api_version, kind) is None


@pytest.mark.parametrize("gvk", sorted(OBJECTS), ids=lambda gvk: "/".join(gvk))
def test_json_protobuf_json_round_trip(gvk: tuple[str, str]) -> None:
    obj = _whole(*gvk, OBJECTS[gvk])
    body = protobuf_encode.encode(obj)
    assert body.startswith(b"k8s\x00")
    assert http.parse_document(body, protobuf.MEDIA_TYPE, 1 << 20) == obj


def test_kubectls_own_configmap_bytes() -> None:
    """What kubectl 1.32 sent for ``create configmap c1 --from-literal=k=v`` (-v=8).

    Go writes every non-pointer field, empty or not: empty strings vanish as
    JSON's omitempty drops them, the zero creationTimestamp is null.
    """
    sent = bytes.fromhex(
        "6b3873000a0f0a0276311209436f6e6669674d617012250a1b0a0263311200"
        "1a09742d32343034362d3022002a0032003800420012060a016b1201761a002200"
    )
    assert protobuf.decode(sent) == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "c1", "namespace": "t-24046-0", "creationTimestamp": None},
        "data": {"k": "v"},
    }


def test_kubectls_own_token_request_bytes() -> None:
    sent = bytes.fromhex(
        "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631"
        "120c546f6b656e52657175657374121d0a100a0012001a0022002a0032003800"
        "4200120320901c1a040a0012001a002200"
    )
    assert protobuf.decode(sent) == {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"expirationSeconds": 3600},
        "status": {"token": "", "expirationTimestamp": None},
    }


def test_zero_values_follow_go_json() -> None:
    """A value field's zero is dropped (omitempty); a pointer's or a non-omitempty one's kept."""
    cls = protobuf.message_class("v1", "Service")
    assert cls is not None
    service: Any = cls()
    service.metadata.name = "s"
    service.metadata.generateName = ""  # string, omitempty: dropped
    port = service.spec.ports.add()
    port.port = 0  # int32, no omitempty: kept
    port.name = ""  # omitempty: dropped
    service.spec.allocateLoadBalancerNodePorts = False  # *bool: kept
    decoded = _decode_typed("v1", "Service", service.SerializeToString())
    assert decoded["metadata"] == {"name": "s"}
    assert decoded["spec"] == {"ports": [{"port": 0}], "allocateLoadBalancerNodePorts": False}


def _decode_typed(api_version: str, kind: str, raw: bytes) -> dict[str, Any]:
    unknown = protobuf_encode.encode({"apiVersion": api_version, "kind": kind})
    # The envelope's raw field (2) is last: append a replacement, as protobuf merges.
    return protobuf.decode(unknown + b"\x12" + _varint(len(raw)) + raw)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (1_000_000_000, "1s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-2_000_000_000, "-2s"),
    ],
)
def test_durations_read_as_go_writes_them(nanoseconds: int, text: str) -> None:
    assert protobuf.go_duration(nanoseconds) == text


def test_a_custom_kind_is_415_and_a_broken_body_400() -> None:
    widget = protobuf_encode.encode({"apiVersion": "v1", "kind": "ConfigMap"}).replace(
        b"\x0a\x0f\x0a\x02v1\x12\x09ConfigMap", b"\x0a\x18\x0a\x0eexample.com/v1\x12\x06Widget"
    )
    with pytest.raises(ApiError) as refused:
        http.parse_document(widget, protobuf.MEDIA_TYPE, 1 << 20)
    assert refused.value.code == 415
    assert "example.com/v1, Kind=Widget" in refused.value.message
    for broken, why in [
        (b'{"kind": "Pod"}', "magic"),
        (b"k8s\x00\x0a\xff", "not valid protobuf"),
        (b"k8s\x00\x12\x00", "names no apiVersion and kind"),
    ]:
        with pytest.raises(ApiError) as bad:
            http.parse_document(broken, protobuf.MEDIA_TYPE, 1 << 20)
        assert bad.value.code == 400 and why in bad.value.message


def test_a_protobuf_patch_is_415_as_in_kube_apiserver() -> None:
    from controlplane.apiserver.patching import parse_patch

    with pytest.raises(ApiError) as refused:
        parse_patch(b"k8s\x00", protobuf.MEDIA_TYPE)
    assert refused.value.code == 415
