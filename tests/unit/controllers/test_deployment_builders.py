"""Deployments, ReplicaSets, pods and budgets as the API stores them, for the unit tests.

(This module holds no tests; it is named so that it sits with the tests
that import it.)
"""

from __future__ import annotations

from corral.objects import Obj

UID = "d-uid"


def template(image: str = "nginx:1", **labels: str) -> Obj:
    return {
        "metadata": {"labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]},
    }


def deployment(
    replicas: int = 10,
    *,
    surge: int | str | None = "25%",
    unavailable: int | str | None = "25%",
    strategy: str = "RollingUpdate",
    image: str = "nginx:1",
    generation: int = 1,
    annotations: dict[str, str] | None = None,
    status: Obj | None = None,
    deadline: int | None = 600,
    history_limit: int | None = 10,
    paused: bool = False,
) -> Obj:
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": template(image),
        "strategy": {"type": strategy},
    }
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    if history_limit is not None:
        spec["revisionHistoryLimit"] = history_limit
    if paused:
        spec["paused"] = True
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "uid": UID,
            "generation": generation,
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": status or {},
    }


def replica_set(
    name: str,
    replicas: int,
    *,
    available: int | None = None,
    actual: int | None = None,
    ready: int | None = None,
    created: str = "2026-01-01T00:00:00Z",
    revision: int | None = None,
    image: str = "nginx:1",
    annotations: dict[str, str] | None = None,
    generation: int = 1,
    observed: int = 1,
) -> Obj:
    notes = dict(annotations or {})
    if revision is not None:
        notes["deployment.kubernetes.io/revision"] = str(revision)
    tpl = template(image)
    tpl["metadata"]["labels"]["pod-template-hash"] = name.rsplit("-", 1)[-1]
    actual_count = replicas if actual is None else actual
    available_count = actual_count if available is None else available
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "generation": generation,
            "annotations": notes,
            "labels": dict(tpl["metadata"]["labels"]),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": UID,
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": replicas, "template": tpl},
        "status": {
            "replicas": actual_count,
            "readyReplicas": available_count if ready is None else ready,
            "availableReplicas": available_count,
            "observedGeneration": observed,
        },
    }


def pod(name: str, owner: Obj, *, ready: bool = True, deleting: bool = False) -> Obj:
    labels = dict(owner["spec"]["template"]["metadata"]["labels"])
    metadata: Obj = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pods_for(owner: Obj, count: int, *, ready: int | None = None) -> list[Obj]:
    """``count`` pods of ``owner``, the first ``ready`` of them Ready (all by default)."""
    ready_count = count if ready is None else ready
    return [
        pod(f"{owner['metadata']['name']}-{i}", owner, ready=i < ready_count) for i in range(count)
    ]


def pdb(
    name: str = "web-pdb",
    *,
    allowed: int,
    healthy: int,
    desired: int,
    generation: int = 1,
    observed: int = 1,
    labels: dict[str, str] | None = None,
) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "ns", "generation": generation},
        "spec": {"selector": {"matchLabels": labels or {"app": "web"}}},
        "status": {
            "observedGeneration": observed,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
        },
    }
