"""Server-side printing: ``meta.k8s.io/v1`` Tables with kubectl's columns.

kubectl asks for Tables and prints whatever columns the server defines, so
these are the columns a Kubernetes user expects of each kind; ``-o wide``
shows the ones with priority 1. corral's own CLI prints the same Tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controlplane.apiserver.batchtables import cron_job_cells, job_cells
from corral.durations import human_duration
from corral.objects import (
    Obj,
    annotations_of,
    labels_of,
    meta,
    name_of,
    owner_references,
    parse_time,
)

Cell = str | int


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    priority: int = 0
    type: str = "string"
    format: str = ""
    description: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description or self.name,
            "priority": self.priority,
        }


RowFunc = Callable[[Obj, datetime], list[Cell]]


@dataclass(frozen=True, slots=True)
class Printer:
    columns: tuple[Column, ...]
    row: RowFunc


def age(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "<unknown>"
    at = parse_time(timestamp)
    if at is None:
        return "<invalid>"
    return human_duration(now - at)


def _join(values: Iterable[str], empty: str = "<none>") -> str:
    text = ",".join(v for v in values if v)
    return text or empty


def _selector_text(selector: Obj | None) -> str:
    if not selector:
        return "<none>"
    if "matchLabels" in selector or "matchExpressions" in selector:
        parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
        for expr in selector.get("matchExpressions") or []:
            op = expr.get("operator")
            values = ",".join(expr.get("values") or [])
            if op == "In":
                parts.append(f"{expr.get('key')} in ({values})")
            elif op == "NotIn":
                parts.append(f"{expr.get('key')} notin ({values})")
            elif op == "Exists":
                parts.append(str(expr.get("key")))
            else:
                parts.append(f"!{expr.get('key')}")
        return _join(parts)
    return _join(f"{k}={v}" for k, v in sorted(selector.items()))


def _containers(template_spec: Obj) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return (
        _join(c.get("name", "") for c in containers),
        _join(c.get("image", "") for c in containers),
    )


# --- pods ---------------------------------------------------------------------------------


def pod_status_reason(pod: Obj) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for index, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated and terminated.get("exitCode") == 0:
            continue
        if terminated:
            reason = "Init:" + (
                terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}"
            )
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            total = len((pod.get("spec") or {}).get("initContainers") or [])
            reason = f"Init:{index}/{total}"
        initializing = True
        break
    if not initializing:
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode')}"
            elif cs.get("ready") and state.get("running"):
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if meta(pod).get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_row(pod: Obj, now: datetime) -> list[Cell]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount") or 0) for cs in statuses)
    last_restart = None
    for cs in statuses:
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished
    restart_text = str(restarts)
    if restarts and last_restart:
        restart_text = f"{restarts} ({age(last_restart, now)} ago)"
    gates = spec.get("readinessGates") or []
    return [
        name_of(pod),
        f"{ready}/{total}",
        pod_status_reason(pod),
        restart_text,
        age(meta(pod).get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"0/{len(gates)}" if gates else "<none>",
    ]


# --- workloads ---------------------------------------------------------------------------


def _rc_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    return [
        name_of(obj),
        int(spec.get("replicas", 1)),
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        age(meta(obj).get("creationTimestamp"), now),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _deployment_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    return [
        name_of(obj),
        f"{status.get('readyReplicas') or 0}/{spec.get('replicas', 1)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        age(meta(obj).get("creationTimestamp"), now),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _stateful_set_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    return [
        name_of(obj),
        f"{status.get('readyReplicas') or 0}/{spec.get('replicas', 1)}",
        age(meta(obj).get("creationTimestamp"), now),
        names,
        images,
    ]


def _daemon_set_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    names, images = _containers(template_spec)
    node_selector = template_spec.get("nodeSelector") or {}
    return [
        name_of(obj),
        int(status.get("desiredNumberScheduled") or 0),
        int(status.get("currentNumberScheduled") or 0),
        int(status.get("numberReady") or 0),
        int(status.get("updatedNumberScheduled") or 0),
        int(status.get("numberAvailable") or 0),
        ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or "<none>",
        age(meta(obj).get("creationTimestamp"), now),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _job_row(obj: Obj, now: datetime) -> list[Cell]:
    names, images = _containers(((obj.get("spec") or {}).get("template") or {}).get("spec") or {})
    return [*job_cells(obj, now), names, images, _selector_text(obj["spec"].get("selector"))]


def _cron_job_row(obj: Obj, now: datetime) -> list[Cell]:
    job_spec = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
    names, images = _containers((job_spec.get("template") or {}).get("spec") or {})
    return [*cron_job_cells(obj, now), names, images, _selector_text(job_spec.get("selector"))]


def _controller_revision_row(obj: Obj, now: datetime) -> list[Cell]:
    owner = next((r for r in owner_references(obj) if r.get("controller")), None)
    kind = str((owner or {}).get("kind") or "").lower()
    group = str((owner or {}).get("apiVersion") or "").rpartition("/")[0]
    controller = f"{kind}.{group}/{owner.get('name')}" if owner else "<none>"
    return [
        name_of(obj),
        controller,
        int(obj.get("revision") or 0),
        age(meta(obj).get("creationTimestamp"), now),
    ]


# --- services and endpoints ----------------------------------------------------------------


def _ports_text(ports: list[Obj]) -> str:
    parts = []
    for port in ports:
        text = str(port.get("port"))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        parts.append(f"{text}/{port.get('protocol', 'TCP')}")
    return _join(parts)


def _service_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    service_type = spec.get("type", "ClusterIP")
    external = _join(spec.get("externalIPs") or [])
    if service_type == "ExternalName":
        external = spec.get("externalName") or "<none>"
    elif service_type == "LoadBalancer":
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        external = _join(
            [
                *(i.get("ip") or i.get("hostname", "") for i in ingress),
                *(spec.get("externalIPs") or []),
            ],
            "<pending>",
        )
    return [
        name_of(obj),
        service_type,
        spec.get("clusterIP") or "<none>",
        external,
        _ports_text(spec.get("ports") or []),
        age(meta(obj).get("creationTimestamp"), now),
        _selector_text(spec.get("selector")),
    ]


def _endpoints_row(obj: Obj, now: datetime) -> list[Cell]:
    addresses: list[str] = []
    for subset in obj.get("subsets") or []:
        ports = subset.get("ports") or []
        for address in subset.get("addresses") or []:
            if ports:
                addresses.extend(f"{address.get('ip')}:{p.get('port')}" for p in ports)
            else:
                addresses.append(str(address.get("ip")))
    shown = addresses[:3]
    text = ",".join(shown)
    if len(addresses) > 3:
        text += f" + {len(addresses) - 3} more..."
    return [name_of(obj), text or "<none>", age(meta(obj).get("creationTimestamp"), now)]


# --- nodes and namespaces ---------------------------------------------------------------------


def _node_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ready = "Unknown"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = "Ready" if condition.get("status") == "True" else "NotReady"
    states = [ready]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    labels = labels_of(obj)
    roles = sorted(
        key.split("/", 1)[1]
        for key in labels
        if key.startswith("node-role.kubernetes.io/") and "/" in key
    )
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        return _join(a.get("address", "") for a in addresses if a.get("type") == kind)

    return [
        name_of(obj),
        ",".join(states),
        _join(roles),
        age(meta(obj).get("creationTimestamp"), now),
        info.get("kubeletVersion") or "",
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _namespace_row(obj: Obj, now: datetime) -> list[Cell]:
    phase = (obj.get("status") or {}).get("phase") or "Active"
    return [name_of(obj), phase, age(meta(obj).get("creationTimestamp"), now)]


# --- events and configuration ---------------------------------------------------------------


def _event_row(obj: Obj, now: datetime) -> list[Cell]:
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or meta(obj).get("creationTimestamp")
    first = obj.get("firstTimestamp") or obj.get("eventTime")
    source = obj.get("source") or {}
    source_text = source.get("component") or obj.get("reportingComponent") or ""
    if source.get("host"):
        source_text += f", {source['host']}"
    kind = str(involved.get("kind", "")).lower()
    return [
        age(last, now),
        obj.get("type") or "",
        obj.get("reason") or "",
        f"{kind}/{involved.get('name', '')}",
        (obj.get("message") or "").strip(),
        involved.get("fieldPath") or "",
        source_text,
        age(first, now) if first else "<unknown>",
        int(obj.get("count") or 1),
        name_of(obj),
    ]


def _configmap_row(obj: Obj, now: datetime) -> list[Cell]:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [name_of(obj), count, age(meta(obj).get("creationTimestamp"), now)]


def _secret_row(obj: Obj, now: datetime) -> list[Cell]:
    return [
        name_of(obj),
        obj.get("type") or "Opaque",
        len(obj.get("data") or {}),
        age(meta(obj).get("creationTimestamp"), now),
    ]


def _pdb_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return [
        name_of(obj),
        str(spec["minAvailable"]) if spec.get("minAvailable") is not None else "N/A",
        str(spec["maxUnavailable"]) if spec.get("maxUnavailable") is not None else "N/A",
        int(status.get("disruptionsAllowed") or 0),
        age(meta(obj).get("creationTimestamp"), now),
    ]


def _lease_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    return [
        name_of(obj),
        spec.get("holderIdentity") or "",
        age(meta(obj).get("creationTimestamp"), now),
    ]


def _default_row(obj: Obj, now: datetime) -> list[Cell]:
    return [name_of(obj), age(meta(obj).get("creationTimestamp"), now)]


_ACCESS_MODE_SHORT = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _access_modes(modes: list[str] | None) -> str:
    return ",".join(_ACCESS_MODE_SHORT.get(m, m) for m in modes or [])


def _persistent_volume_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    return [
        name_of(obj),
        (spec.get("capacity") or {}).get("storage", ""),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "",
        status.get("phase") or "",
        claim,
        spec.get("storageClassName") or "",
        "<unset>",
        status.get("reason") or "",
        age(meta(obj).get("creationTimestamp"), now),
        spec.get("volumeMode") or "Filesystem",
    ]


def _persistent_volume_claim_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    phase = status.get("phase") or ""
    if meta(obj).get("deletionTimestamp"):
        phase = "Terminating"
    return [
        name_of(obj),
        phase,
        spec.get("volumeName") or "",
        (status.get("capacity") or {}).get("storage", ""),
        _access_modes(status.get("accessModes")),
        spec.get("storageClassName") or "",
        "<unset>",
        age(meta(obj).get("creationTimestamp"), now),
        spec.get("volumeMode") or "Filesystem",
    ]


def _storage_class_row(obj: Obj, now: datetime) -> list[Cell]:
    annotations = annotations_of(obj)
    default = "true" in (
        annotations.get("storageclass.kubernetes.io/is-default-class"),
        annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
    )
    return [
        name_of(obj) + (" (default)" if default else ""),
        obj.get("provisioner") or "",
        obj.get("reclaimPolicy") or "Delete",
        obj.get("volumeBindingMode") or "Immediate",
        "true" if obj.get("allowVolumeExpansion") else "false",
        age(meta(obj).get("creationTimestamp"), now),
    ]


NAME = Column("Name", format="name", description="Name must be unique within a namespace.")
AGE = Column("Age", description="Time since the object was created.")
_WORKLOAD_WIDE = (Column("Containers", 1), Column("Images", 1), Column("Selector", 1))

PRINTERS: dict[str, Printer] = {
    "Pod": Printer(
        (
            NAME,
            Column("Ready"),
            Column("Status"),
            Column("Restarts"),
            AGE,
            Column("IP", 1),
            Column("Node", 1),
            Column("Nominated Node", 1),
            Column("Readiness Gates", 1),
        ),
        _pod_row,
    ),
    "ReplicationController": Printer(
        (
            NAME,
            Column("Desired", type="integer"),
            Column("Current", type="integer"),
            Column("Ready", type="integer"),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _rc_row,
    ),
    "ReplicaSet": Printer(
        (
            NAME,
            Column("Desired", type="integer"),
            Column("Current", type="integer"),
            Column("Ready", type="integer"),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _rc_row,
    ),
    "Deployment": Printer(
        (
            NAME,
            Column("Ready"),
            Column("Up-to-date", type="integer"),
            Column("Available", type="integer"),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _deployment_row,
    ),
    "StatefulSet": Printer(
        (NAME, Column("Ready"), AGE, Column("Containers", 1), Column("Images", 1)),
        _stateful_set_row,
    ),
    "DaemonSet": Printer(
        (
            NAME,
            Column("Desired", type="integer"),
            Column("Current", type="integer"),
            Column("Ready", type="integer"),
            Column("Up-to-date", type="integer"),
            Column("Available", type="integer"),
            Column("Node Selector"),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _daemon_set_row,
    ),
    "Job": Printer(
        (
            NAME,
            Column("Status"),
            Column("Completions"),
            Column("Duration"),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _job_row,
    ),
    "CronJob": Printer(
        (
            NAME,
            Column("Schedule"),
            Column("Timezone"),
            Column("Suspend", type="boolean"),
            Column("Active", type="integer"),
            Column("Last Schedule"),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _cron_job_row,
    ),
    "ControllerRevision": Printer(
        (NAME, Column("Controller"), Column("Revision", type="integer"), AGE),
        _controller_revision_row,
    ),
    "Service": Printer(
        (
            NAME,
            Column("Type"),
            Column("Cluster-IP"),
            Column("External-IP"),
            Column("Port(s)"),
            AGE,
            Column("Selector", 1),
        ),
        _service_row,
    ),
    "Endpoints": Printer((NAME, Column("Endpoints"), AGE), _endpoints_row),
    "Node": Printer(
        (
            NAME,
            Column("Status"),
            Column("Roles"),
            AGE,
            Column("Version"),
            Column("Internal-IP", 1),
            Column("External-IP", 1),
            Column("OS-Image", 1),
            Column("Kernel-Version", 1),
            Column("Container-Runtime", 1),
        ),
        _node_row,
    ),
    "Namespace": Printer((NAME, Column("Status"), AGE), _namespace_row),
    "Event": Printer(
        (
            Column("Last Seen"),
            Column("Type"),
            Column("Reason"),
            Column("Object"),
            Column("Message"),
            Column("Subobject", 1),
            Column("Source", 1),
            Column("First Seen", 1),
            Column("Count", 1, type="integer"),
            Column("Name", 1),
        ),
        _event_row,
    ),
    "ConfigMap": Printer((NAME, Column("Data", type="integer"), AGE), _configmap_row),
    "Secret": Printer((NAME, Column("Type"), Column("Data", type="integer"), AGE), _secret_row),
    "PodDisruptionBudget": Printer(
        (
            NAME,
            Column("Min Available"),
            Column("Max Unavailable"),
            Column("Allowed Disruptions", type="integer"),
            AGE,
        ),
        _pdb_row,
    ),
    "Lease": Printer((NAME, Column("Holder"), AGE), _lease_row),
    "PersistentVolume": Printer(
        (
            NAME,
            Column("Capacity"),
            Column("Access Modes"),
            Column("Reclaim Policy"),
            Column("Status"),
            Column("Claim"),
            Column("StorageClass"),
            Column("VolumeAttributesClass"),
            Column("Reason"),
            AGE,
            Column("VolumeMode", 1),
        ),
        _persistent_volume_row,
    ),
    "PersistentVolumeClaim": Printer(
        (
            NAME,
            Column("Status"),
            Column("Volume"),
            Column("Capacity"),
            Column("Access Modes"),
            Column("StorageClass"),
            Column("VolumeAttributesClass"),
            AGE,
            Column("VolumeMode", 1),
        ),
        _persistent_volume_claim_row,
    ),
    "StorageClass": Printer(
        (
            NAME,
            Column("Provisioner"),
            Column("ReclaimPolicy"),
            Column("VolumeBindingMode"),
            Column("AllowVolumeExpansion"),
            AGE,
        ),
        _storage_class_row,
    ),
}
DEFAULT_PRINTER = Printer((NAME, AGE), _default_row)


def printer_for(kind: str) -> Printer:
    return PRINTERS.get(kind, DEFAULT_PRINTER)


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(
    kind: str,
    objects: Iterable[Obj],
    now: datetime,
    *,
    resource_version: str = "",
    continue_token: str = "",
    include_object: str = "Metadata",
    with_columns: bool = True,
    printer: Printer | None = None,
) -> Obj:
    """``printer`` overrides the kind's own (a custom kind's printer columns)."""
    printer = printer or printer_for(kind)
    rows = []
    for obj in objects:
        row: Obj = {"cells": printer.row(obj, now)}
        row_object = _row_object(obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    metadata: Obj = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    if with_columns:
        out["columnDefinitions"] = [c.definition() for c in printer.columns]
    out["rows"] = rows
    return out
