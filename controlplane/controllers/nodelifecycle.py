"""Node lifecycle: notice dead nodes, taint them, and move their pods off.

Two controllers, as Kubernetes splits them since 1.29:

- ``NodeLifecycleController`` watches node heartbeats (the node's Lease in
  ``kube-node-lease`` and its Ready condition). A node silent for the grace
  period gets ``Ready=Unknown``; the ``unreachable`` (Ready Unknown) or
  ``not-ready`` (Ready False) taints follow the Ready condition, with
  effects NoSchedule and NoExecute, and ``unschedulable`` follows a cordon.
  Pods on an unreachable node are marked not ready (so Services stop
  sending them traffic), and pods left terminating there past their grace
  period are force-deleted.
- ``TaintEvictionController`` deletes pods from nodes with NoExecute taints
  they do not tolerate, once their ``tolerationSeconds`` have run out.

Silence is judged by this controller's own clock, from when it last *saw*
a heartbeat change, not from the timestamps agents write: clocks on
different hosts may disagree, and a restarted controller gives every node a
full grace period before judging it, as Kubernetes' does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from controlplane.controllers import podutil
from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.podutil import NODE_NAME_INDEX
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.client.podstatus import mark_pod_not_ready
from corral.client.rest import Client, resource_path
from corral.clock import rfc3339
from corral.informer import Informer, object_key
from corral.objects import Obj, meta, name_of, parse_time, spec, status, uid_of

log = logging.getLogger(__name__)

NODES = REGISTRY.by_kind("v1", "Node")
PODS = REGISTRY.by_kind("v1", "Pod")
LEASES = REGISTRY.by_kind("coordination.k8s.io/v1", "Lease")
assert NODES is not None and PODS is not None and LEASES is not None

NODE_LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
_MANAGED_TAINTS = (UNREACHABLE, NOT_READY, UNSCHEDULABLE)
_HEALTH_TAINTS = (UNREACHABLE, NOT_READY)

DEFAULT_GRACE_PERIOD = 15.0
DEFAULT_TOLERATION_SECONDS = 20.0
# The agents' --fence-after: how long an agent goes without an acknowledged
# heartbeat before it stops its StatefulSet pods (nodeagent.fencing).
DEFAULT_AGENT_FENCE_AFTER = 20.0
# Clocks on two hosts may run at different rates: the agent's 20 s may be
# this controller's 22 s.
FENCE_CLOCK_MARGIN = 0.10
# From the agent's deadline to its containers being told to stop: its check
# runs every second, and the runtime takes a moment to act.
FENCE_STOP_MARGIN = 5.0
# While every node is down, evictions wait; this is how often that is rechecked.
DISRUPTION_RECHECK = 5.0
_NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
STOPPED_POSTING = "Kubelet stopped posting node status."
NEVER_POSTED = "Kubelet never posted node status."


# --- node state ------------------------------------------------------------------------------


def must_not_run_twice(pod: Obj) -> bool:
    """A StatefulSet's pod: its name must never run in two places at once."""
    ref = podutil.controller_ref(pod)
    return ref is not None and ref.get("kind") == "StatefulSet"


def fenced_after(pod: Obj, agent_fence_after: float) -> float:
    """Seconds of node silence after which the pod's containers are surely stopped.

    The agent stops the pod ``agent_fence_after`` seconds after sending its
    last acknowledged heartbeat (which this controller heard no earlier),
    giving it its grace period, the longer of the pod's and the deletion's.
    """
    spec_grace = spec(pod).get("terminationGracePeriodSeconds")
    deletion_grace = meta(pod).get("deletionGracePeriodSeconds")
    grace = max(int(30 if spec_grace is None else spec_grace), int(deletion_grace or 0))
    # The agent measures both on its own clock, hence the margin on both.
    return (agent_fence_after + grace) * (1 + FENCE_CLOCK_MARGIN) + FENCE_STOP_MARGIN


def ready_status(node: Obj) -> str | None:
    """ "True", "False" or "Unknown" from the node's Ready condition; None if it has none."""
    ready = podutil.condition(node, "Ready")
    return None if ready is None else str(ready.get("status"))


def taints_of(node: Obj) -> list[Obj]:
    taints: list[Obj] = spec(node).get("taints") or []
    return taints


def desired_taints(node: Obj, now: datetime) -> list[Obj]:
    """The node's taints with the controller-managed ones made to match its state.

    Taints someone else set are kept as they are; managed taints that stay
    keep their ``timeAdded`` (toleration clocks run from it).
    """
    spec = node.get("spec") or {}
    wanted: set[tuple[str, str]] = set()
    status = ready_status(node)
    if status in ("Unknown", "False"):
        key = UNREACHABLE if status == "Unknown" else NOT_READY
        wanted |= {(key, "NoSchedule"), (key, "NoExecute")}
    if spec.get("unschedulable"):
        wanted.add((UNSCHEDULABLE, "NoSchedule"))
    kept = [
        t
        for t in taints_of(node)
        if t.get("key") not in _MANAGED_TAINTS or (t.get("key"), t.get("effect")) in wanted
    ]
    have = {(t.get("key"), t.get("effect")) for t in kept}
    for key, effect in sorted(wanted - have):
        kept.append({"key": key, "effect": effect, "timeAdded": rfc3339(now)})
    return kept


def unknown_conditions(node: Obj, now: datetime) -> list[Obj]:
    """The node's conditions after its agent went silent: Unknown, heartbeats kept."""
    stamp = rfc3339(now)
    conditions = []
    seen = set()
    for found in status(node).get("conditions") or []:
        condition = dict(found)
        seen.add(condition.get("type"))
        if condition.get("type") in _NODE_CONDITIONS and condition.get("status") != "Unknown":
            condition.update(
                status="Unknown",
                reason="NodeStatusUnknown",
                message=STOPPED_POSTING,
                lastTransitionTime=stamp,
            )
        conditions.append(condition)
    if "Ready" not in seen:
        conditions.append(
            {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusNeverUpdated",
                "message": NEVER_POSTED,
                "lastHeartbeatTime": meta(node).get("creationTimestamp") or stamp,
                "lastTransitionTime": stamp,
            }
        )
    return conditions


def _heartbeat(old: Obj | None, new: Obj) -> bool:
    """Whether a node update carries a sign of life from its agent.

    A new ``lastHeartbeatTime``, or a Ready status the agent reports
    (True or False); Unknown is this controller's own writing.
    """
    before = podutil.condition(old, "Ready") if old is not None else None
    after = podutil.condition(new, "Ready")
    if after is None:
        return False
    if before is None:
        return after.get("status") != "Unknown"
    if after.get("lastHeartbeatTime") != before.get("lastHeartbeatTime"):
        return True
    return after.get("status") != before.get("status") and after.get("status") != "Unknown"


# --- taints and tolerations ------------------------------------------------------------------


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' ToleratesTaint: an empty key with Exists matches every taint."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def eviction_delay(
    tolerations: list[Obj],
    taints: list[Obj],
    now: datetime,
    default_seconds: float,
    started: Callable[[Obj], datetime],
) -> float | None:
    """Seconds until a pod must leave a node with these NoExecute taints; None: never.

    Each taint needs a matching toleration, or the pod goes at once. The
    shortest ``tolerationSeconds`` among the matching tolerations runs from
    when the taint was added (``started``); a toleration without seconds
    tolerates for ever. A pod with no toleration for the node-health
    taints gets ``default_seconds``, standing in for the tolerations
    Kubernetes' DefaultTolerationSeconds admission adds to every pod.
    """
    deadline: datetime | None = None
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if matching:
            limits = [
                float(t["tolerationSeconds"])
                for t in matching
                if t.get("tolerationSeconds") is not None
            ]
            if not limits:
                continue
            seconds = min(limits)
        elif taint.get("key") in _HEALTH_TAINTS:
            seconds = default_seconds
        else:
            return 0.0
        at = started(taint) + timedelta(seconds=max(seconds, 0.0))
        deadline = at if deadline is None else min(deadline, at)
    if deadline is None:
        return None
    return max(0.0, (deadline - now).total_seconds())


def no_execute_taints(node: Obj) -> list[Obj]:
    return [t for t in taints_of(node) if t.get("effect") == "NoExecute"]


# --- node lifecycle ---------------------------------------------------------------------------


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(
        self,
        ctx: Context,
        *,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        agent_fence_after: float = DEFAULT_AGENT_FENCE_AFTER,
    ) -> None:
        super().__init__(ctx)
        assert NODES is not None and PODS is not None and LEASES is not None
        self.grace_period = grace_period
        self.agent_fence_after = agent_fence_after
        self.nodes = ctx.informer(NODES)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NODE_NAME_INDEX, podutil.by_node_name)
        # Only node leases matter here, not every component's election lease.
        key = f"{LEASES.plural}/{NODE_LEASE_NAMESPACE}"
        self.leases = ctx.informers.get(key) or Informer(
            ctx.client, LEASES, namespace=NODE_LEASE_NAMESPACE, clock=ctx.clock
        )
        ctx.informers[key] = self.leases
        # When this controller last saw each node show a sign of life (its clock).
        self._heard: dict[str, float] = {}
        self.nodes.add_handlers(
            on_add=lambda n: self._node_changed(None, n),
            on_update=self._node_changed,
            on_delete=self._node_deleted,
        )
        self.leases.add_handlers(
            on_add=lambda lease: self._lease_changed(None, lease), on_update=self._lease_changed
        )
        self.pods.add_handlers(
            on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n)
        )

    def _heard_from(self, name: str) -> None:
        self._heard[name] = self.clock.monotonic()

    def _node_changed(self, old: Obj | None, node: Obj) -> None:
        name = object_key(node)
        if old is None or _heartbeat(old, node):
            self._heard_from(name)
        self.enqueue(name)

    def _node_deleted(self, node: Obj) -> None:
        self._heard.pop(object_key(node), None)

    def _lease_changed(self, old: Obj | None, lease: Obj) -> None:
        renewed = spec(lease).get("renewTime")
        if old is None or renewed != spec(old).get("renewTime"):
            name = name_of(lease)
            self._heard_from(name)
            self.enqueue(name)

    def _pod_changed(self, pod: Obj) -> None:
        # A pod starting to terminate on a node may need forcing off it later.
        node = spec(pod).get("nodeName")
        if node and podutil.is_terminating(pod):
            self.enqueue(node)

    async def sync(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            self._heard.pop(name, None)
            return
        silent = self.clock.monotonic() - self._heard.setdefault(name, self.clock.monotonic())
        now = self.clock.now()
        if silent >= self.grace_period and ready_status(node) != "Unknown":
            await self._mark_unknown(node, now)
            return  # the write comes back as an update, and the taints follow
        waits = [self.grace_period - silent] if silent < self.grace_period else []
        taints = desired_taints(node, now)
        if taints != taints_of(node):
            await self._set_taints(node, taints)
        if ready_status(node) == "Unknown":
            # Nobody reports for these pods any more. (On a node that says it is
            # not ready, its agent is alive and judges its pods' readiness itself.)
            await self._mark_pods_not_ready(node, now)
            wait = await self._force_delete_stuck_pods(node, now, silent)
            if wait is not None:
                waits.append(wait)
        if waits:
            raise RequeueAfter(min(waits))

    async def _mark_unknown(self, node: Obj, now: datetime) -> None:
        assert NODES is not None
        name = object_key(node)
        log.info("node %s: no heartbeat for %.0fs; Ready is now Unknown", name, self.grace_period)
        patch = {
            "metadata": {"resourceVersion": meta(node).get("resourceVersion")},
            "status": {"conditions": unknown_conditions(node, now)},
        }
        await self.client.patch(NODES, name, patch, subresource="status")
        await self._event(
            node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
        )

    async def _set_taints(self, node: Obj, taints: list[Obj]) -> None:
        assert NODES is not None
        # The resourceVersion keeps this from undoing a taint someone else just wrote.
        patch = {
            "metadata": {"resourceVersion": meta(node).get("resourceVersion")},
            "spec": {"taints": taints or None},
        }
        await self.client.patch(NODES, object_key(node), patch)

    async def _mark_pods_not_ready(self, node: Obj, now: datetime) -> None:
        assert PODS is not None
        for pod in self.pods.by_index(NODE_NAME_INDEX, object_key(node)):
            if not podutil.is_ready(pod) or podutil.is_terminal(pod):
                continue
            if not await mark_pod_not_ready(self.client, pod, rfc3339(now)):
                continue
            await self._event(pod, "Warning", "NodeNotReady", "Node is not ready")

    async def _force_delete_stuck_pods(
        self, node: Obj, now: datetime, silent: float
    ) -> float | None:
        """Force-delete pods whose grace period ran out on a node nobody hears from.

        No agent is there to confirm their end, and until it is confirmed
        they hold up whatever waits for them: a namespace deletion, a
        foreground cascade, a drain, a rollout. A StatefulSet's pod waits
        also until the node is fenced (silent for ``fenced_after``): its
        agent has stopped it by then, so its replacement, which the force
        delete lets the StatefulSet controller create, never runs beside
        it. Returns the seconds until the next one may go.
        """
        assert PODS is not None
        waits = []
        for pod in self.pods.by_index(NODE_NAME_INDEX, object_key(node)):
            deadline = parse_time(meta(pod).get("deletionTimestamp"))
            if deadline is None:
                continue
            left = (deadline - now).total_seconds()
            if must_not_run_twice(pod):
                left = max(left, fenced_after(pod, self.agent_fence_after) - silent)
            if left > 0:
                waits.append(left)
                continue
            log.info(
                "force-deleting pod %s: terminating on unreachable node %s past its grace period",
                object_key(pod),
                object_key(node),
            )
            await self._event(
                pod,
                "Warning",
                "ForceDeleted",
                f"Force-deleted: node {object_key(node)} is unreachable and the pod's "
                "grace period is over",
            )
            await _delete_pod(self.client, pod, grace_period_seconds=0)
        return min(waits) if waits else None

    async def _event(self, obj: Obj, kind: str, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            await self.ctx.events.record(obj, kind, reason, message)


async def _delete_pod(client: Client, pod: Obj, grace_period_seconds: int | None = None) -> None:
    """Delete this very pod (its UID is a precondition); gone already is fine."""
    assert PODS is not None
    options: Obj = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "preconditions": {"uid": uid_of(pod)},
    }
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    path = resource_path(PODS, meta(pod)["namespace"], meta(pod)["name"])
    try:
        await client.request("DELETE", path, body=options)
    except ApiError as error:
        if error.code not in (404, 409):
            raise


# --- taint-based eviction -----------------------------------------------------------------------


class TaintEvictionController(Controller):
    name = "taint-eviction"

    def __init__(
        self,
        ctx: Context,
        *,
        default_toleration_seconds: float = DEFAULT_TOLERATION_SECONDS,
        disruption_recheck: float = DISRUPTION_RECHECK,
    ) -> None:
        super().__init__(ctx)
        assert NODES is not None and PODS is not None
        self.default_toleration_seconds = default_toleration_seconds
        self.disruption_recheck = disruption_recheck
        self.nodes = ctx.informer(NODES)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NODE_NAME_INDEX, podutil.by_node_name)
        self.nodes.add_handlers(
            on_add=lambda n: self._node_changed(None, n), on_update=self._node_changed
        )
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated)
        # When a taint without timeAdded was first seen: its toleration clock starts there.
        self._first_seen: dict[tuple[str, str, str, str], datetime] = {}

    def _node_changed(self, old: Obj | None, node: Obj) -> None:
        if old is not None and no_execute_taints(old) == no_execute_taints(node):
            return
        for pod in self.pods.by_index(NODE_NAME_INDEX, object_key(node)):
            self.enqueue(object_key(pod))

    def _pod_added(self, pod: Obj) -> None:
        if spec(pod).get("nodeName"):
            self.enqueue(object_key(pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        old_spec, new_spec = spec(old), spec(new)
        if new_spec.get("nodeName") and (
            old_spec.get("nodeName") != new_spec.get("nodeName")
            or old_spec.get("tolerations") != new_spec.get("tolerations")
        ):
            self.enqueue(object_key(new))

    def fully_disrupted(self) -> bool:
        """Every node is down: more likely the control plane is cut off than every node dead.

        Evicting then would empty the cluster for nothing, so, as
        Kubernetes does in full disruption, evictions wait.
        """
        nodes = self.nodes.items()
        return bool(nodes) and all(ready_status(n) != "True" for n in nodes)

    def _started(self, node: Obj, now: datetime) -> Callable[[Obj], datetime]:
        def started(taint: Obj) -> datetime:
            added = parse_time(taint.get("timeAdded"))
            if added is not None:
                return added
            ident = (
                object_key(node),
                str(taint.get("key")),
                str(taint.get("value") or ""),
                str(taint.get("effect")),
            )
            return self._first_seen.setdefault(ident, now)

        return started

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or podutil.is_terminating(pod):
            return
        node = self.nodes.get(str(spec(pod).get("nodeName") or ""))
        if node is None:
            return
        taints = no_execute_taints(node)
        if not taints:
            return
        now = self.clock.now()
        tolerations = spec(pod).get("tolerations") or []
        delay = eviction_delay(
            tolerations, taints, now, self.default_toleration_seconds, self._started(node, now)
        )
        if delay is None:
            return
        if delay > 0:
            raise RequeueAfter(delay)
        if self.fully_disrupted():
            log.warning("every node is not ready; holding the eviction of pod %s", key)
            raise RequeueAfter(self.disruption_recheck)
        await self._evict(pod, now)

    async def _evict(self, pod: Obj, now: datetime) -> None:
        assert PODS is not None
        log.info("evicting pod %s from NoExecute-tainted node", object_key(pod))
        if self.ctx.events is not None:
            await self.ctx.events.record(
                pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {object_key(pod)}"
            )
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": rfc3339(now),
        }
        try:
            await self.client.patch(
                PODS,
                meta(pod)["name"],
                {"metadata": {"uid": uid_of(pod)}, "status": {"conditions": [condition]}},
                meta(pod)["namespace"],
                patch_type="strategic",
                subresource="status",
            )
        except ApiError as error:
            if error.code not in (404, 409):
                raise
            return
        await _delete_pod(self.client, pod)
