"""Replicated sets: one writer among a controller's pods, and the words its parts share.

A workload whose pod template carries the annotation ``replication.corral.io/hooks``
is a *replicated set*: its pods hold copies of one data set, exactly one of
them (the primary) takes writes, and the others follow it. The hooks are
commands run inside a container of the pod, which is all corral knows of
the database:

- ``status`` prints one JSON object: ``{"role": "primary" | "replica" |
  "empty", "position": [int, ...], "writable": bool}``; positions compare as
  integer lists, so the one with the most replicated data is the largest;
- ``promote`` makes a replica the primary (after it has applied all it has
  received);
- ``demote`` stops a primary taking writes (the fence);
- ``follow ADDRESS`` makes the pod replicate the primary at ADDRESS; exit
  code 3 says its data diverged and it must be rebuilt;
- ``rebuild ADDRESS`` replaces the pod's data with a copy of the primary's.

The controller manager decides (``controlplane/controllers/replicatedset.py``),
the node agents carry it out and report (``nodeagent/replication.py``). They
speak through the pod: the controller writes the annotations below, each
agent reports the ``status`` hook's answer as a pod condition. docs/replication.md
explains the protocol and why it never lets two primaries take writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from corral.objects import Obj, annotations_of, meta, status

HOOKS_ANNOTATION = "replication.corral.io/hooks"
# Written by the controller on every pod of a set: who is to be primary, where
# it answers, and the election's number (it only grows).
PRIMARY_ANNOTATION = "replication.corral.io/primary"
PRIMARY_ADDRESS_ANNOTATION = "replication.corral.io/primary-address"
EPOCH_ANNOTATION = "replication.corral.io/epoch"
# On the primary's pod: stop taking writes now, a switchover follows.
DEMOTE_ANNOTATION = "replication.corral.io/demote"
# On the primary's pod, by the eviction API or a rolling update: hand the role
# over before this pod goes.
SWITCHOVER_ANNOTATION = "replication.corral.io/switchover"
# The agent's report of the status hook, as a pod condition.
CONDITION = "replication.corral.io/Role"

Role = Literal["primary", "replica", "empty", "unknown"]
ROLES: tuple[Role, ...] = ("primary", "replica", "empty", "unknown")
# follow's exit code for "this copy diverged from the primary: rebuild it".
DIVERGED_EXIT_CODE = 3

DEFAULT_LEASE_SECONDS = 16.0
DEFAULT_PERIOD_SECONDS = 1.0
DEFAULT_HOOK_TIMEOUT_SECONDS = 30.0
DEFAULT_REBUILD_TIMEOUT_SECONDS = 600.0


class HooksError(ValueError):
    """The hooks annotation cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Hooks:
    container: str
    status: tuple[str, ...]
    promote: tuple[str, ...]
    demote: tuple[str, ...]
    follow: tuple[str, ...]
    rebuild: tuple[str, ...]
    # The primary's node must be heard from within this long, or a replica is
    # promoted; the agent fences its primary well before (fence_seconds).
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    period_seconds: float = DEFAULT_PERIOD_SECONDS
    hook_timeout_seconds: float = DEFAULT_HOOK_TIMEOUT_SECONDS
    rebuild_timeout_seconds: float = DEFAULT_REBUILD_TIMEOUT_SECONDS
    # The label the controller sets, so Services can select the primary.
    role_label: str = "role"

    @property
    def fence_seconds(self) -> float:
        """How long an agent that cannot reach the control plane keeps its primary writable.

        Half the lease: the controller waits the whole lease, as it observes
        it, before promoting, so the fence is in place with half a lease to
        spare for a slow hook and clocks that run at different rates.
        """
        return self.lease_seconds / 2


def _command(spec: Obj, field: str) -> tuple[str, ...]:
    value = spec.get(field)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise HooksError(f"{field}: a non-empty list of strings (a command and its arguments)")
    return tuple(value)


def _seconds(spec: Obj, field: str, default: float, minimum: float) -> float:
    value = spec.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise HooksError(f"{field}: a number of seconds, at least {minimum:g}")
    return float(value)


def parse_hooks(text: str) -> Hooks:
    """The hooks of a ``replication.corral.io/hooks`` annotation, or HooksError naming the field."""
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise HooksError(f"not JSON: {error}") from None
    if not isinstance(spec, dict):
        raise HooksError("expected a JSON object")
    known = {
        "container",
        "status",
        "promote",
        "demote",
        "follow",
        "rebuild",
        "leaseSeconds",
        "periodSeconds",
        "hookTimeoutSeconds",
        "rebuildTimeoutSeconds",
        "roleLabel",
    }
    unknown = sorted(set(spec) - known)
    if unknown:
        raise HooksError(f"{unknown[0]}: unknown field")
    container = spec.get("container")
    if not isinstance(container, str) or not container:
        raise HooksError("container: the name of the container the hooks run in")
    role_label = spec.get("roleLabel", "role")
    if not isinstance(role_label, str) or not role_label:
        raise HooksError("roleLabel: a label key")
    hooks = Hooks(
        container=container,
        status=_command(spec, "status"),
        promote=_command(spec, "promote"),
        demote=_command(spec, "demote"),
        follow=_command(spec, "follow"),
        rebuild=_command(spec, "rebuild"),
        lease_seconds=_seconds(spec, "leaseSeconds", DEFAULT_LEASE_SECONDS, 4),
        period_seconds=_seconds(spec, "periodSeconds", DEFAULT_PERIOD_SECONDS, 0.2),
        hook_timeout_seconds=_seconds(spec, "hookTimeoutSeconds", DEFAULT_HOOK_TIMEOUT_SECONDS, 1),
        rebuild_timeout_seconds=_seconds(
            spec, "rebuildTimeoutSeconds", DEFAULT_REBUILD_TIMEOUT_SECONDS, 10
        ),
        role_label=role_label,
    )
    if hooks.period_seconds * 3 > hooks.fence_seconds:
        raise HooksError("periodSeconds: at most a sixth of leaseSeconds")
    return hooks


def hooks_of(obj: Obj) -> Hooks | None:
    """A pod's (or pod template's) hooks; None when it has none or they are unusable."""
    text = annotations_of(obj).get(HOOKS_ANNOTATION)
    if not isinstance(text, str):
        return None
    try:
        return parse_hooks(text)
    except HooksError:
        return None


@dataclass(frozen=True, slots=True)
class Report:
    """What a pod's status hook said last."""

    role: Role
    position: tuple[int, ...] = ()
    writable: bool = False
    epoch: int = 0  # the election the agent had seen when it asked

    def to_condition(self, now: str) -> Obj:
        message = json.dumps(
            {"position": list(self.position), "writable": self.writable, "epoch": self.epoch},
            separators=(",", ":"),
        )
        return {
            "type": CONDITION,
            "status": "True" if self.role in ("primary", "replica") else "False",
            "reason": self.role.capitalize(),
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }


def parse_status_output(text: str, epoch: int) -> Report:
    """The status hook's stdout; ValueError if it is not the documented JSON."""
    data = json.loads(text.strip().splitlines()[-1] if text.strip() else "")
    if not isinstance(data, dict):
        raise ValueError("the status hook must print a JSON object")
    role = data.get("role")
    if role not in ROLES:
        raise ValueError(f"role: one of {', '.join(ROLES)}")
    position = data.get("position", [])
    if not isinstance(position, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in position
    ):
        raise ValueError("position: a list of non-negative integers")
    return Report(role, tuple(position), bool(data.get("writable", False)), epoch)


def report_of(pod: Obj) -> Report | None:
    """The agent's last report for a pod, from its condition."""
    for condition in status(pod).get("conditions") or []:
        if condition.get("type") != CONDITION:
            continue
        role = str(condition.get("reason") or "").lower()
        if role not in ROLES:
            return None
        try:
            data = json.loads(condition.get("message") or "{}")
            position = tuple(int(p) for p in data.get("position") or [])
            epoch = int(data.get("epoch") or 0)
        except (ValueError, TypeError, AttributeError):
            return None
        return Report(role, position, bool(data.get("writable")), epoch)
    return None


@dataclass(frozen=True, slots=True)
class Assignment:
    """What the controller has told a pod: who is primary, at which address, in which election."""

    primary: str
    address: str
    epoch: int
    demote: bool = False
    switchover: bool = False


def assignment_of(pod: Obj) -> Assignment:
    annotations = annotations_of(pod)
    try:
        epoch = int(annotations.get(EPOCH_ANNOTATION) or 0)
    except ValueError:
        epoch = 0
    return Assignment(
        primary=str(annotations.get(PRIMARY_ANNOTATION) or ""),
        address=str(annotations.get(PRIMARY_ADDRESS_ANNOTATION) or ""),
        epoch=epoch,
        demote=annotations.get(DEMOTE_ANNOTATION) == "true",
        switchover=bool(annotations.get(SWITCHOVER_ANNOTATION)),
    )


def leads(pod: Obj) -> bool:
    """Whether the pod is its replicated set's elected primary."""
    metadata = meta(pod)
    if HOOKS_ANNOTATION not in (metadata.get("annotations") or {}):
        return False
    assignment = assignment_of(pod)
    return assignment.epoch > 0 and assignment.primary == metadata.get("name")
