"""Valid objects to start from, and a way to run validation on their wire form."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from corral.api.errors import Cause
from corral.api.resources import REGISTRY
from corral.api.validate import validate_object
from corral.objects import Obj

Mutation = Callable[[Obj], None]

# base64 of {"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}
DOCKER_CONFIG_JSON = (
    "eyJhdXRocyI6eyJyZWdpc3RyeS5leGFtcGxlLmNvbSI6eyJhdXRoIjoiZFhObGNqcHdZWE56In19fQ=="
)


def pod_spec() -> Obj:
    return {
        "volumes": [
            {"name": "config", "configMap": {"name": "web-config"}},
            {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
            {
                "name": "info",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    ]
                },
            },
        ],
        "initContainers": [
            {"name": "migrate", "image": "registry.example.com/web:1.4.2", "command": ["migrate"]},
        ],
        "containers": [
            {
                "name": "web",
                "image": "registry.example.com/web:1.4.2",
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [
                    {"name": "MODE", "value": "production"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {
                        "name": "DB_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                    },
                ],
                "envFrom": [{"configMapRef": {"name": "web-env"}}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/web", "readOnly": True},
                    {"name": "cache", "mountPath": "/var/cache/web", "subPath": "web"},
                    {"name": "info", "mountPath": "/etc/podinfo"},
                ],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
            },
            {
                "name": "sidecar",
                "image": "registry.example.com/proxy@sha256:" + "a" * 64,
                "ports": [{"containerPort": 9090, "hostPort": 9090}],
            },
        ],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone", "operator": "In", "values": ["a", "b"]},
                            ]
                        }
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 10,
                        "preference": {
                            "matchExpressions": [
                                {"key": "cores", "operator": "Gt", "values": ["4"]},
                            ]
                        },
                    }
                ],
            },
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": {"app": "web"}},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            },
        },
        "securityContext": {
            "fsGroup": 2000,
            "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
        },
        "activeDeadlineSeconds": 3600,
        "hostname": "web-0",
        "dnsConfig": {"nameservers": ["10.0.0.10"], "searches": ["svc.cluster.local."]},
    }


def pod() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "shop",
            "labels": {"app": "web", "app.kubernetes.io/version": "1.4.2"},
            "annotations": {"example.com/owner": "team-a"},
            "finalizers": ["example.com/cleanup"],
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-5d8f",
                    "uid": "6f1c0e8e-0c55-4f35-9f9a-c1f5a8a7f9b1",
                    "controller": True,
                }
            ],
        },
        "spec": pod_spec(),
    }


def template() -> Obj:
    spec = pod_spec()
    del spec["activeDeadlineSeconds"]
    return {"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": spec}


def replication_controller() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 3, "selector": {"app": "web"}, "template": template()},
    }


def replica_set() -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-5d8f", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
        },
    }


def deployment() -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
            },
            "template": template(),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"},
            },
            "minReadySeconds": 5,
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 300,
        },
    }


def service() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.20",
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
            ],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "externalTrafficPolicy": "Local",
        },
    }


def endpoints() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [
            {
                "addresses": [{"ip": "10.244.1.5", "nodeName": "node-1"}],
                "notReadyAddresses": [{"ip": "fd00::5", "hostname": "web-1"}],
                "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
            }
        ],
    }


def node() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {
            "podCIDR": "10.244.1.0/24",
            "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"],
            "providerID": "corral://node-1",
            "taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "gpu", "effect": "NoExecute"},
            ],
        },
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def docker_secret() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "registry", "namespace": "shop"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": DOCKER_CONFIG_JSON},
    }


def config_map() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web-config", "namespace": "shop"},
        "data": {"nginx.conf": "server {}", "MODE": "prod"},
        "binaryData": {"logo.png": "iVBORw0KGgo="},
    }


def event() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web-0.17a3", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop"},
        "reason": "Scheduled",
        "message": "Successfully assigned shop/web-0 to node-1",
        "type": "Normal",
    }


def pdb() -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
    }


def lease() -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "leaseTransitions": 0},
    }


def namespace() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop"},
        "spec": {"finalizers": ["kubernetes"]},
    }


BASES: dict[str, Callable[[], Obj]] = {
    "Pod": pod,
    "ReplicationController": replication_controller,
    "ReplicaSet": replica_set,
    "Deployment": deployment,
    "Service": service,
    "Endpoints": endpoints,
    "Node": node,
    "Secret": docker_secret,
    "ConfigMap": config_map,
    "Event": event,
    "PodDisruptionBudget": pdb,
    "Lease": lease,
    "Namespace": namespace,
}


# --- mutations -------------------------------------------------------------------------


def _walk(obj: Any, path: str) -> tuple[Any, str | int]:
    # "~1" stands for "/" inside a key, as in a JSON pointer.
    parts: list[str | int] = [
        int(p) if p.isdigit() else p.replace("~1", "/") for p in path.split("/")
    ]
    for part in parts[:-1]:
        obj = obj[part]
    return obj, parts[-1]


def put(path: str, value: Any) -> Mutation:
    """Set the value at a "/"-separated path (keys may hold dots; "~1" is a "/")."""

    def apply(obj: Obj) -> None:
        parent, last = _walk(obj, path)
        parent[last] = copy.deepcopy(value)

    return apply


def drop(path: str) -> Mutation:
    def apply(obj: Obj) -> None:
        parent, last = _walk(obj, path)
        del parent[last]

    return apply


def append(path: str, value: Any) -> Mutation:
    def apply(obj: Obj) -> None:
        parent, last = _walk(obj, path)
        parent[last].append(copy.deepcopy(value))

    return apply


def both(*mutations: Mutation) -> Mutation:
    def apply(obj: Obj) -> None:
        for mutation in mutations:
            mutation(obj)

    return apply


# --- running -------------------------------------------------------------------------------


def validate(kind: str, obj: Obj, old: Obj | None = None) -> list[Cause]:
    rt = REGISTRY.by_kind_any_version(kind)
    assert rt is not None
    model = rt.model.model_validate(obj)
    old_model = rt.model.model_validate(old) if old is not None else None
    return validate_object(rt, model, old_model)


def mutated(kind: str, *mutations: Mutation) -> Obj:
    obj = BASES[kind]()
    for mutation in mutations:
        mutation(obj)
    return obj


def causes_of(kind: str, *mutations: Mutation) -> list[tuple[str, str]]:
    """(field, reason) of each cause found once ``mutations`` are applied to the base."""
    return [(c.field, c.reason) for c in validate(kind, mutated(kind, *mutations))]


def update_causes(kind: str, *mutations: Mutation) -> list[tuple[str, str]]:
    """Validate the mutated object as an update of the unmutated base."""
    old = BASES[kind]()
    return [(c.field, c.reason) for c in validate(kind, mutated(kind, *mutations), old)]


REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
NOT_FOUND = "FieldValueNotFound"
