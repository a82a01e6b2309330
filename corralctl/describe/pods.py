"""Pods, and the pod templates that workloads and ``rollout history`` show."""

from __future__ import annotations

from corral.objects import Obj, status
from corralctl.describe.containers import write_containers, write_resources
from corralctl.describe.events import write_events
from corralctl.describe.formatting import (
    NONE,
    UNSET,
    controlled_by,
    format_time,
    label_selector_text,
    or_none,
    pod_qos_class,
    write_annotations,
    write_multiline_map,
)
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter
from corralctl.describe.volumes import write_volumes


def _write_tolerations(w: PrefixWriter, title: str, tolerations: list[Obj] | None) -> None:
    w.write(0, f"{title}:\t")
    if not tolerations:
        w.write(0, f"{NONE}\n")
        return
    for i, toleration in enumerate(sorted(tolerations, key=lambda t: str(t.get("key", "")))):
        if i:
            w.write(0, "\t")
        key, value, effect = (str(toleration.get(k) or "") for k in ("key", "value", "effect"))
        text = key + (f"={value}" if value else "") + (f":{effect}" if effect else "")
        if toleration.get("operator") == "Exists" and not value:
            text += " op=Exists" if key or effect else "op=Exists"
        if toleration.get("tolerationSeconds") is not None:
            text += f" for {toleration['tolerationSeconds']}s"
        w.write(0, text + "\n")


def _write_spread_constraints(
    w: PrefixWriter, constraints: list[Obj] | None, space: str = ""
) -> None:
    if not constraints:
        return
    w.write(0, f"{space}Topology Spread Constraints:\t")
    for i, tsc in enumerate(sorted(constraints, key=lambda c: str(c.get("topologyKey", "")))):
        if i:
            w.write(0, f"{space}\t")
        text = (
            f"{tsc.get('topologyKey', '')}:{tsc.get('whenUnsatisfiable', '')} "
            f"when max skew {tsc.get('maxSkew', 0)} is exceeded"
        )
        if tsc.get("labelSelector") is not None:
            text += f" for selector {or_none(label_selector_text(tsc['labelSelector']))}"
        w.write(0, text + "\n")


def write_pod_template(w: PrefixWriter, template: Obj | None) -> None:
    """``DescribePodTemplate``: the template's labels, containers and volumes, indented."""
    w.write(0, "Pod Template:\n")
    if template is None:
        w.write(1, f"{UNSET}\n")
        return
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    write_multiline_map(w, "  Labels", meta.get("labels"))
    if meta.get("annotations"):
        write_annotations(w, "  Annotations", meta["annotations"])
    if spec.get("serviceAccountName"):
        w.write(1, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        write_containers(w, "Init Containers", spec["initContainers"], None, None, "  ")
    write_containers(w, "Containers", spec.get("containers") or [], None, None, "  ")
    write_volumes(w, spec.get("volumes") or [], "  ")
    _write_spread_constraints(w, spec.get("topologySpreadConstraints"), "  ")
    if spec.get("priorityClassName"):
        w.write(1, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    write_multiline_map(w, "  Node-Selectors", spec.get("nodeSelector"))
    _write_tolerations(w, "  Tolerations", spec.get("tolerations"))


async def describe_pod(src: DescribeSource, pod: Obj) -> str:
    events = await src.events(pod)
    spec = pod.get("spec") or {}
    w = PrefixWriter()
    _write_pod_header(w, pod)
    _write_pod_status(w, src, pod)
    _write_pod_network(w, pod)
    if spec.get("resources") is not None:
        w.write(0, "Resources:\n")
        write_resources(w, spec["resources"], 1)
    _write_pod_containers(w, pod)
    _write_pod_conditions(w, pod)
    write_volumes(w, spec.get("volumes") or [])
    w.write(0, f"QoS Class:\t{pod_qos_class(pod)}\n")
    write_multiline_map(w, "Node-Selectors", spec.get("nodeSelector"))
    _write_tolerations(w, "Tolerations", spec.get("tolerations"))
    _write_spread_constraints(w, spec.get("topologySpreadConstraints"))
    write_events(w, src, events)
    return w.render()


def _write_pod_header(w: PrefixWriter, pod: Obj) -> None:
    """Name and namespace, how the pod is scheduled and run, its labels and annotations."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    node = spec.get("nodeName")
    w.write(0, f"Node:\t{node}/{status.get('hostIP', '')}\n" if node else f"Node:\t{NONE}\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{format_time(status['startTime'])}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))


def _write_pod_status(w: PrefixWriter, src: DescribeSource, pod: Obj) -> None:
    """The phase (or how long it has been terminating), its reason, the seccomp profile."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = status.get("phase", "")
    if meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {src.since(meta['deletionTimestamp'])})\n")
        w.write(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if status.get("reason"):
        w.write(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.write(0, f"Message:\t{status['message']}\n")
    seccomp = (spec.get("securityContext") or {}).get("seccompProfile")
    if seccomp:
        w.write(0, f"SeccompProfile:\t{seccomp.get('type', '')}\n")
        if seccomp.get("type") == "Localhost":
            w.write(0, f"LocalhostProfile:\t{seccomp.get('localhostProfile', '')}\n")


def _write_pod_network(w: PrefixWriter, pod: Obj) -> None:
    """The pod's addresses, its controller and the node it is nominated for."""
    status = pod.get("status") or {}
    w.write(0, f"IP:\t{status.get('podIP', '')}\n")
    pod_ips = status.get("podIPs") or []
    if pod_ips:
        w.write(0, "IPs:\n")
        for ip in pod_ips:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w.write(0, f"IPs:\t{NONE}\n")
    if controlled_by(pod):
        w.write(0, f"Controlled By:\t{controlled_by(pod)}\n")
    if status.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{status['nominatedNodeName']}\n")


def _write_pod_containers(w: PrefixWriter, pod: Obj) -> None:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("initContainers"):
        write_containers(
            w, "Init Containers", spec["initContainers"], status.get("initContainerStatuses"), pod
        )
    write_containers(
        w, "Containers", spec.get("containers") or [], status.get("containerStatuses"), pod
    )
    if spec.get("ephemeralContainers"):
        write_containers(
            w,
            "Ephemeral Containers",
            spec["ephemeralContainers"],
            status.get("ephemeralContainerStatuses"),
            pod,
        )


def _write_pod_conditions(w: PrefixWriter, pod: Obj) -> None:
    """The readiness gates with the status of their conditions, then every condition."""
    spec = pod.get("spec") or {}
    conditions = status(pod).get("conditions") or []
    if spec.get("readinessGates"):
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        for gate in spec["readinessGates"]:
            found = [c for c in conditions if c.get("type") == gate.get("conditionType")]
            gate_status = found[0].get("status", "") if found else NONE
            w.write(1, f"{gate.get('conditionType', '')} \t{gate_status} \n")
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for condition in conditions:
            w.write(1, f"{condition.get('type', '')} \t{condition.get('status', '')} \n")
