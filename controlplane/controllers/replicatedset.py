"""The replicated-set controller: exactly one primary among a workload's pods.

A set is the pods of one controller (a StatefulSet, usually) whose template
carries ``replication.corral.io/hooks``. For each set this controller keeps
the election in a Lease, ``<owner>.replication`` in the set's namespace
(holder, its pod's uid, and the election number in ``leaseTransitions``),
and mirrors it onto the pods as annotations, which their node agents act
on. It labels the pod that is the writable primary ``role=primary`` (the
label key is the hooks' ``roleLabel``) and the converged replicas
``role=replica``, so two Services can point at them.

The decision itself is ``replicatedset_plan.plan``. This module observes:
which nodes renew their leases (a node unheard for a whole lease is dead to
the set), how long a primary has been down or unconverged, and it writes.
"""

from __future__ import annotations

import logging

from controlplane.controllers import podutil
from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.podutil import NAMESPACE_INDEX
from controlplane.controllers.replicatedset_plan import Election, Member, Plan, Timers, plan
from corral import replication, volumebinding
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.clock import rfc3339_micro
from corral.informer import Informer, split_key
from corral.objects import Obj, annotations_of, labels_of, meta, name_of, namespace_of, spec, uid_of

log = logging.getLogger(__name__)


def _kind(api_version: str, kind: str) -> ResourceType:
    found = REGISTRY.by_kind(api_version, kind)
    if found is None:
        raise LookupError(f"{api_version} {kind} is not registered")
    return found


PODS = _kind("v1", "Pod")
LEASES = _kind("coordination.k8s.io/v1", "Lease")
CLAIMS = _kind("v1", "PersistentVolumeClaim")
VOLUMES = _kind("v1", "PersistentVolume")
# A node silent this long (and at least three leases) has lost its local
# volumes for this purpose: its pods were fenced and force-deleted already.
STRANDED_AFTER_SECONDS = 30.0

NODE_LEASE_NAMESPACE = "kube-node-lease"
LEASE_SUFFIX = ".replication"
HOLDER_UID_ANNOTATION = "replication.corral.io/holder-uid"
# A switchover's election, not a failover's (its primary is labelled once writable).
PLANNED_ANNOTATION = "replication.corral.io/planned"
_NODE_LEASES_KEY = "leases@" + NODE_LEASE_NAMESPACE


def lease_name(owner: str) -> str:
    return f"{owner}{LEASE_SUFFIX}"


def election_of(lease: Obj | None) -> Election:
    if lease is None:
        return Election()
    spec = lease.get("spec") or {}
    annotations = annotations_of(lease)
    try:
        epoch = int(spec.get("leaseTransitions") or 0)
    except (TypeError, ValueError):
        epoch = 0
    return Election(
        str(spec.get("holderIdentity") or ""),
        str(annotations.get(HOLDER_UID_ANNOTATION) or ""),
        epoch,
        annotations.get(PLANNED_ANNOTATION) == "true",
    )


def set_key(pod: Obj) -> str | None:
    """``namespace/owner`` for a pod of a replicated set; None for any other pod."""
    annotations = annotations_of(pod)
    if replication.HOOKS_ANNOTATION not in annotations:
        return None
    ref = podutil.controller_ref(pod)
    if ref is None:
        return None
    return f"{meta(pod).get('namespace', '')}/{ref.get('name', '')}"


class ReplicatedSetController(Controller):
    name = "replicatedset"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.leases = ctx.informer(LEASES)
        self.claims = ctx.informer(CLAIMS)
        self.volumes = ctx.informer(VOLUMES)
        self._heard: dict[str, float] = {}
        # (set key, pod name, state) -> when this controller first saw it so.
        self._since: dict[tuple[str, str, str], float] = {}
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda _old, new: self._pod_changed(new),
            on_delete=self._pod_changed,
        )
        self.leases.add_handlers(
            on_add=lambda lease: self._lease_changed(None, lease),
            on_update=self._lease_changed,
        )
        # Node leases have a namespace of their own; a controller manager
        # that watches one namespace for the rest still needs them.
        self.node_leases = ctx.informers.get(_NODE_LEASES_KEY) or ctx.informers.setdefault(
            _NODE_LEASES_KEY,
            Informer(ctx.client, LEASES, namespace=NODE_LEASE_NAMESPACE, clock=ctx.clock),
        )
        self.node_leases.add_handlers(
            on_add=lambda lease: self._node_lease_changed(None, lease),
            on_update=self._node_lease_changed,
        )

    # --- observing ------------------------------------------------------------------------

    def _pod_changed(self, pod: Obj) -> None:
        key = set_key(pod)
        if key is not None:
            self.enqueue(key)

    def _lease_changed(self, old: Obj | None, lease: Obj) -> None:
        namespace = namespace_of(lease)
        name = name_of(lease)
        if namespace != NODE_LEASE_NAMESPACE and name.endswith(LEASE_SUFFIX):
            self.enqueue(f"{namespace}/{name[: -len(LEASE_SUFFIX)]}")

    def _node_lease_changed(self, old: Obj | None, lease: Obj) -> None:
        renewed = spec(lease).get("renewTime")
        if old is None or renewed != spec(old).get("renewTime"):
            self._heard[name_of(lease)] = self.clock.monotonic()

    def _node_alive(self, node: str, lease_seconds: float) -> bool:
        if not node:
            return False
        # A node not yet heard from since this controller started gets a
        # whole lease, as the node lifecycle controller gives it a grace period.
        heard = self._heard.setdefault(node, self.clock.monotonic())
        return self.clock.monotonic() - heard < lease_seconds

    def _held_for(self, key: str, pod: str, state: str, holds: bool) -> float:
        """How long ``state`` has held for ``pod``, as seen here; 0 when it does not."""
        mark = (key, pod, state)
        if not holds:
            self._since.pop(mark, None)
            return 0.0
        return self.clock.monotonic() - self._since.setdefault(mark, self.clock.monotonic())

    # --- deciding -------------------------------------------------------------------------

    def _members(self, key: str) -> tuple[list[Obj], replication.Hooks | None]:
        namespace, _ = split_key(key)
        pods = [
            p
            for p in self.pods.by_index(NAMESPACE_INDEX, namespace or "")
            if set_key(p) == key and not podutil.is_terminal(p)
        ]
        newest = max(pods, key=lambda p: str(meta(p).get("creationTimestamp") or ""), default=None)
        return pods, replication.hooks_of(newest) if newest is not None else None

    def _member(self, pod: Obj, hooks: replication.Hooks) -> Member:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = str(spec.get("nodeName") or "")
        return Member(
            name=name_of(pod),
            uid=uid_of(pod),
            ip=str(status.get("podIP") or ""),
            node=node,
            alive=self._node_alive(node, hooks.lease_seconds),
            terminating=podutil.is_terminating(pod),
            running=podutil.phase(pod) == "Running",
            report=replication.report_of(pod),
            assignment=replication.assignment_of(pod),
            role_label=labels_of(pod).get(hooks.role_label),
        )

    def _timers(self, key: str, members: list[Member], election: Election) -> Timers:
        primary = next((m for m in members if m.name == election.primary), None)
        timers = Timers()
        for m in members:
            is_primary = primary is not None and m is primary and election.epoch > 0
            down = is_primary and (not m.running or m.report is None or m.report.role == "unknown")
            unconverged = (
                is_primary
                and m.alive
                and not m.terminating
                and (
                    m.report is None
                    or m.report.epoch != election.epoch
                    or not m.report.writable
                    or m.report.role != "primary"
                )
            )
            timers.unhealthy[m.name] = self._held_for(key, m.name, "down", down)
            timers.not_converged[m.name] = self._held_for(key, m.name, "unconverged", unconverged)
            leaving = is_primary and (m.terminating or m.assignment.switchover)
            timers.unlabelled[m.name] = self._held_for(
                key, m.name, "unlabelled", leaving and m.role_label != "primary"
            )
        return timers

    async def sync(self, key: str) -> None:
        namespace, owner = split_key(key)
        pods, hooks = self._members(key)
        if not pods or hooks is None:
            for mark in [m for m in self._since if m[0] == key]:
                del self._since[mark]
            return
        lease = self.leases.get(f"{namespace}/{lease_name(owner)}")
        election = election_of(lease)
        members = [self._member(p, hooks) for p in pods]
        await self._release_stranded(namespace or "", pods, members, election, hooks)
        step = plan(members, election, hooks, self._timers(key, members, election))
        if step.elect is not None:
            await self._elect(namespace or "", owner, lease, election, step, pods)
            # The Lease's update comes back through the watch; the pods are
            # patched from it, so they never run ahead of the stored election.
            return
        for name, patch in step.patches.items():
            # Each change of role or route, with why: what an operator reads
            # to follow a switchover or a failover afterwards.
            reason = step.reason or "in line with the election"
            log.info("replicated set %s: %s: %s", key, name, reason)
            await self._patch_pod(namespace or "", name, patch)
        raise RequeueAfter(step.recheck_after or hooks.period_seconds)

    # --- a copy whose disk died with its node ---------------------------------------------

    def _silent_for(self, node: str) -> float:
        return self.clock.monotonic() - self._heard.setdefault(node, self.clock.monotonic())

    def _stranded_claims(self, namespace: str, pod: Obj, hooks: replication.Hooks) -> list[str]:
        """The pod's claims bound to a local volume on a node that is gone."""
        threshold = max(STRANDED_AFTER_SECONDS, 3 * hooks.lease_seconds)
        stranded = []
        for volume in spec(pod).get("volumes") or []:
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            claim = self.claims.get(f"{namespace}/{name}") if name else None
            if claim is None or podutil.is_terminating(claim):
                continue
            bound = self.volumes.get(str(spec(claim).get("volumeName") or ""))
            node = volumebinding.pinned_node(bound) if bound is not None else None
            if node and self._silent_for(node) >= threshold:
                stranded.append(str(name))
        return stranded

    async def _release_stranded(
        self,
        namespace: str,
        pods: list[Obj],
        members: list[Member],
        election: Election,
        hooks: replication.Hooks,
    ) -> None:
        """Let a copy stranded by its node's death start afresh elsewhere.

        Its claim pins it to the dead node, so its replacement pod cannot be
        scheduled. The data is the set's, not the pod's: with a converged,
        writable primary elsewhere, the claim is deleted, then the pod, so the
        StatefulSet makes both anew on a live node and the copy is rebuilt
        from the primary. A claim still in use by the elected primary is never
        touched.
        """
        primary = next((m for m in members if m.name == election.primary), None)
        report = primary.report if primary is not None else None
        if report is None or not report.writable or report.epoch != election.epoch:
            return
        for pod in pods:
            name = name_of(pod)
            if name == election.primary or spec(pod).get("nodeName"):
                continue
            stranded = self._stranded_claims(namespace, pod, hooks)
            if not stranded:
                continue
            log.warning(
                "replicated set %s: %s's claims %s are on a dead node; releasing them so it is "
                "rebuilt elsewhere from %s",
                namespace,
                name,
                ", ".join(stranded),
                election.primary,
            )
            for claim in stranded:
                await self._delete(CLAIMS, namespace, claim)
            await self._delete(PODS, namespace, name)
            if self.ctx.events is not None:
                await self.ctx.events.record(
                    pod,
                    "Warning",
                    "ReleasedStrandedClaims",
                    f"claims {', '.join(stranded)} were on a dead node; the copy is rebuilt "
                    f"from {election.primary}",
                )

    async def _delete(self, rt: ResourceType, namespace: str, name: str) -> None:
        try:
            await self.client.delete(rt, name, namespace)
        except ApiError as error:
            if error.code != 404:
                raise

    # --- writing --------------------------------------------------------------------------

    async def _elect(
        self,
        namespace: str,
        owner: str,
        lease: Obj | None,
        election: Election,
        step: Plan,
        pods: list[Obj],
    ) -> None:
        chosen = step.elect
        assert chosen is not None
        epoch = election.epoch + 1
        now = rfc3339_micro(self.clock.now())
        annotations = {
            HOLDER_UID_ANNOTATION: chosen.uid,
            PLANNED_ANNOTATION: "true" if step.planned else "false",
        }
        spec = {
            "holderIdentity": chosen.name,
            "leaseTransitions": epoch,
            "acquireTime": now,
            "renewTime": now,
        }
        if lease is None:
            owner_pod = next(p for p in pods if meta(p).get("name") == chosen.name)
            ref = podutil.controller_ref(owner_pod)
            body: Obj = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": lease_name(owner),
                    "namespace": namespace,
                    "annotations": annotations,
                    # Goes with the workload that owns the set.
                    "ownerReferences": [{**ref, "controller": False}] if ref else [],
                },
                "spec": spec,
            }
            await self.client.create(LEASES, body, namespace)
        else:
            body = {
                "metadata": {
                    "annotations": annotations,
                    "resourceVersion": meta(lease).get("resourceVersion"),
                },
                "spec": spec,
            }
            # The resourceVersion makes this a compare-and-swap: two
            # controller managers never both win an election.
            await self.client.patch(LEASES, lease_name(owner), body, namespace)
        log.info(
            "replicated set %s/%s: elected %s primary (election %d): %s",
            namespace,
            owner,
            chosen.name,
            epoch,
            step.reason,
        )
        if self.ctx.events is not None:
            owner_pod = next(p for p in pods if meta(p).get("name") == chosen.name)
            await self.ctx.events.record(
                owner_pod,
                "Normal",
                "ElectedPrimary",
                f"Elected primary of {owner} (election {epoch}): {step.reason}",
            )

    async def _patch_pod(self, namespace: str, name: str, patch: dict[str, object]) -> None:
        try:
            await self.client.patch(PODS, name, patch, namespace)
        except ApiError as error:
            if error.code != 404:
                raise
