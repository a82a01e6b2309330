"""DaemonSet: one pod on every eligible node, following nodes as they come and go.

The loop, per set (Kubernetes 1.32's DaemonSetsController):

- claim: adopt orphan pods the selector matches, release owned pods it no
  longer matches;
- revision: find or create the ControllerRevision of the current template;
  its hash labels the pods made from it (``controller-revision-hash``);
- manage (daemonset_plan): a pod for each node that should run one and has
  none, pinned to it by node affinity for the scheduler to bind; extra,
  failed and misplaced pods deleted;
- once that is settled, the rolling update (``maxUnavailable`` or
  ``maxSurge``); ``OnDelete`` leaves old pods until someone deletes them;
- status through the status subresource, then the history pruned.

Expectations keep it from acting twice on a cache that has not shown its
own creates and deletes yet (two pods on one node for a while). Deletes
carry the pod's UID as a precondition.
"""

from __future__ import annotations

import logging
from datetime import datetime

from controlplane.controllers import daemonset_nodes as nodes_of
from controlplane.controllers import podutil
from controlplane.controllers import statefulset_history as history
from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.daemonset_plan import (
    Delete,
    NodePods,
    Plan,
    by_node,
    manage,
    rolling_update,
    status_counts,
)
from controlplane.controllers.ownedpods import OwnedPods, PodExpectations
from controlplane.controllers.podutil import NAMESPACE_INDEX, Claim
from controlplane.controllers.statefulset_identity import REVISION_LABEL
from corral.api.errors import ApiError
from corral.api.labels import LabelSelector, SelectorError, selector_from_dict
from corral.api.resources import REGISTRY
from corral.client.rest import resource_path
from corral.informer import object_key
from corral.objects import (
    Obj,
    annotations_of,
    labels_of,
    meta,
    name_of,
    namespace_of,
    owner_references,
    spec,
    status,
    uid_of,
)

log = logging.getLogger(__name__)

PODS = REGISTRY.by_kind("v1", "Pod")
NODES = REGISTRY.by_kind("v1", "Node")
DAEMON_SETS = REGISTRY.by_kind("apps/v1", "DaemonSet")
REVISIONS = REGISTRY.by_kind("apps/v1", "ControllerRevision")
assert PODS is not None and NODES is not None and DAEMON_SETS is not None
assert REVISIONS is not None

_STATUS_KEYS = (
    "observedGeneration",
    "desiredNumberScheduled",
    "currentNumberScheduled",
    "numberMisscheduled",
    "numberReady",
    "numberAvailable",
    "numberUnavailable",
    "updatedNumberScheduled",
    "collisionCount",
)
# kubectl's Table of a DaemonSet, and the API's JSON, always carry these four.
_ALWAYS_WRITTEN = frozenset(
    ("desiredNumberScheduled", "currentNumberScheduled", "numberMisscheduled", "numberReady")
)
# What a node may change that moves daemon pods on or off it.
_NODE_FIELDS = (("metadata", "labels"), ("spec", "taints"), ("spec", "unschedulable"))


class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2

    def __init__(self, ctx: Context, *, expectations_timeout: float = 300.0) -> None:
        super().__init__(ctx)
        assert PODS is not None and NODES is not None
        assert DAEMON_SETS is not None and REVISIONS is not None
        self.expectations = PodExpectations(ctx.clock, expectations_timeout)
        self.sets = ctx.informer(DAEMON_SETS)
        self.sets.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.nodes = ctx.informer(NODES)
        self.revisions = ctx.informer(REVISIONS)
        self.revisions.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.owned = OwnedPods(
            self.sets, "DaemonSet", "apps", self.expectations, self.enqueue, self._adopters
        )
        self.sets.add_handlers(
            on_add=lambda s: self.enqueue(object_key(s)),
            on_update=lambda _old, new: self.enqueue(object_key(new)),
            on_delete=self.owned.owner_deleted,
        )
        self.pods.add_handlers(
            on_add=self.owned.pod_added,
            on_update=self._pod_updated,
            on_delete=self.owned.pod_deleted,
        )
        self.nodes.add_handlers(
            on_add=lambda _node: self._enqueue_all(),
            on_update=self._node_updated,
            on_delete=lambda _node: self._enqueue_all(),
        )
        self.revisions.add_handlers(
            on_add=self._owned_changed,
            on_update=lambda _old, new: self._owned_changed(new),
            on_delete=self._owned_changed,
        )

    # --- event handlers --------------------------------------------------------------------

    def selector(self, ds: Obj) -> LabelSelector | None:
        raw = spec(ds).get("selector")
        try:
            selector = selector_from_dict(raw) if raw is not None else None
        except SelectorError:
            return None
        return None if selector is None or selector.is_empty() else selector

    def _adopters(self, pod: Obj) -> list[str]:
        labels = labels_of(pod)
        return [
            object_key(ds)
            for ds in self.sets.by_index(NAMESPACE_INDEX, namespace_of(pod))
            if (selector := self.selector(ds)) is not None and selector.matches(labels)
        ]

    def _enqueue_all(self) -> None:
        for ds in self.sets.items():
            self.enqueue(object_key(ds))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        def fields(node: Obj) -> list[object]:
            return [(node.get(part) or {}).get(key) for part, key in _NODE_FIELDS]

        if fields(old) != fields(new):
            self._enqueue_all()

    def _owned_changed(self, obj: Obj) -> None:
        key = self.owned.owner_key(podutil.controller_ref(obj), namespace_of(obj))
        if key is not None:
            self.enqueue(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        if podutil.is_terminating(new) and not podutil.is_terminating(old):
            self.owned.pod_deleted(new)
            return
        namespace = namespace_of(new)
        keys = {
            self.owned.owner_key(podutil.controller_ref(old), namespace),
            self.owned.owner_key(podutil.controller_ref(new), namespace),
        }
        if podutil.controller_ref(new) is None:
            keys.update(self._adopters(new))
        for key in keys:
            if key is not None:
                self.enqueue(key)

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ds = self.sets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        if podutil.is_terminating(ds):
            return  # the garbage collector takes its pods and revisions
        selector = self.selector(ds)
        if selector is None:
            log.warning("daemonset %s has an empty or invalid selector; not managing it", key)
            return
        satisfied = self.expectations.satisfied(key)
        pods = await self._claim(ds, selector)
        revision, revisions = await self._revision(ds)
        revision_hash = labels_of(revision).get(REVISION_LABEL, "")
        nodes = self.nodes.items()
        grouped = by_node(pods)
        now = self.clock.now()
        failure: ApiError | None = None
        if satisfied:
            plan = manage(ds, nodes, grouped, revision_hash)
            if plan.empty():
                plan = rolling_update(ds, nodes, grouped, revision_hash, now)
            try:
                await self._carry_out(key, ds, plan, revision_hash)
            except ApiError as error:
                failure = error
        await self._write_status(ds, nodes, grouped, revision_hash, now)
        await self._prune(ds, pods, revisions, name_of(revision))
        if failure is not None:
            raise failure
        wait = self._next_available_in(ds, pods, now)
        if wait is not None:
            raise RequeueAfter(wait)

    async def _claim(self, ds: Obj, selector: LabelSelector) -> list[Obj]:
        claimed: list[Obj] = []
        for pod in self.pods.by_index(NAMESPACE_INDEX, namespace_of(ds)):
            decision = podutil.claim(pod, ds, selector)
            if decision is Claim.KEEP:
                claimed.append(pod)
            elif decision is Claim.ADOPT:
                adopted = await self._patch_pod(pod, podutil.adopt_patch(ds, pod))
                if adopted is not None:
                    claimed.append(adopted)
            elif decision is Claim.RELEASE:
                await self._patch_pod(pod, podutil.release_patch(uid_of(ds), pod))
        return claimed

    async def _patch_pod(self, pod: Obj, patch: Obj) -> Obj | None:
        assert PODS is not None
        try:
            return await self.client.patch(
                PODS, name_of(pod), patch, namespace_of(pod), patch_type=podutil.PATCH_TYPE
            )
        except ApiError as error:
            if error.code in (404, 409, 422):
                return None
            raise

    # --- revisions -------------------------------------------------------------------------

    def _owned_revisions(self, ds: Obj) -> list[Obj]:
        return [
            r
            for r in self.revisions.by_index(NAMESPACE_INDEX, namespace_of(ds))
            if (ref := podutil.controller_ref(r)) is not None and ref.get("uid") == uid_of(ds)
        ]

    async def _revision(self, ds: Obj) -> tuple[Obj, list[Obj]]:
        """The revision of the current template (made the newest), and all the set's revisions."""
        assert REVISIONS is not None
        revisions = self._owned_revisions(ds)
        collisions = int(status(ds).get("collisionCount") or 0)
        wanted = history.new_revision(
            ds,
            history.next_number(revisions),
            collisions,
            labels=labels_of(spec(ds).get("template") or {}),
            annotations=annotations_of(ds),
        )
        existing = history.find_equal(revisions, wanted)
        if existing is None:
            created = await self._create_revision(ds, wanted)
            return created, [*revisions, created]
        latest = history.sort_revisions(revisions)[-1]
        if name_of(latest) == name_of(existing):
            return existing, revisions
        # Back to an older template: that revision becomes the newest.
        number = history.next_number(revisions)
        await self.client.patch(
            REVISIONS, name_of(existing), {"revision": number}, namespace_of(ds), patch_type="merge"
        )
        renumbered = {**existing, "revision": number}
        return renumbered, [renumbered if r is existing else r for r in revisions]

    async def _create_revision(self, ds: Obj, wanted: Obj) -> Obj:
        """Create it; a same-named revision holding another template is a hash collision."""
        assert REVISIONS is not None and DAEMON_SETS is not None
        namespace = namespace_of(ds)
        try:
            created: Obj = await self.client.create(REVISIONS, wanted, namespace)
            return created
        except ApiError as error:
            if error.code != 409:
                raise
        found: Obj = await self.client.get(REVISIONS, name_of(wanted), namespace)
        owners = {r.get("uid") for r in owner_references(found)}
        if history.same_data(found, wanted) and uid_of(ds) in owners:
            return found
        collisions = int(status(ds).get("collisionCount") or 0) + 1
        await self.client.patch(
            DAEMON_SETS,
            name_of(ds),
            {"metadata": {"uid": uid_of(ds)}, "status": {"collisionCount": collisions}},
            namespace,
            subresource="status",
        )
        raise ApiError(409, "AlreadyExists", "revision name collision; retrying with a new hash")

    async def _prune(self, ds: Obj, pods: list[Obj], revisions: list[Obj], current: str) -> None:
        """Revisions past ``revisionHistoryLimit`` whose hash no pod carries any more."""
        assert REVISIONS is not None
        hashes = {labels_of(p).get(REVISION_LABEL) for p in pods}
        in_use = {name_of(r) for r in revisions if labels_of(r).get(REVISION_LABEL) in hashes}
        for revision in history.to_prune(ds, revisions, in_use, current, current):
            try:
                await self.client.delete(REVISIONS, name_of(revision), namespace_of(revision))
            except ApiError as error:
                if error.code != 404:
                    raise

    # --- acting ----------------------------------------------------------------------------

    async def _carry_out(self, key: str, ds: Obj, plan: Plan, revision_hash: str) -> None:
        if plan.delete:
            self.expectations.expect_deletions(key, [uid_of(d.pod) for d in plan.delete])
        for doomed in plan.delete:
            await self._delete_pod(key, ds, doomed)
        for node in plan.create_on:
            await self._create_pod(key, ds, node, revision_hash)

    async def _create_pod(self, key: str, ds: Obj, node: str, revision_hash: str) -> None:
        assert PODS is not None
        template: Obj = spec(ds).get("template") or {}
        pod = nodes_of.pod_for(ds, template, node, revision_hash)
        self.expectations.raise_expectations(key, adds=1)
        try:
            created = await self.client.create(PODS, pod, namespace_of(ds))
        except ApiError as error:
            self.expectations.observed_add(key)
            if not (error.code == 403 and error.kind == "namespaces"):
                await self._event(
                    ds,
                    "Warning",
                    "FailedCreate",
                    f"Error creating: {error.message}",
                )
            raise
        await self._event(ds, "Normal", "SuccessfulCreate", f"Created pod: {name_of(created)}")

    async def _delete_pod(self, key: str, ds: Obj, doomed: Delete) -> None:
        assert PODS is not None
        pod = doomed.pod
        options: Obj = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": uid_of(pod)},
        }
        if doomed.force:
            options["gracePeriodSeconds"] = 0
        path = resource_path(PODS, namespace_of(pod), name_of(pod))
        try:
            await self.client.request("DELETE", path, body=options)
        except ApiError as error:
            self.expectations.deletion_observed(key, uid_of(pod))
            if error.code in (404, 409):
                return
            await self._event(ds, "Warning", "FailedDelete", f"Error deleting: {error.message}")
            raise
        await self._event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")

    # --- status ----------------------------------------------------------------------------

    def desired_status(
        self, ds: Obj, nodes: list[Obj], grouped: NodePods, revision_hash: str, now: datetime
    ) -> Obj:
        counts = status_counts(ds, nodes, grouped, revision_hash, now)
        out: Obj = {k: v for k, v in counts.items() if v or k in _ALWAYS_WRITTEN}
        generation = meta(ds).get("generation")
        if generation:
            out["observedGeneration"] = generation
        collisions = status(ds).get("collisionCount")
        if collisions:
            out["collisionCount"] = collisions
        return out

    async def _write_status(
        self, ds: Obj, nodes: list[Obj], grouped: NodePods, revision_hash: str, now: datetime
    ) -> None:
        assert DAEMON_SETS is not None
        desired = self.desired_status(ds, nodes, grouped, revision_hash, now)
        existing = status(ds)
        patch = {k: desired.get(k) for k in _STATUS_KEYS if existing.get(k) != desired.get(k)}
        if not patch:
            return
        try:
            await self.client.patch(
                DAEMON_SETS,
                name_of(ds),
                {"metadata": {"uid": uid_of(ds)}, "status": patch},
                namespace_of(ds),
                subresource="status",
            )
        except ApiError as error:
            if error.code != 404:
                raise

    def _next_available_in(self, ds: Obj, pods: list[Obj], now: datetime) -> float | None:
        """Seconds until a ready pod becomes available (minReadySeconds), to look again then."""
        min_ready = int(spec(ds).get("minReadySeconds") or 0)
        if min_ready <= 0:
            return None
        waits = [
            (at - now).total_seconds()
            for p in pods
            if (at := podutil.available_at(p, min_ready)) is not None and at > now
        ]
        return min(waits) if waits else None

    async def _event(self, ds: Obj, kind: str, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            await self.ctx.events.record(ds, kind, reason, message)
