"""Nodes: roles, taints, lease, conditions, capacity, and what their pods ask of them."""

from __future__ import annotations

from corral.api.errors import ApiError
from corral.api.fields import escape_field_value
from corral.objects import Obj, labels_of, meta, status
from corralctl.describe.events import write_events
from corralctl.describe.formatting import (
    NONE,
    UNSET,
    format_time,
    go_bool,
    or_none,
    quantity_text,
    write_annotations,
    write_multiline_map,
)
from corralctl.describe.quantities import (
    ZERO,
    Qty,
    add_resources,
    pod_totals,
    resource_list,
    with_percent,
)
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter

NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"


def node_roles(node: Obj) -> list[str]:
    roles = set()
    for key, value in labels_of(node).items():
        if key.startswith(NODE_ROLE_PREFIX) and key[len(NODE_ROLE_PREFIX) :]:
            roles.add(key[len(NODE_ROLE_PREFIX) :])
        elif key == NODE_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def _taint_text(taint: Obj) -> str:
    key, value, effect = (taint.get(k) or "" for k in ("key", "value", "effect"))
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def _write_taints(w: PrefixWriter, taints: list[Obj] | None) -> None:
    w.write(0, "Taints:\t")
    if not taints:
        w.write(0, f"{NONE}\n")
        return
    ordered = sorted(taints, key=lambda t: f"{t.get('effect', '')},{t.get('key', '')}")
    for i, taint in enumerate(ordered):
        if i:
            w.write(0, "\t")
        w.write(0, _taint_text(taint) + "\n")


def _write_node_lease(w: PrefixWriter, lease: Obj | None, error: str) -> None:
    if lease is None:
        w.write(0, f"Lease:\tFailed to get lease: {error}\n")
        return
    spec = lease.get("spec") or {}
    w.write(0, "Lease:\n")
    w.write(1, f"HolderIdentity:\t{spec.get('holderIdentity') or UNSET}\n")
    for title, key in (("AcquireTime", "acquireTime"), ("RenewTime", "renewTime")):
        value = format_time(spec[key]) if spec.get(key) else UNSET
        w.write(1, f"{title}:\t{value}\n")


def _write_node_resources(w: PrefixWriter, src: DescribeSource, node: Obj, pods: list[Obj]) -> None:
    """``describeNodeResource``: each pod's cpu and memory, then the node's totals."""
    status = node.get("status") or {}
    allocatable = resource_list(status.get("allocatable") or status.get("capacity"))
    cpu_total = allocatable.get("cpu", ZERO)
    memory_total = allocatable.get("memory", ZERO)
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n")
    requests: dict[str, Qty] = {}
    limits: dict[str, Qty] = {}
    for pod in pods:
        pod_requests = pod_totals(pod, "requests")
        pod_limits = pod_totals(pod, "limits")
        add_resources(requests, pod_requests)
        add_resources(limits, pod_limits)
        cells = [
            with_percent(pod_requests.get("cpu", ZERO), cpu_total, milli=True),
            with_percent(pod_limits.get("cpu", ZERO), cpu_total, milli=True),
            with_percent(pod_requests.get("memory", ZERO), memory_total, milli=False),
            with_percent(pod_limits.get("memory", ZERO), memory_total, milli=False),
        ]
        meta = pod.get("metadata") or {}
        w.write(
            1,
            f"{meta.get('namespace', '')}\t{meta.get('name', '')}\t\t"
            + "\t".join(cells)
            + f"\t{src.since(meta.get('creationTimestamp'))}\n",
        )
    w.write(
        0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n"
    )
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")
    for name, milli in (("cpu", True), ("memory", False), ("ephemeral-storage", False)):
        whole = allocatable.get(name, ZERO)
        w.write(
            1,
            f"{name}\t{with_percent(requests.get(name, ZERO), whole, milli)}\t"
            f"{with_percent(limits.get(name, ZERO), whole, milli)}\n",
        )
    names = sorted(allocatable)
    for name in (n for n in names if n.startswith("hugepages-")):
        whole = allocatable[name]
        w.write(
            1,
            f"{name}\t{with_percent(requests.get(name, ZERO), whole, False)}\t"
            f"{with_percent(limits.get(name, ZERO), whole, False)}\n",
        )
    standard = {"cpu", "memory", "ephemeral-storage", "pods"}
    for name in (n for n in names if n not in standard and not n.startswith("hugepages-")):
        w.write(1, f"{name}\t{requests.get(name, ZERO)}\t{limits.get(name, ZERO)}\n")


async def describe_node(src: DescribeSource, node: Obj) -> str:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    name = meta.get("name", "")
    pods = await _node_pods(src, name)
    events = await _node_events(src, node)
    lease, lease_error = await _node_lease(src, name)
    w = PrefixWriter()
    w.write(0, f"Name:\t{name}\n")
    w.write(0, f"Roles:\t{or_none(','.join(node_roles(node)))}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{format_time(meta.get('creationTimestamp'))}\n")
    _write_taints(w, spec.get("taints"))
    w.write(0, f"Unschedulable:\t{go_bool(spec.get('unschedulable'))}\n")
    _write_node_lease(w, lease, lease_error)
    _write_node_status(w, node)
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    if spec.get("providerID"):
        w.write(0, f"ProviderID:\t{spec['providerID']}\n")
    if pods is None:
        w.write(0, "Pods:\tnot authorized\n")
    else:
        _write_node_resources(w, src, node, pods)
    write_events(w, src, events)
    return w.render()


async def _node_pods(src: DescribeSource, name: str) -> list[Obj] | None:
    """The node's pods that have not finished; None when the user may not list pods."""
    try:
        return [
            pod
            for pod in await src.items(
                src.rt("v1", "Pod"),
                None,
                field_selector=f"spec.nodeName={escape_field_value(name)},"
                "status.phase!=Succeeded,status.phase!=Failed",
            )
            if status(pod).get("phase") not in ("Succeeded", "Failed")
        ]
    except ApiError as error:
        if error.code != 403:
            raise
        return None


async def _node_events(src: DescribeSource, node: Obj) -> list[Obj] | None:
    events = await src.events(node)
    if events is not None:
        # The kubelet names a node by its name where controllers use its uid.
        seen = {meta(e).get("uid") for e in events}
        name = meta(node).get("name", "")
        events += [
            e for e in await src.events(node, uid=name) or [] if meta(e).get("uid") not in seen
        ]
    return events


async def _node_lease(src: DescribeSource, name: str) -> tuple[Obj | None, str]:
    """The node's Lease, or None and why it could not be read (shown in its place)."""
    try:
        lease = await src.client.get(
            src.rt("coordination.k8s.io/v1", "Lease"), name, NODE_LEASE_NAMESPACE
        )
    except ApiError as error:
        return None, error.message
    return lease, ""


def _write_node_status(w: PrefixWriter, node: Obj) -> None:
    """Conditions, addresses, capacity and allocatable, and the node's system info."""
    status = node.get("status") or {}
    conditions = status.get("conditions") or []
    if conditions:
        w.write(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        )
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(
                1,
                f"{c.get('type', '')} \t{c.get('status', '')} \t"
                f"{format_time(c.get('lastHeartbeatTime'))} \t"
                f"{format_time(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                f"{c.get('message', '')}\n",
            )
    w.write(0, "Addresses:\n")
    for address in status.get("addresses") or []:
        w.write(1, f"{address.get('type', '')}:\t{address.get('address', '')}\n")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        values = status.get(key) or {}
        if values:
            w.write(0, f"{title}:\n")
            for resource in sorted(values):
                w.write(0, f"  {resource}:\t{quantity_text(values[resource])}\n")
    info = status.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for title, key in _SYSTEM_INFO:
        w.write(0, f"  {title}:\t{info.get(key, '')}\n")


_SYSTEM_INFO = (
    ("Machine ID", "machineID"),
    ("System UUID", "systemUUID"),
    ("Boot ID", "bootID"),
    ("Kernel Version", "kernelVersion"),
    ("OS Image", "osImage"),
    ("Operating System", "operatingSystem"),
    ("Architecture", "architecture"),
    ("Container Runtime Version", "containerRuntimeVersion"),
    ("Kubelet Version", "kubeletVersion"),
    ("Kube-Proxy Version", "kubeProxyVersion"),
)
