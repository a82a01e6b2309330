"""``corral up --wait``: wait until the applied workloads are ready, and say how it goes.

A workload is ready when its controller has seen its latest spec
(``observedGeneration`` ≥ ``generation``) and ``readyReplicas`` equals
``spec.replicas``; a Deployment must also have every replica on the latest
template (``updatedReplicas``), which is what ``rollout status`` waits for.
The pods its selector matches must say so too: just after a restart, a
workload's status is what it was when the cluster stopped, until the
controller manager is elected again and recounts.

It polls with plain lists, rather than watching, because the one question
is "are they all there yet": a poll a second is cheap, and it survives an
API server that restarts under it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TextIO

from corral import replication
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.podstatus import StatusPatcher, mark_pod_not_ready
from corral.client.rest import ConnectionFailed
from corral.objects import Obj, labels_of, meta, spec, status
from corralctl.manifests import Manifest
from corralctl.waiting import poll_until

POLL_INTERVAL = 1.0
# One poll may not hang the wait: it is retried on the next round.
POLL_TIMEOUT = 30.0
_MESSAGE_LIMIT = 160
_POD_LINES = 30


def _resource(name: str) -> ResourceType:
    found = REGISTRY.resolve(name)
    assert found is not None, name
    return found


PODS = _resource("pods")
WORKLOAD_KINDS: tuple[tuple[str, ResourceType], ...] = (
    ("deployment", _resource("deployments")),
    ("replicationcontroller", _resource("replicationcontrollers")),
    ("statefulset", _resource("statefulsets")),
)


class Lister(Protocol):
    async def list(self, rt: ResourceType, namespace: str | None = None) -> Obj: ...


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str
    replicas: int
    ready: int
    observed: bool
    # Deployments only: replicas on the newest template.
    updated: int | None = None
    # Ready pods its selector matches; None when not counted.
    pods_ready: int | None = None
    # A replicated set (corral/replication.py): whether one of its pods is
    # labelled the writable primary; None for any other workload.
    primary: bool | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.kind, self.name)

    @property
    def done(self) -> bool:
        if not self.observed or self.ready != self.replicas:
            return False
        if self.pods_ready is not None and self.pods_ready < self.replicas:
            return False
        if self.primary is False:
            return False
        return self.updated is None or self.updated == self.replicas

    def line(self) -> str:
        ready = self.ready if self.pods_ready is None else min(self.ready, self.pods_ready)
        text = f"  {self.kind}/{self.name} {ready}/{self.replicas} ready"
        if self.updated is not None and self.updated != self.replicas:
            text += f", {self.updated}/{self.replicas} updated"
        if self.primary is not None:
            text += ", primary elected" if self.primary else ", no primary yet"
        if not self.observed:
            text += ", spec not yet seen by its controller"
        if self.namespace != "default":
            text += f" (namespace {self.namespace})"
        return text


def workload(kind: str, obj: Obj, pods: list[Obj] | None = None) -> Workload:
    """The workload's state; with ``pods`` (its namespace's), also its ready pods counted."""
    metadata = meta(obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    replicas = spec.get("replicas")
    generation = int(metadata.get("generation") or 0)
    selector = _selector(kind, spec)
    pods_ready = None
    primary = None
    if pods is not None and selector:
        mine = [
            pod
            for pod in pods
            if not meta(pod).get("deletionTimestamp") and selector.items() <= labels_of(pod).items()
        ]
        pods_ready = sum(1 for pod in mine if _is_ready(pod))
        hooks = replication.hooks_of(spec.get("template") or {})
        if hooks is not None:
            primary = any(labels_of(pod).get(hooks.role_label) == "primary" for pod in mine)
    return Workload(
        kind=kind,
        namespace=str(metadata.get("namespace") or "default"),
        name=str(metadata.get("name") or ""),
        replicas=1 if replicas is None else int(replicas),
        ready=int(status.get("readyReplicas") or 0),
        observed=int(status.get("observedGeneration") or 0) >= generation,
        updated=int(status.get("updatedReplicas") or 0) if kind == "deployment" else None,
        pods_ready=pods_ready,
        primary=primary,
    )


def _selector(kind: str, spec: Obj) -> dict[str, str]:
    """The labels the workload's pods carry; empty when its selector says more than labels."""
    selector = spec.get("selector") or {}
    if kind == "replicationcontroller":
        return dict(selector) if isinstance(selector, dict) else {}
    if selector.get("matchExpressions"):
        return {}
    return dict(selector.get("matchLabels") or {})


def applied_namespaces(manifests: Iterable[Manifest], default: str = "default") -> list[str]:
    """The namespaces the manifests put objects in, and those they create."""
    found: set[str] = set()
    for manifest in manifests:
        obj = manifest.obj
        metadata = meta(obj)
        if obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1":
            if metadata.get("name"):
                found.add(str(metadata["name"]))
            continue
        rt = REGISTRY.by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
        if rt is None or rt.namespaced:
            found.add(str(metadata.get("namespace") or default))
    return sorted(found)


async def workloads(client: Lister, namespaces: Iterable[str]) -> list[Workload]:
    out: list[Workload] = []
    for namespace in namespaces:
        found: list[tuple[str, Obj]] = []
        for kind, rt in WORKLOAD_KINDS:
            listing = await client.list(rt, namespace)
            found.extend((kind, item) for item in listing.get("items") or [])
        if not found:
            continue
        pods = (await client.list(PODS, namespace)).get("items") or []
        out.extend(workload(kind, item, pods) for kind, item in found)
    return sorted(out, key=lambda w: w.key)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _is_ready(pod: Obj) -> bool:
    conditions = status(pod).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_problem(pod: Obj) -> str | None:
    """Why a pod is not ready, in one line; None for a ready or finished pod."""
    status = pod.get("status") or {}
    if _is_ready(pod) or status.get("phase") == "Succeeded":
        return None
    reasons: list[str] = []
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            detail = condition.get("message") or condition.get("reason") or "not scheduled"
            reasons.append(f"unscheduled: {detail}")
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            state = container.get("state") or {}
            name = container.get("name", "?")
            # An empty state object still names the state ({"running": {}}).
            if "waiting" in state:
                waiting = state["waiting"] or {}
                reason = waiting.get("reason") or "Waiting"
                message = waiting.get("message")
                reasons.append(f"{name}: {reason}" + (f" ({message})" if message else ""))
            elif "terminated" in state and key == "containerStatuses":
                ended = state["terminated"] or {}
                reasons.append(f"{name}: terminated, {ended.get('reason') or 'exit'}")
            elif "running" in state and not container.get("ready"):
                reasons.append(f"{name}: running, not ready")
    if not reasons:
        reasons.append(f"phase {status.get('phase') or 'Pending'}")
    return _short("; ".join(reasons))


async def pod_report(client: Lister, namespaces: Iterable[str]) -> list[str]:
    lines: list[str] = []
    for namespace in namespaces:
        listing = await client.list(PODS, namespace)
        for pod in listing.get("items") or []:
            problem = pod_problem(pod)
            if problem is None:
                continue
            metadata = meta(pod)
            node = spec(pod).get("nodeName") or "no node"
            where = "" if namespace == "default" else f" (namespace {namespace})"
            lines.append(f"  pod/{metadata.get('name')}{where} on {node}: {problem}")
    if len(lines) > _POD_LINES:
        lines = [*lines[:_POD_LINES], f"  ... and {len(lines) - _POD_LINES} more"]
    return lines


_TRANSIENT = (ApiError, ConnectionFailed, OSError, TimeoutError)


class Patcher(StatusPatcher, Protocol):
    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        field_selector: str = "",
    ) -> Obj: ...


async def mark_not_ready(client: Patcher, nodes: Iterable[str], now: str) -> int:
    """Mark the ready pods bound to ``nodes`` not ready; how many.

    For nodes whose containers are known gone (a simulated host made anew):
    what their pods last reported is stale until their agents report again,
    as the node lifecycle controller marks the pods of a node it lost.
    """
    marked = 0
    for node in nodes:
        listing = await client.list(
            PODS, all_namespaces=True, field_selector=f"spec.nodeName={node}"
        )
        for pod in listing.get("items") or []:
            if _is_ready(pod) and await mark_pod_not_ready(client, pod, now):
                marked += 1
    return marked


async def wait_ready(
    client: Lister,
    namespaces: list[str],
    timeout: float,
    *,
    out: TextIO,
    interval: float = POLL_INTERVAL,
    tick: Callable[[], None] = lambda: None,
    stopping: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Poll until every workload is ready (True) or ``timeout`` passes (False).

    A line for each workload whenever its counts change; on timeout, the
    workloads still short and the pods that are not ready, with their
    reasons. ``tick`` runs between polls (the supervisor tends its
    children there); ``stopping`` ends the wait early.
    """

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    shown: dict[tuple[str, str, str], str] = {}
    current: list[Workload] = []

    async def attempt() -> bool:
        current[:] = await workloads(client, namespaces)
        for item in current:
            line = item.line()
            if shown.get(item.key) != line:
                shown[item.key] = line
                say(line)
        return all(item.done for item in current)

    say(f"waiting for the workloads in {', '.join(namespaces)} (up to {timeout:.0f}s)")
    outcome = await poll_until(
        attempt,
        timeout,
        interval=interval,
        attempt_timeout=POLL_TIMEOUT,
        transient=_TRANSIENT,
        clock=clock,
        tick=tick,
        stopping=stopping,
    )
    if outcome.done:
        say(f"all {len(current)} workloads ready in {outcome.elapsed:.0f}s")
        return True
    if not outcome.stopped:
        await _report_not_ready(client, namespaces, timeout, current, outcome.error, say)
    return False


async def _report_not_ready(
    client: Lister,
    namespaces: list[str],
    timeout: float,
    current: list[Workload],
    error: BaseException | None,
    say: Callable[[str], None],
) -> None:
    """The workloads still short, why the last poll failed, and the pods not ready."""
    say(f"not ready after {timeout:.0f}s:")
    for item in current:
        if not item.done:
            say(item.line())
    if error is not None:
        say(f"  (the last poll failed: {_short(str(error) or type(error).__name__)})")
    try:
        async with asyncio.timeout(POLL_TIMEOUT):
            pods = await pod_report(client, namespaces)
    except _TRANSIENT as failure:
        pods = [f"  (pods could not be listed: {_short(str(failure))})"]
    if pods:
        say("pods not ready:")
        for line in pods:
            say(line)


def _node_ready(node: Obj) -> bool:
    conditions = status(node).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def wait_nodes_ready(
    client: Lister,
    nodes: list[str],
    timeout: float,
    *,
    out: TextIO,
    interval: float = POLL_INTERVAL,
    tick: Callable[[], None] = lambda: None,
    stopping: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Poll until every node in ``nodes`` is registered and Ready; those still not.

    ``corral up --apply`` waits for this first: applied before its agents
    have registered, a whole stack lands on whichever node came first, and
    replicas meant to be kept apart share a host.
    """
    missing = list(nodes)

    async def attempt() -> bool:
        listing = await client.list(_resource("nodes"))
        ready = {
            str(meta(node).get("name")) for node in listing.get("items") or [] if _node_ready(node)
        }
        missing[:] = [name for name in nodes if name not in ready]
        return not missing

    out.write(f"waiting for nodes {', '.join(nodes)} to be Ready (up to {timeout:.0f}s)\n")
    out.flush()
    # A failed poll is only retried: the deadline alone ends this wait, and
    # what it returns (the nodes still missing) says what went wrong.
    outcome = await poll_until(
        attempt,
        timeout,
        interval=interval,
        attempt_timeout=POLL_TIMEOUT,
        transient=_TRANSIENT,
        clock=clock,
        tick=tick,
        stopping=stopping,
    )
    if outcome.done:
        out.write(f"all {len(nodes)} nodes Ready in {outcome.elapsed:.0f}s\n")
        out.flush()
        return []
    return missing
