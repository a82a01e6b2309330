"""Workloads: ReplicationControllers, ReplicaSets, Deployments and DaemonSets."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime

from corral.api.errors import ApiError
from corral.api.labels import SelectorError, selector_from_dict, selector_from_set
from corral.objects import Obj, annotations_of, meta, parse_time, spec, status
from corralctl.describe.events import write_events
from corralctl.describe.formatting import (
    NONE,
    controlled_by,
    controller_of,
    format_labels,
    format_time,
    int_or_string,
    label_selector_text,
    or_none,
    write_annotations,
    write_multiline_map,
)
from corralctl.describe.pods import write_pod_template
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter

REVISION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH = "pod-template-hash"


async def _pod_phase_counts(src: DescribeSource, owner: Obj, selector: str) -> tuple[int, ...]:
    """Running, waiting, succeeded and failed pods that ``owner`` controls."""
    uid = meta(owner).get("uid")
    pods = await src.items(
        src.rt("v1", "Pod"), meta(owner).get("namespace"), label_selector=selector
    )
    phases = [
        status(pod).get("phase")
        for pod in pods
        if (ref := controller_of(pod)) is not None and ref.get("uid") == uid
    ]
    return tuple(phases.count(p) for p in ("Running", "Pending", "Succeeded", "Failed"))


def _pods_status(counts: tuple[int, ...]) -> str:
    running, waiting, succeeded, failed = counts
    return f"{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed"


def _write_workload_conditions(w: PrefixWriter, conditions: list[Obj] | None) -> None:
    if not conditions:
        return
    w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
    w.write(1, "----\t------\t------\n")
    for condition in conditions:
        w.write(
            1,
            f"{condition.get('type', '')} \t{condition.get('status', '')}\t"
            f"{condition.get('reason', '')}\n",
        )


def _replicas(obj: Obj) -> int:
    value = spec(obj).get("replicas")
    return 1 if value is None else int(value)


async def describe_replication_controller(src: DescribeSource, rc: Obj) -> str:
    spec = rc.get("spec") or {}
    selector = spec.get("selector") or {}
    counts = await _pod_phase_counts(src, rc, str(selector_from_set(selector)))
    events = await src.events(rc)
    meta = rc.get("metadata") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Selector:\t{format_labels(selector)}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))
    current = status(rc).get("replicas", 0)
    w.write(0, f"Replicas:\t{current} current / {_replicas(rc)} desired\n")
    w.write(0, f"Pods Status:\t{_pods_status(counts)}\n")
    write_pod_template(w, spec.get("template"))
    _write_workload_conditions(w, status(rc).get("conditions"))
    write_events(w, src, events)
    return w.render()


async def describe_replica_set(src: DescribeSource, rs: Obj) -> str:
    spec = rs.get("spec") or {}
    pods_status: str
    try:
        counts = await _pod_phase_counts(src, rs, str(selector_from_dict(spec.get("selector"))))
        pods_status = _pods_status(counts)
    except (ApiError, SelectorError) as error:
        pods_status = f"error in fetching pods: {error}"
    events = await src.events(rs)
    meta = rs.get("metadata") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Selector:\t{or_none(label_selector_text(spec.get('selector')))}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))
    if controlled_by(rs):
        w.write(0, f"Controlled By:\t{controlled_by(rs)}\n")
    current = status(rs).get("replicas", 0)
    w.write(0, f"Replicas:\t{current} current / {_replicas(rs)} desired\n")
    w.write(0, f"Pods Status:\t{pods_status}\n")
    write_pod_template(w, spec.get("template"))
    _write_workload_conditions(w, status(rs).get("conditions"))
    write_events(w, src, events)
    return w.render()


def _template_identity(template: Obj | None) -> Obj:
    """A pod template with the label its ReplicaSet adds taken out, for comparison."""
    out = copy.deepcopy(template or {})
    meta = out.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels.pop(TEMPLATE_HASH, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    return out


def split_replica_sets(
    deployment: Obj, replica_sets: Iterable[Obj]
) -> tuple[list[Obj], Obj | None]:
    """The deployment's old ReplicaSets and its new one.

    The new one runs the deployment's current template (oldest such first, as
    the deployment controller picks it); failing that, the one whose revision
    annotation matches the deployment's.
    """
    uid = meta(deployment).get("uid")
    owned = [
        rs
        for rs in replica_sets
        if (ref := controller_of(rs)) is not None and ref.get("uid") == uid
    ]
    want = _template_identity(spec(deployment).get("template"))
    by_age = sorted(
        owned,
        key=lambda rs: (
            parse_time(meta(rs).get("creationTimestamp")) or datetime.min.replace(tzinfo=UTC)
        ),
    )
    new = next(
        (rs for rs in by_age if _template_identity(spec(rs).get("template")) == want),
        None,
    )
    if new is None:
        revision = annotations_of(deployment).get(REVISION)
        new = next(
            (rs for rs in owned if revision and annotations_of(rs).get(REVISION) == revision),
            None,
        )
    return [rs for rs in owned if rs is not new], new


def _replica_sets_text(replica_sets: list[Obj]) -> str:
    return (
        ", ".join(
            f"{meta(rs).get('name', '')} "
            f"({status(rs).get('replicas', 0)}/{_replicas(rs)} replicas created)"
            for rs in replica_sets
        )
        or NONE
    )


async def describe_deployment(src: DescribeSource, deployment: Obj) -> str:
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    events = await src.events(deployment)
    try:
        replica_sets = await src.items(src.rt("apps/v1", "ReplicaSet"), meta.get("namespace"))
    except ApiError:
        replica_sets = []
    old, new = split_replica_sets(deployment, replica_sets)
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"CreationTimestamp:\t{format_time(meta.get('creationTimestamp'))}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{label_selector_text(spec.get('selector'))}\n")
    w.write(
        0,
        f"Replicas:\t{_replicas(deployment)} desired | "
        f"{status.get('updatedReplicas', 0)} updated | {status.get('replicas', 0)} total | "
        f"{status.get('availableReplicas', 0)} available | "
        f"{status.get('unavailableReplicas', 0)} unavailable\n",
    )
    strategy = spec.get("strategy") or {}
    w.write(0, f"StrategyType:\t{strategy.get('type', '')}\n")
    w.write(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        w.write(
            0,
            f"RollingUpdateStrategy:\t{int_or_string(rolling.get('maxUnavailable'))} "
            f"max unavailable, {int_or_string(rolling.get('maxSurge'))} max surge\n",
        )
    write_pod_template(w, spec.get("template"))
    _write_workload_conditions(w, status.get("conditions"))
    if old or new is not None:
        w.write(0, f"OldReplicaSets:\t{_replica_sets_text(old)}\n")
        w.write(0, f"NewReplicaSet:\t{_replica_sets_text([new] if new is not None else [])}\n")
    write_events(w, src, events)
    return w.render()


async def describe_daemon_set(src: DescribeSource, ds: Obj) -> str:
    """kubectl's ``DaemonSetDescriber``: the node counts the controller reports."""
    meta = ds.get("metadata") or {}
    spec = ds.get("spec") or {}
    status = ds.get("status") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    pods_status: str
    try:
        counts = await _pod_phase_counts(src, ds, str(selector_from_dict(spec.get("selector"))))
        pods_status = _pods_status(counts)
    except (ApiError, SelectorError) as error:
        pods_status = f"error in fetching pods: {error}"
    events = await src.events(ds)
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Selector:\t{label_selector_text(spec.get('selector'))}\n")
    w.write(0, f"Node-Selector:\t{format_labels(template_spec.get('nodeSelector'))}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))
    for label, key in (
        ("Desired Number of Nodes Scheduled", "desiredNumberScheduled"),
        ("Current Number of Nodes Scheduled", "currentNumberScheduled"),
        ("Number of Nodes Scheduled with Up-to-date Pods", "updatedNumberScheduled"),
        ("Number of Nodes Scheduled with Available Pods", "numberAvailable"),
        ("Number of Nodes Misscheduled", "numberMisscheduled"),
    ):
        # No tab: kubectl writes these with a single space, outside the alignment.
        w.write(0, f"{label}: {int(status.get(key) or 0)}\n")
    w.write(0, f"Pods Status:\t{pods_status}\n")
    write_pod_template(w, spec.get("template"))
    write_events(w, src, events)
    return w.render()
