"""A pod's status, computed from what the runtime reports and what the probes say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from corral.clock import rfc3339
from corral.objects import Obj
from nodeagent.runtime.base import ContainerRecord

# Conditions the agent owns; anything else (PodScheduled, readiness gates) is kept.
OWNED_CONDITIONS = ("Initialized", "ContainersReady", "Ready")


@dataclass
class ContainerView:
    """Everything known about one container of the pod spec."""

    name: str
    spec_image: str
    current: ContainerRecord | None
    previous: ContainerRecord | None
    ready: bool
    started: bool
    waiting_reason: str = ""
    waiting_message: str = ""
    termination_message: str = ""


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def _terminated(record: ContainerRecord, message: str = "") -> Obj:
    if record.oom_killed:
        reason = "OOMKilled"
    elif record.exit_code == 0:
        reason = "Completed"
    elif record.exit_code is not None and record.exit_code >= 128 and not record.error:
        reason = "Error"
    else:
        reason = "Error" if not record.error else "ContainerCannotRun"
    out: Obj = {
        "exitCode": record.exit_code if record.exit_code is not None else 0,
        "reason": reason,
        "startedAt": _time(record.started_at),
        "finishedAt": _time(record.finished_at),
        "containerID": f"docker://{record.id}",
    }
    if record.exit_code is not None and record.exit_code > 128:
        out["signal"] = record.exit_code - 128
    if message or record.error:
        out["message"] = message or record.error
    return {k: v for k, v in out.items() if v is not None}


def container_status(view: ContainerView) -> Obj:
    current = view.current
    state: Obj
    if view.waiting_reason or current is None:
        state = {"waiting": {"reason": view.waiting_reason or "ContainerCreating"}}
        if view.waiting_message:
            state["waiting"]["message"] = view.waiting_message
    elif current.state == "running":
        state = {"running": {"startedAt": _time(current.started_at)}}
    elif current.state == "exited":
        state = {"terminated": _terminated(current, view.termination_message)}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    out: Obj = {
        "name": view.name,
        "state": state,
        "lastState": {"terminated": _terminated(view.previous)} if view.previous else {},
        "ready": view.ready,
        "restartCount": current.restart_count
        if current
        else (view.previous.restart_count + 1 if view.previous else 0),
        "image": view.spec_image,
        "imageID": f"docker-pullable://{current.image_id}" if current and current.image_id else "",
        "started": view.started,
    }
    if current is not None:
        out["containerID"] = f"docker://{current.id}"
    return out


def pod_phase(
    restart_policy: str,
    init_done: bool,
    init_failed: bool,
    views: list[ContainerView],
) -> str:
    if init_failed:
        return "Failed"
    if not init_done:
        return "Pending"
    if any(v.current is None or v.current.state == "created" for v in views) and not any(
        v.current is not None and v.current.state in ("running", "exited") for v in views
    ):
        return "Pending"
    running = [v for v in views if v.current is not None and v.current.state == "running"]
    if running:
        return "Running"
    waiting = [v for v in views if v.current is None or v.waiting_reason]
    if waiting:
        # Restarting after a crash, or still being created.
        started_once = any(v.previous is not None for v in views)
        return "Running" if started_once else "Pending"
    exits = [v.current.exit_code for v in views if v.current is not None]
    if restart_policy == "Always":
        return "Running"
    if all(code == 0 for code in exits):
        return "Succeeded"
    if restart_policy == "OnFailure":
        return "Running"
    return "Failed"


def _condition(
    kind: str, ok: bool, now: str, old: dict[str, Obj], reason: str = "", message: str = ""
) -> Obj:
    status = "True" if ok else "False"
    previous = old.get(kind)
    transition = (
        previous.get("lastTransitionTime", now)
        if previous is not None and previous.get("status") == status
        else now
    )
    out: Obj = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": transition,
    }
    if not ok and reason:
        out["reason"] = reason
        out["message"] = message
    return {k: v for k, v in out.items() if v is not None}


def build_status(
    pod: Obj,
    *,
    phase: str,
    init_views: list[ContainerView],
    views: list[ContainerView],
    init_done: bool,
    host_ip: str,
    pod_ip: str,
    start_time: datetime | None,
    now: datetime,
    reason: str = "",
    message: str = "",
) -> Obj:
    old_status = pod.get("status") or {}
    old = {c.get("type"): c for c in old_status.get("conditions") or []}
    stamp = rfc3339(now)
    not_ready = [v.name for v in views if not v.ready]
    containers_ready = not not_ready
    unready_message = f"containers with unready status: [{' '.join(not_ready)}]"
    conditions = [
        c for c in old_status.get("conditions") or [] if c.get("type") not in OWNED_CONDITIONS
    ]
    pending_init = [v.name for v in init_views if not v.current or v.current.exit_code != 0]
    conditions.append(
        _condition(
            "Initialized",
            init_done,
            stamp,
            old,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        )
    )
    conditions.append(
        _condition(
            "ContainersReady", containers_ready, stamp, old, "ContainersNotReady", unready_message
        )
    )
    conditions.append(
        _condition("Ready", containers_ready, stamp, old, "ContainersNotReady", unready_message)
    )
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip or None,
        "hostIPs": [{"ip": host_ip}] if host_ip else None,
        "podIP": pod_ip or None,
        "podIPs": [{"ip": pod_ip}] if pod_ip else None,
        "startTime": _time(start_time),
        "initContainerStatuses": [container_status(v) for v in init_views] or None,
        "containerStatuses": [container_status(v) for v in views],
        "qosClass": old_status.get("qosClass"),
        "nominatedNodeName": old_status.get("nominatedNodeName"),
        "reason": reason or None,
        "message": message or None,
    }
    return {k: v for k, v in status.items() if v is not None}
