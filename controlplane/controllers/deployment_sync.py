"""One sync of one Deployment: the steps of Kubernetes' ``syncDeployment``, with writes.

A ``DeploymentSync`` lives for a single pass. It works on a copy of the
cached Deployment and of its ReplicaSets, and every write it makes carries
the ``resourceVersion`` it read, so a stale cache shows up as a 409 (and a
retry with backoff) rather than as a decision taken twice. Each pass does
at most one kind of step (scale the new ReplicaSet up, or old ones down,
or clean up) and then reports status; the writes bring it back for the
next step.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from controlplane.controllers import deployment_objects as o
from controlplane.controllers import deployment_rollout as rollout
from controlplane.controllers import deployment_status as st
from controlplane.controllers import podutil
from controlplane.controllers.deployment_history import (
    AutoRollback,
    NoAutoRollback,
    auto_rollback,
    cleanup_candidates,
    max_revision,
    rolled_back,
    set_new_rs_annotations,
    set_replicas_annotations,
)
from controlplane.controllers.deployment_objects import REVISION
from controlplane.controllers.deployment_pdb import DisruptionBudgets
from controlplane.controllers.deployment_templates import (
    equal_ignore_hash,
    selector_with_hash,
    template_hash,
    with_hash,
)
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corral.events import EventRecorder
from corral.objects import Obj

log = logging.getLogger(__name__)


DEPLOYMENTS = REGISTRY.require("apps/v1", "Deployment")
REPLICA_SETS = REGISTRY.require("apps/v1", "ReplicaSet")

# While a PodDisruptionBudget holds a scale-down, look again this often even
# if no event arrives (the budget's status may not change when pods do).
PDB_RECHECK_SECONDS = 5.0


@dataclass
class Cluster:
    """What a sync reads besides the Deployment: lookups over the informers' stores."""

    pods_of: Callable[[Obj], Sequence[Obj]]
    pods_in: Callable[[str], Sequence[Obj]]
    replica_sets_in: Callable[[str], Sequence[Obj]]
    pdbs_in: Callable[[str], Sequence[Obj]]


class HashCollision(Exception):
    """The new ReplicaSet's name belongs to another object; retried with a new hash."""


@dataclass
class DeploymentSync:
    client: Client
    events: EventRecorder | None
    cluster: Cluster
    d: Obj
    replica_sets: list[Obj]
    now: datetime
    # Deployment keys with a scale-down held by a budget, and by which: so the
    # Event is recorded when a hold starts, not on every pass.
    holds: dict[str, set[tuple[str, str]]]
    requeue: float | None = None
    # The status as the pass found it, and as last written by it.
    initial_status: Obj = field(init=False)
    stored_status: Obj = field(init=False)

    def __post_init__(self) -> None:
        self.initial_status = copy.deepcopy(o.status(self.d))
        self.stored_status = copy.deepcopy(self.initial_status)

    # --- entry --------------------------------------------------------------------------------

    async def run(self) -> None:
        d = self.d
        if podutil.is_terminating(d):
            await self._sync_status(self._new_rs(), self._old_rs(self._new_rs()))
            return
        paused = st.paused_condition(d, self.now)
        if paused is not None:
            st.set_condition(d.setdefault("status", {}), paused)
        if o.spec(d).get("paused"):
            await self._scale_only()
            return
        new_rs = self._new_rs()
        if rollout.is_scaling_event(d, [*self._old_rs(new_rs), new_rs]):
            await self._scale_only()
            return
        if rollout.is_rolling(d):
            await self._rolling()
        else:
            await self._recreate()

    def _want(self, seconds: float | None) -> None:
        if seconds is not None:
            self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    # --- finding the ReplicaSets --------------------------------------------------------------

    def _new_rs(self) -> Obj | None:
        """The ReplicaSet running the template; the oldest if several do (kubernetes#40415)."""
        matching = [
            rs for rs in self.replica_sets if equal_ignore_hash(o.template(rs), o.template(self.d))
        ]
        return min(matching, key=o.creation_key) if matching else None

    def _old_rs(self, new_rs: Obj | None) -> list[Obj]:
        return [rs for rs in self.replica_sets if rs is not new_rs]

    def _replace_rs(self, old: Obj, new: Obj) -> Obj:
        self.replica_sets = [new if rs is old else rs for rs in self.replica_sets]
        return new

    async def _get_new_rs(self, create: bool) -> Obj | None:
        """``getNewReplicaSet``: sync the new ReplicaSet's revision, or create it."""
        d = self.d
        existing = self._new_rs()
        new_revision = max_revision(self._old_rs(existing)) + 1
        if existing is not None:
            rs = copy.deepcopy(existing)
            changed = set_new_rs_annotations(d, rs, new_revision)
            min_ready = o.spec(d).get("minReadySeconds")
            if changed or o.spec(rs).get("minReadySeconds") != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                rs = self._replace_rs(existing, await self._write_rs(rs))
            else:
                rs = existing
            await self._set_deployment_revision(o.annotations_of(rs).get(REVISION, ""))
            if (
                st.has_progress_deadline(d)
                and st.get_condition(o.status(d), st.PROGRESSING) is None
            ):
                st.set_condition(
                    d.setdefault("status", {}),
                    st.new_condition(
                        st.PROGRESSING,
                        "True",
                        st.FOUND_NEW_RS,
                        f'Found new replica set "{o.name_of(rs)}"',
                        self.now,
                    ),
                )
            return rs
        if not create:
            return None
        return await self._create_new_rs(new_revision)

    async def _create_new_rs(self, new_revision: int) -> Obj:
        d = self.d
        collisions = o.status(d).get("collisionCount")
        hash_value = template_hash(o.template(d), collisions)
        template = with_hash(o.template(d), hash_value)
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{o.name_of(d)}-{hash_value}",
                "namespace": o.namespace_of(d),
                "labels": dict(o.labels_of(template)),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": o.name_of(d),
                        "uid": o.uid_of(d),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,
                "selector": selector_with_hash(o.spec(d).get("selector") or {}, hash_value),
                "template": template,
            },
        }
        if o.spec(d).get("minReadySeconds") is not None:
            rs["spec"]["minReadySeconds"] = o.spec(d)["minReadySeconds"]
        rs["spec"]["replicas"] = rollout.new_rs_replicas(d, [*self.replica_sets, rs], rs)
        set_new_rs_annotations(d, rs, new_revision)
        set_replicas_annotations(rs, o.replicas(d), o.replicas(d) + rollout.max_surge(d))
        try:
            created = await self.client.create(REPLICA_SETS, rs, o.namespace_of(d))
        except ApiError as error:
            if error.reason != "AlreadyExists":
                raise
            created = await self._existing_or_collision(o.name_of(rs))
            self.replica_sets.append(created)
            return created
        self.replica_sets.append(created)
        log.info(
            "deployment %s/%s: created replica set %s",
            o.namespace_of(d),
            o.name_of(d),
            o.name_of(rs),
        )
        if o.replicas(created) > 0:
            await self._event(
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {o.name_of(created)} from 0 to {o.replicas(created)}",
            )
        if st.has_progress_deadline(d):
            st.set_condition(
                d.setdefault("status", {}),
                st.new_condition(
                    st.PROGRESSING,
                    "True",
                    st.NEW_RS_CREATED,
                    f'Created new replica set "{o.name_of(created)}"',
                    self.now,
                ),
            )
            # Written at once: the deadline of this rollout counts from here.
            await self._write_status(o.status(d))
        await self._set_deployment_revision(o.annotations_of(created).get(REVISION, ""))
        return created

    async def _existing_or_collision(self, rs_name: str) -> Obj:
        """The name is taken: ours from a stale cache, or a collision to escape."""
        d = self.d
        found = await self.client.get(REPLICA_SETS, rs_name, o.namespace_of(d))
        if o.controlled_by(found, o.uid_of(d)) and equal_ignore_hash(
            o.template(found), o.template(d)
        ):
            return found
        status = copy.deepcopy(o.status(d))
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self._write_status(status)
        raise HashCollision(f"replica set {rs_name} exists and is not this deployment's")

    # --- strategies ---------------------------------------------------------------------------

    async def _rolling(self) -> None:
        d = self.d
        new_rs = await self._get_new_rs(create=True)
        assert new_rs is not None
        old_rs = self._old_rs(new_rs)
        all_rs = [*old_rs, new_rs]

        # Scale the new ReplicaSet up (or down to the desired count), if it may grow.
        if o.replicas(new_rs) != o.replicas(d):
            target = (
                o.replicas(d)
                if o.replicas(new_rs) > o.replicas(d)
                else rollout.new_rs_replicas(d, all_rs, new_rs)
            )
            if target != o.replicas(new_rs):
                new_rs = await self._scale(new_rs, target)
                await self._sync_rollout_status(new_rs)
                return

        # Then old ones down, as availability and disruption budgets allow.
        budgets = self._budgets()
        steps = rollout.old_scale_downs(d, all_rs, rollout.active(old_rs), new_rs, budgets)
        for step in steps:
            await self._scale(step.rs, step.to)
        await self._report_holds(budgets)
        if steps:
            await self._sync_rollout_status(new_rs)
            return
        if st.deployment_complete(d, self.stored_status):
            await self._cleanup(old_rs)
        await self._sync_rollout_status(new_rs)

    async def _recreate(self) -> None:
        d = self.d
        # No new ReplicaSet yet: nothing new may start before every old pod is gone.
        new_rs = await self._get_new_rs(create=False)
        old_rs = self._old_rs(new_rs)
        scaled = False
        for rs in rollout.active(old_rs):
            await self._scale(rs, 0)
            scaled = True
        if scaled or self._old_pods_running(old_rs):
            await self._sync_rollout_status(new_rs)
            return
        if new_rs is None:
            new_rs = await self._get_new_rs(create=True)
            assert new_rs is not None
            old_rs = self._old_rs(new_rs)
        if o.replicas(new_rs) != o.replicas(d):
            new_rs = await self._scale(new_rs, o.replicas(d))
        if st.deployment_complete(d, self.stored_status):
            await self._cleanup(old_rs)
        await self._sync_rollout_status(new_rs)

    def _old_pods_running(self, old_rs: Sequence[Obj]) -> bool:
        """Any pod of an old ReplicaSet not yet finished, terminating ones included."""
        for rs in old_rs:
            if o.actual_replicas(rs) > 0:
                return True
            if any(not podutil.is_terminal(pod) for pod in self.cluster.pods_of(rs)):
                return True
        return False

    async def _scale_only(self) -> None:
        """``sync``: a paused Deployment, or a change of ``spec.replicas`` only."""
        new_rs = await self._get_new_rs(create=False)
        old_rs = self._old_rs(new_rs)
        for step in rollout.proportional_sizes(self.d, new_rs, old_rs):
            updated = await self._scale(step.rs, step.to, annotate_always=True)
            if step.rs is new_rs:
                new_rs = updated
        await self._cleanup(self._old_rs(new_rs))
        await self._sync_status(new_rs, self._old_rs(new_rs))

    # --- disruption budgets -------------------------------------------------------------------

    def _budgets(self) -> DisruptionBudgets | None:
        ns = o.namespace_of(self.d)
        pdbs = self.cluster.pdbs_in(ns)
        if not pdbs:
            return None
        return DisruptionBudgets.build(
            pdbs, self.cluster.pods_in(ns), self.cluster.replica_sets_in(ns), self.cluster.pods_of
        )

    async def _report_holds(self, budgets: DisruptionBudgets | None) -> None:
        key = f"{o.namespace_of(self.d)}/{o.name_of(self.d)}"
        held = {(o.name_of(rs), o.name_of(pdb)) for rs, pdb in (budgets.held if budgets else [])}
        before = self.holds.get(key, set())
        for rs_name, pdb_name in sorted(held - before):
            await self._event(
                "Normal",
                "ScaleDownHeld",
                f"Holding the scale-down of replica set {rs_name}: PodDisruptionBudget "
                f'"{pdb_name}" allows no more disruptions',
            )
        if held:
            self.holds[key] = held
            self._want(PDB_RECHECK_SECONDS)
        else:
            self.holds.pop(key, None)

    # --- history ------------------------------------------------------------------------------

    async def _cleanup(self, old_rs: Sequence[Obj]) -> None:
        """``cleanupDeployment``: old ReplicaSets beyond ``revisionHistoryLimit`` go."""
        for rs in cleanup_candidates(self.d, old_rs):
            log.info("deployment %s: deleting old replica set %s", o.name_of(self.d), o.name_of(rs))
            try:
                await self.client.delete(REPLICA_SETS, o.name_of(rs), o.namespace_of(rs))
            except ApiError as error:
                if error.code != 404:
                    raise

    async def _maybe_auto_rollback(self, status: Obj, new_rs: Obj | None) -> None:
        decision = auto_rollback(self.d, status, self.replica_sets, new_rs)
        if decision is None:
            return
        if isinstance(decision, NoAutoRollback):
            # Said once, when the rollout fails, not on every later pass.
            before = st.get_condition(self.initial_status, st.PROGRESSING)
            if before is None or before.get("reason") != st.TIMED_OUT:
                await self._event("Warning", "AutoRollbackSkipped", decision.reason)
            return
        await self._roll_back(decision)

    async def _roll_back(self, decision: AutoRollback) -> None:
        d = self.d
        updated = await self.client.replace(
            DEPLOYMENTS, rolled_back(d, decision), o.namespace_of(d)
        )
        self.d["metadata"]["resourceVersion"] = o.meta(updated).get("resourceVersion")
        condition = st.get_condition(o.status(d), st.PROGRESSING) or {}
        await self._event(
            "Warning",
            "AutoRollback",
            f"Rolled back from revision {decision.from_revision} to revision "
            f"{decision.to_revision}: {condition.get('message', 'progress deadline exceeded')}",
        )
        log.info(
            "deployment %s/%s: rolled back from revision %d to %d",
            o.namespace_of(d),
            o.name_of(d),
            decision.from_revision,
            decision.to_revision,
        )

    # --- status -------------------------------------------------------------------------------

    async def _sync_rollout_status(self, new_rs: Obj | None) -> None:
        all_rs = [*self._old_rs(new_rs), new_rs]
        status = st.rollout_status(self.d, all_rs, new_rs, self.now)
        if status != self.stored_status:
            await self._write_status(status)
        self._want(st.requeue_after(self.d, status, self.now))
        await self._maybe_auto_rollback(status, new_rs)

    async def _sync_status(self, new_rs: Obj | None, old_rs: Sequence[Obj]) -> None:
        status = st.calculate_status(self.d, [*old_rs, new_rs], new_rs)
        st.set_availability(self.d, status, self.now)
        if status != self.stored_status:
            await self._write_status(status)

    # --- writes -------------------------------------------------------------------------------

    async def _write_status(self, status: Obj) -> None:
        body = {**self.d, "status": status}
        updated = await self.client.replace(
            DEPLOYMENTS, body, o.namespace_of(self.d), subresource="status"
        )
        self.d["metadata"]["resourceVersion"] = o.meta(updated).get("resourceVersion")
        self.d["status"] = copy.deepcopy(status)
        self.stored_status = copy.deepcopy(status)

    async def _set_deployment_revision(self, revision: str) -> None:
        if not revision or o.annotations_of(self.d).get(REVISION) == revision:
            return
        body = copy.deepcopy(self.d)
        body["metadata"].setdefault("annotations", {})[REVISION] = revision
        body.pop("status", None)
        updated = await self.client.replace(DEPLOYMENTS, body, o.namespace_of(self.d))
        self.d["metadata"] = o.meta(updated)

    async def _write_rs(self, rs: Obj) -> Obj:
        return await self.client.replace(REPLICA_SETS, rs, o.namespace_of(rs))

    async def _scale(self, rs: Obj, size: int, *, annotate_always: bool = False) -> Obj:
        """``scaleReplicaSet``: the new size, and what it was sized for, in annotations."""
        d = self.d
        if o.replicas(rs) == size and not annotate_always:
            return rs
        copy_ = copy.deepcopy(rs)
        annotated = set_replicas_annotations(
            copy_, o.replicas(d), o.replicas(d) + rollout.max_surge(d)
        )
        if o.replicas(rs) == size and not annotated:
            return rs
        copy_["spec"]["replicas"] = size
        updated = self._replace_rs(rs, await self._write_rs(copy_))
        if o.replicas(rs) != size:
            direction = "up" if size > o.replicas(rs) else "down"
            await self._event(
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {o.name_of(rs)} from {o.replicas(rs)} to {size}",
            )
        return updated

    async def _event(self, event_type: str, reason: str, message: str) -> None:
        if self.events is not None:
            await self.events.record(self.d, event_type, reason, message)
