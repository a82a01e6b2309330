"""``corral describe``: kubectl's layout for each kind, through a fake API client.

Expected lines are what kubectl 1.32 prints for the same objects: its
tabwriter alignment (a column is as wide as the widest cell in its run of
lines, plus two spaces), ``<none>`` for empty values, events oldest first.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from corral.api.errors import ApiError
from corral.api.fields import parse_field_selector
from corral.api.labels import parse_label_selector
from corral.api.resources import ResourceType
from corral.client.kubeconfig import ClientConfig
from corral.clock import ManualClock
from corral.objects import Obj
from corralctl import describe
from corralctl.context import CliContext
from corralctl.main import common_options

NOW = datetime.now(UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _field(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


class FakeClient:
    """Just enough of the REST client: objects by kind, filtered as the server filters."""

    def __init__(self, *objects: Obj) -> None:
        self.objects = [copy.deepcopy(o) for o in objects]
        self.lists: list[tuple[str, str | None, str, str]] = []

    async def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj:
        for obj in self.objects:
            meta = obj["metadata"]
            if (
                obj["kind"] == rt.kind
                and meta["name"] == name
                and (not rt.namespaced or meta.get("namespace") == namespace)
            ):
                return copy.deepcopy(obj)
        raise ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found')

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Obj:
        self.lists.append(
            (rt.kind, None if all_namespaces else namespace, label_selector, field_selector)
        )
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        in_scope = all_namespaces or not rt.namespaced
        items = [
            copy.deepcopy(obj)
            for obj in self.objects
            if obj["kind"] == rt.kind
            and (in_scope or obj["metadata"].get("namespace") == namespace)
            and labels.matches(obj["metadata"].get("labels") or {})
            and fields.matches({f: _field(obj, f) for f in fields.fields()})
        ]
        for item in items:
            # A real list's items carry no type.
            del item["kind"]
            item.pop("apiVersion", None)
        return {"kind": f"{rt.kind}List", "items": items}


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def run_describe(client: FakeClient, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    describe.add_parser(sub, common_options())
    args = parser.parse_args(["describe", *argv])
    ctx = CliContext(
        config=ClientConfig(server="http://unused"),
        namespace=args.namespace or "default",
        all_namespaces=args.all_namespaces,
        # Ages are printed relative to "now": pin it, so no test depends on when it runs.
        clock=ManualClock(NOW),
        out=io.StringIO(),
        err=io.StringIO(),
    )
    ctx._client = client  # type: ignore[assignment]
    code = asyncio.run(describe.run(ctx, args))
    assert isinstance(ctx.out, io.StringIO) and isinstance(ctx.err, io.StringIO)
    return code, ctx.out.getvalue(), ctx.err.getvalue()


def lines_of(text: str) -> list[str]:
    return text.split("\n")


# --- objects --------------------------------------------------------------------------------


def pod(name: str = "web-1", **overrides: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "labels": {"app": "web", "tier": "frontend"},
            "creationTimestamp": ago(hours=3),
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ReplicationController",
                    "name": "web",
                    "uid": "uid-rc",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": "node-1",
            "serviceAccountName": "default",
            "priority": 0,
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.25",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "readinessProbe": {
                        "tcpSocket": {"port": 8080},
                        "initialDelaySeconds": 5,
                        "periodSeconds": 2,
                    },
                    "env": [
                        {
                            "name": "DB_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                        },
                        {
                            "name": "POD_NAME",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                            },
                        },
                        {"name": "MODE", "value": "production"},
                    ],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                        "requests": {"cpu": "250m", "memory": "64Mi"},
                    },
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {"name": "config", "mountPath": "/etc/app", "readOnly": True},
                    ],
                },
                {"name": "worker", "image": "busybox:1.36", "command": ["sh", "-c", "exit 1"]},
            ],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "app-config"}},
            ],
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.5",
            "podIPs": [{"ip": "10.244.0.5"}],
            "startTime": "2024-03-01T10:00:00Z",
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "restartCount": 0,
                    "image": "nginx:1.25",
                    "imageID": "docker-pullable://nginx@sha256:abc",
                    "containerID": "docker://aaa",
                    "state": {"running": {"startedAt": "2024-03-01T10:00:05Z"}},
                },
                {
                    "name": "worker",
                    "ready": False,
                    "restartCount": 4,
                    "image": "busybox:1.36",
                    "imageID": "docker-pullable://busybox@sha256:def",
                    "containerID": "docker://bbb",
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": "back-off 1m20s restarting failed",
                        }
                    },
                    "lastState": {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "startedAt": "2024-03-01T10:05:00Z",
                            "finishedAt": "2024-03-01T10:05:01Z",
                        }
                    },
                },
            ],
        },
    }
    obj.update(overrides)
    return obj


def event(name: str, involved: Obj, **fields: Any) -> Obj:
    meta = involved["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace") or "default",
            "uid": f"uid-{name}",
        },
        "involvedObject": {
            "kind": involved["kind"],
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "uid": meta["uid"],
        },
        **fields,
    }


SECRET: Obj = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {
        "name": "db",
        "namespace": "default",
        "uid": "uid-secret",
        "labels": {"app": "web"},
    },
    "type": "Opaque",
    "data": {"password": "aHVudGVyMg==", "username": "YWRtaW4="},  # hunter2, admin
}


# --- pods -----------------------------------------------------------------------------------


def test_pod_header_and_containers() -> None:
    code, out, err = run_describe(FakeClient(pod()), "pods", "web-1")
    assert (code, err) == (0, "")
    lines = lines_of(out)
    for expected in [
        "Name:             web-1",
        "Namespace:        default",
        "Priority:         0",
        "Service Account:  default",
        "Node:             node-1/10.0.0.1",
        "Start Time:       Fri, 01 Mar 2024 10:00:00 +0000",
        "Labels:           app=web",
        "                  tier=frontend",
        "Annotations:      <none>",
        "Status:           Running",
        "IP:               10.244.0.5",
        "IPs:",
        "  IP:           10.244.0.5",
        "Controlled By:  ReplicationController/web",
        "Containers:",
        "  app:",
        "    Container ID:   docker://aaa",
        "    Image:          nginx:1.25",
        "    Port:           8080/TCP",
        "    Host Port:      0/TCP",
        "    State:          Running",
        "      Started:      Fri, 01 Mar 2024 10:00:05 +0000",
        "    Ready:          True",
        "    Restart Count:  0",
        "    Limits:",
        "      cpu:     500m",
        "      memory:  128Mi",
        "    Requests:",
        "      cpu:      250m",
        "      memory:   64Mi",
        "    Liveness:   http-get http://:8080/healthz delay=0s timeout=1s period=10s "
        "#success=1 #failure=3",
        "    Readiness:  tcp-socket :8080 delay=5s timeout=1s period=2s #success=1 #failure=3",
        "    Environment:",
        "      DB_PASSWORD:  <set to the key 'password' in secret 'db'>  Optional: false",
        "      POD_NAME:     web-1 (v1:metadata.name)",
        "      MODE:         production",
        "    Mounts:",
        "      /data from data (rw)",
        "      /etc/app from config (ro)",
    ]:
        assert expected in lines, expected


def test_pod_crash_looping_container_shows_waiting_and_last_state() -> None:
    _, out, _ = run_describe(FakeClient(pod()), "pod/web-1")
    lines = lines_of(out)
    start = lines.index("  worker:")
    worker = lines[start : lines.index("Conditions:")]
    assert worker == [
        "  worker:",
        "    Container ID:  docker://bbb",
        "    Image:         busybox:1.36",
        "    Image ID:      docker-pullable://busybox@sha256:def",
        "    Port:          <none>",
        "    Host Port:     <none>",
        "    Command:",
        "      sh",
        "      -c",
        "      exit 1",
        "    State:          Waiting",
        "      Reason:       CrashLoopBackOff",
        "    Last State:     Terminated",
        "      Reason:       Error",
        "      Exit Code:    1",
        "      Started:      Fri, 01 Mar 2024 10:05:00 +0000",
        "      Finished:     Fri, 01 Mar 2024 10:05:01 +0000",
        "    Ready:          False",
        "    Restart Count:  4",
        "    Environment:    <none>",
        "    Mounts:         <none>",
    ]


def test_pod_conditions_volumes_qos_and_tolerations() -> None:
    _, out, _ = run_describe(FakeClient(pod()), "pods", "web-1")
    tail = lines_of(out)[lines_of(out).index("Conditions:") :]
    assert tail == [
        "Conditions:",
        "  Type           Status",
        "  Ready          False ",
        "  PodScheduled   True ",
        "Volumes:",
        "  data:",
        "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)",
        "    Medium:     ",
        "    SizeLimit:  <unset>",
        "  config:",
        "    Type:        ConfigMap (a volume populated by a ConfigMap)",
        "    Name:        app-config",
        "    Optional:    false",
        "QoS Class:       Burstable",
        "Node-Selectors:  <none>",
        "Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s",
        "Events:          <none>",
        "",
    ]


def test_pod_secret_values_never_printed() -> None:
    _, out, _ = run_describe(FakeClient(pod(), SECRET), "pods", "web-1")
    assert "hunter2" not in out and "aHVudGVyMg==" not in out


def test_terminating_pod_status() -> None:
    doomed = pod()
    doomed["metadata"]["deletionTimestamp"] = ago(days=-1)
    doomed["metadata"]["deletionGracePeriodSeconds"] = 30
    _, out, _ = run_describe(FakeClient(doomed), "pods", "web-1")
    lines = lines_of(out)
    # The deletion time is in the future, so kubectl's age of it is "<invalid>".
    assert "Status:                    Terminating (lasts <invalid>)" in lines
    assert "Termination Grace Period:  30s" in lines


def test_guaranteed_and_best_effort_qos() -> None:
    guaranteed = pod()
    for container in guaranteed["spec"]["containers"]:
        container["resources"] = {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1", "memory": "1Gi"},
        }
    assert describe.pod_qos_class(guaranteed) == "Guaranteed"
    best_effort = pod()
    for container in best_effort["spec"]["containers"]:
        container.pop("resources", None)
    assert describe.pod_qos_class(best_effort) == "BestEffort"


# --- events ---------------------------------------------------------------------------------


def test_events_sorted_with_counts_and_sources() -> None:
    subject = pod()
    events = [
        event(
            "backoff",
            subject,
            type="Warning",
            reason="BackOff",
            message="Back-off restarting failed container\n",
            count=4,
            firstTimestamp=ago(minutes=40),
            lastTimestamp=ago(minutes=12),
            source={"component": "kubelet", "host": "node-1"},
        ),
        event(
            "scheduled",
            subject,
            type="Normal",
            reason="Scheduled",
            message="Successfully assigned default/web-1 to node-1",
            count=1,
            firstTimestamp=ago(hours=3),
            lastTimestamp=ago(hours=3),
            source={"component": "default-scheduler"},
        ),
        event(
            "pulled",
            subject,
            type="Normal",
            reason="Pulled",
            message="Pulled image",
            eventTime=ago(hours=2, minutes=30),
            reportingComponent="kubelet",
            series={"count": 7, "lastObservedTime": ago(minutes=20)},
        ),
    ]
    other = pod("web-2")
    client = FakeClient(subject, other, *events, event("elsewhere", other, reason="Nope"))
    _, out, _ = run_describe(client, "pods", "web-1")
    tail = lines_of(out)[lines_of(out).index("Events:") :]
    assert tail == [
        "Events:",
        "  Type     Reason     Age                 From               Message",
        "  ----     ------     ----                ----               -------",
        "  Normal   Scheduled  3h                  default-scheduler  "
        "Successfully assigned default/web-1 to node-1",
        "  Normal   Pulled     20m (x7 over 150m)  kubelet            Pulled image",
        "  Warning  BackOff    12m (x4 over 40m)   kubelet            "
        "Back-off restarting failed container",
        "",
    ]
    assert (
        "Event",
        "default",
        "",
        "involvedObject.kind=Pod,involvedObject.name=web-1,"
        "involvedObject.namespace=default,involvedObject.uid=uid-web-1",
    ) in client.lists


def test_show_events_false_leaves_the_section_out() -> None:
    subject = pod()
    client = FakeClient(subject, event("e", subject, reason="Started", count=1))
    _, out, _ = run_describe(client, "pods", "web-1", "--show-events=false")
    assert "Events:" not in out
    assert not [c for c in client.lists if c[0] == "Event"]


# --- replication controllers ----------------------------------------------------------------


def _rc_pod(name: str, phase: str, owner_uid: str | None, labels: Obj | None = None) -> Obj:
    obj = pod(name)
    obj["metadata"]["labels"] = labels if labels is not None else {"app": "web"}
    obj["metadata"]["ownerReferences"] = (
        []
        if owner_uid is None
        else [
            {"kind": "ReplicationController", "name": "web", "uid": owner_uid, "controller": True}
        ]
    )
    obj["status"] = {"phase": phase}
    return obj


RC: Obj = {
    "apiVersion": "v1",
    "kind": "ReplicationController",
    "metadata": {"name": "web", "namespace": "default", "uid": "uid-rc", "labels": {"app": "web"}},
    "spec": {
        "replicas": 4,
        "selector": {"app": "web"},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    }
                ]
            },
        },
    },
    "status": {
        "replicas": 3,
        "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}],
    },
}


def test_replication_controller_counts_only_pods_it_controls() -> None:
    client = FakeClient(
        RC,
        _rc_pod("web-a", "Running", "uid-rc"),
        _rc_pod("web-b", "Running", "uid-rc"),
        _rc_pod("web-c", "Pending", "uid-rc"),
        _rc_pod("web-d", "Failed", "uid-rc"),
        _rc_pod("stray", "Running", None),
        _rc_pod("adopted-elsewhere", "Running", "uid-other"),
        _rc_pod("unlabelled", "Succeeded", "uid-rc", labels={"app": "db"}),
    )
    code, out, _ = run_describe(client, "rc", "web")
    assert code == 0
    assert lines_of(out) == [
        "Name:         web",
        "Namespace:    default",
        "Selector:     app=web",
        "Labels:       app=web",
        "Annotations:  <none>",
        "Replicas:     3 current / 4 desired",
        "Pods Status:  2 Running / 1 Waiting / 0 Succeeded / 1 Failed",
        "Pod Template:",
        "  Labels:  app=web",
        "  Containers:",
        "   app:",
        "    Image:         nginx:1.25",
        "    Port:          80/TCP",
        "    Host Port:     0/TCP",
        "    Environment:   <none>",
        "    Mounts:        <none>",
        "  Volumes:         <none>",
        "  Node-Selectors:  <none>",
        "  Tolerations:     <none>",
        "Conditions:",
        "  Type             Status  Reason",
        "  ----             ------  ------",
        "  ReplicaFailure   True    FailedCreate",
        "Events:            <none>",
        "",
    ]
    assert ("Pod", "default", "app=web", "") in client.lists


# --- deployments ----------------------------------------------------------------------------


def test_deployment_old_and_new_replica_sets() -> None:
    template = copy.deepcopy(RC["spec"]["template"])
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "uid-deploy",
            "creationTimestamp": "2024-03-01T09:00:00Z",
            "annotations": {"deployment.kubernetes.io/revision": "2"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1},
            },
            "template": template,
        },
        "status": {
            "replicas": 3,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "unavailableReplicas": 1,
        },
    }

    def replica_set(name: str, revision: str, replicas: int, image: str) -> Obj:
        rs_template = copy.deepcopy(template)
        rs_template["metadata"]["labels"]["pod-template-hash"] = name[-3:]
        rs_template["spec"]["containers"][0]["image"] = image
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": f"uid-{name}",
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [
                    {"kind": "Deployment", "name": "web", "uid": "uid-deploy", "controller": True}
                ],
            },
            "spec": {"replicas": replicas, "template": rs_template},
            "status": {"replicas": replicas},
        }

    client = FakeClient(
        deployment,
        replica_set("web-abc", "1", 1, "nginx:1.24"),
        replica_set("web-def", "2", 2, "nginx:1.25"),
    )
    _, out, _ = run_describe(client, "deployments", "web")
    lines = lines_of(out)
    for expected in [
        "CreationTimestamp:      Fri, 01 Mar 2024 09:00:00 +0000",
        "Selector:               app=web",
        "Replicas:               2 desired | 2 updated | 3 total | 2 available | 1 unavailable",
        "StrategyType:           RollingUpdate",
        "MinReadySeconds:        0",
        "RollingUpdateStrategy:  25% max unavailable, 1 max surge",
        "OldReplicaSets:    web-abc (1/1 replicas created)",
        "NewReplicaSet:     web-def (2/2 replicas created)",
    ]:
        assert expected in lines, expected


# --- services -------------------------------------------------------------------------------


SERVICE: Obj = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "uid": "uid-svc", "labels": {"app": "web"}},
    "spec": {
        "type": "NodePort",
        "selector": {"app": "web"},
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "sessionAffinity": "None",
        "externalTrafficPolicy": "Cluster",
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
            {
                "name": "metrics",
                "port": 9090,
                "targetPort": "metrics",
                "protocol": "TCP",
                "nodePort": 30090,
            },
        ],
    },
}
ENDPOINTS: Obj = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "web", "namespace": "default", "uid": "uid-ep"},
    "subsets": [
        {
            "addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.0.6"}],
            "notReadyAddresses": [{"ip": "10.244.0.7"}],
            "ports": [
                {"name": "http", "port": 8080, "protocol": "TCP"},
                {"name": "metrics", "port": 9100, "protocol": "TCP"},
            ],
        }
    ],
}


def test_service_with_endpoints() -> None:
    _, out, _ = run_describe(FakeClient(SERVICE, ENDPOINTS), "svc", "web")
    assert lines_of(out) == [
        "Name:                     web",
        "Namespace:                default",
        "Labels:                   app=web",
        "Annotations:              <none>",
        "Selector:                 app=web",
        "Type:                     NodePort",
        "IP Family Policy:         SingleStack",
        "IP Families:              IPv4",
        "IP:                       10.96.0.10",
        "IPs:                      10.96.0.10",
        "Port:                     http  80/TCP",
        "TargetPort:               8080/TCP",
        "NodePort:                 http  30080/TCP",
        "Endpoints:                10.244.0.5:8080,10.244.0.6:8080",
        "Port:                     metrics  9090/TCP",
        "TargetPort:               metrics/TCP",
        "NodePort:                 metrics  30090/TCP",
        "Endpoints:                10.244.0.5:9100,10.244.0.6:9100",
        "Session Affinity:         None",
        "External Traffic Policy:  Cluster",
        "Events:                   <none>",
        "",
    ]


def test_service_without_endpoints_object() -> None:
    _, out, _ = run_describe(FakeClient(SERVICE), "svc", "web")
    assert lines_of(out).count("Endpoints:                <none>") == 2


def test_endpoints_list_is_cut_after_three() -> None:
    endpoints = {
        "subsets": [
            {"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)], "ports": [{"port": 80}]}
        ]
    }
    assert describe.format_endpoints(endpoints, "") == (
        "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 2 more..."
    )


# --- nodes ----------------------------------------------------------------------------------


NODE: Obj = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "node-1",
        "uid": "uid-node",
        "creationTimestamp": "2024-03-01T08:00:00Z",
        "labels": {"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/worker": ""},
    },
    "spec": {
        "podCIDR": "10.244.0.0/24",
        "taints": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"}],
    },
    "status": {
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": "2024-03-01T10:00:00Z",
                "lastTransitionTime": "2024-03-01T08:00:00Z",
            }
        ],
        "addresses": [
            {"type": "InternalIP", "address": "10.0.0.1"},
            {"type": "Hostname", "address": "node-1"},
        ],
        "nodeInfo": {
            "kernelVersion": "6.1.0",
            "osImage": "Debian GNU/Linux 12",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "containerRuntimeVersion": "docker://24.0.7",
            "kubeletVersion": "v1.32.0-corral",
        },
    },
}


def _node_pod(name: str, namespace: str, phase: str, resources: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "creationTimestamp": ago(hours=5),
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "c", "image": "x", "resources": resources}],
        },
        "status": {"phase": phase},
    }


def test_node_with_pods_and_allocation() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease", "uid": "uid-lease"},
        "spec": {"holderIdentity": "node-1", "renewTime": "2024-03-01T10:00:00.000000Z"},
    }
    client = FakeClient(
        NODE,
        lease,
        _node_pod(
            "web-1",
            "default",
            "Running",
            {
                "requests": {"cpu": "250m", "memory": "64Mi"},
                "limits": {"cpu": "500m", "memory": "128Mi"},
            },
        ),
        _node_pod("dns", "kube-system", "Running", {"requests": {"cpu": "750m", "memory": "1Gi"}}),
        _node_pod("done", "default", "Succeeded", {"requests": {"cpu": "1"}}),
        event(
            "node-ready",
            NODE,
            type="Normal",
            reason="NodeReady",
            count=1,
            message="Node node-1 status is now: NodeReady",
            firstTimestamp=ago(hours=2),
            lastTimestamp=ago(hours=2),
            source={"component": "kubelet"},
        ),
    )
    code, out, _ = run_describe(client, "node", "node-1")
    assert code == 0
    lines = lines_of(out)
    for expected in [
        "Name:               node-1",
        "Roles:              worker",
        "Taints:             dedicated=web:NoSchedule",
        "Unschedulable:      false",
        "Lease:",
        "  HolderIdentity:  node-1",
        "  AcquireTime:     <unset>",
        "  RenewTime:       Fri, 01 Mar 2024 10:00:00 +0000",
        "  Ready   True    Fri, 01 Mar 2024 10:00:00 +0000   Fri, 01 Mar 2024 08:00:00 +0000   "
        "KubeletReady   kubelet is posting ready status",
        "  InternalIP:  10.0.0.1",
        "  memory:  4Gi",
        "  Kubelet Version:            v1.32.0-corral",
        "PodCIDR:                      10.244.0.0/24",
        "Non-terminated Pods:          (2 in total)",
        "  Namespace                   Name     CPU Requests  CPU Limits  Memory Requests  "
        "Memory Limits  Age",
        "  default                     web-1    250m (12%)    500m (25%)  64Mi (1%)        "
        "128Mi (3%)     5h",
        "  kube-system                 dns      750m (37%)    0 (0%)      1Gi (25%)        "
        "0 (0%)         5h",
        "  Resource           Requests      Limits",
        "  cpu                1 (50%)       500m (25%)",
        "  memory             1088Mi (26%)  128Mi (3%)",
        "  ephemeral-storage  0 (0%)        0 (0%)",
        "  Normal  NodeReady  120m  kubelet  Node node-1 status is now: NodeReady",
    ]:
        assert expected in lines, expected
    assert "done" not in out
    assert (
        "Pod",
        None,
        "",
        "spec.nodeName=node-1,status.phase!=Succeeded,status.phase!=Failed",
    ) in client.lists


def test_node_without_lease() -> None:
    _, out, _ = run_describe(FakeClient(NODE), "nodes", "node-1")
    assert (
        'Lease:              Failed to get lease: leases.coordination.k8s.io "node-1" not found'
    ) in lines_of(out)


# --- secrets and the generic layout ---------------------------------------------------------


def test_secret_shows_sizes_never_values() -> None:
    code, out, _ = run_describe(FakeClient(SECRET), "secrets", "db")
    assert code == 0
    assert lines_of(out) == [
        "Name:         db",
        "Namespace:    default",
        "Labels:       app=web",
        "Annotations:  <none>",
        "",
        "Type:  Opaque",
        "",
        "Data",
        "====",
        "password:  7 bytes",
        "username:  5 bytes",
        "",
    ]
    assert "hunter2" not in out and "aHVudGVyMg==" not in out and "admin" not in out


def test_lease_uses_the_generic_layout() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "controller",
            "namespace": "default",
            "uid": "uid-l",
            "resourceVersion": "42",
            "managedFields": [{"manager": "x"}],
        },
        "spec": {"holderIdentity": "cm-1", "leaseDurationSeconds": 15},
    }
    _, out, _ = run_describe(FakeClient(lease), "leases", "controller")
    assert lines_of(out) == [
        "Name:         controller",
        "Namespace:    default",
        "Labels:       <none>",
        "Annotations:  <none>",
        "API Version:  coordination.k8s.io/v1",
        "Kind:         Lease",
        "Metadata:",
        "  Resource Version:  42",
        "  UID:               uid-l",
        "Spec:",
        "  Holder Identity:         cm-1",
        "  Lease Duration Seconds:  15",
        "Events:                    <none>",
        "",
    ]


def test_smart_label() -> None:
    assert describe.smart_label("apiVersion") == "API Version"
    assert describe.smart_label("involvedObject") == "Involved Object"
    assert describe.smart_label("renewTime") == "Renew Time"
    assert describe.smart_label("x509") == "x509"


# --- the command ----------------------------------------------------------------------------


def test_missing_object_reported_after_the_others() -> None:
    code, out, err = run_describe(FakeClient(pod()), "pods", "web-1", "nope")
    assert code == 1
    assert out.startswith("Name:             web-1\n")
    assert err == 'Error from server (NotFound): pods "nope" not found\n'


def test_single_missing_name_falls_back_to_prefix_match() -> None:
    code, out, err = run_describe(
        FakeClient(pod("web-1"), pod("web-2"), pod("db-1")), "pods", "web"
    )
    assert (code, err) == (0, "")
    assert [line for line in lines_of(out) if line.startswith("Name:")] == [
        "Name:             web-1",
        "Name:             web-2",
    ]
    code, out, err = run_describe(FakeClient(pod("web-1")), "pods", "cache")
    assert (code, out) == (1, "")
    assert err == 'Error from server (NotFound): pods "cache" not found\n'


def test_describe_all_of_a_type_filtered_by_selector() -> None:
    other = pod("db-1")
    other["metadata"]["labels"] = {"app": "db"}
    client = FakeClient(pod("web-1"), pod("web-2"), other)
    code, out, _ = run_describe(client, "pods", "-l", "app=web")
    assert code == 0
    assert [line for line in lines_of(out) if line.startswith("Name:")] == [
        "Name:             web-1",
        "Name:             web-2",
    ]
    # kubectl separates descriptions with "\n\n" after each one's own final newline.
    assert "Events:          <none>\n\n\nName:             web-2\n" in out
    assert ("Pod", "default", "app=web", "") in client.lists


def test_nothing_to_describe() -> None:
    code, out, err = run_describe(FakeClient(), "pods")
    assert (code, out) == (0, "")
    assert err == "No resources found in default namespace.\n"


def test_describe_from_file(tmp_path: Path) -> None:
    manifest = tmp_path / "secret.yaml"
    manifest.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n")
    code, out, _ = run_describe(FakeClient(SECRET), "-f", str(manifest))
    assert code == 0
    assert "password:  7 bytes" in lines_of(out)


# --- the building blocks --------------------------------------------------------------------


def test_tabwrite_aligns_runs_of_lines_separately() -> None:
    text = "a:\t1\nlonger:\t2\nbreak\nx:\t3\n"
    assert describe.tabwrite(text) == "a:       1\nlonger:  2\nbreak\nx:  3\n"


def test_tabwrite_nested_columns() -> None:
    text = "k:\tv\tz\nkey:\tvalue\n"
    assert describe.tabwrite(text) == "k:    v  z\nkey:  value\n"


def test_probe_descriptions() -> None:
    assert describe.describe_probe({"exec": {"command": ["cat", "/tmp/ok"]}}) == (
        "exec [cat /tmp/ok] delay=0s timeout=1s period=10s #success=1 #failure=3"
    )
    assert (
        describe.describe_probe(
            {
                "httpGet": {"port": "http", "path": "ready", "scheme": "HTTPS", "host": "::1"},
                "failureThreshold": 5,
            }
        )
        == "http-get https://[::1]:http/ready delay=0s timeout=1s period=10s #success=1 #failure=5"
    )
