"""The Deployment controller: one ReplicaSet per pod template, rolled from old to new.

It follows Kubernetes' ``pkg/controller/deployment``: the Deployment owns
ReplicaSets (``<name>-<pod-template-hash>``), sizes them for a rolling
update or a recreate, keeps revision history and reports progress; the
ReplicaSet controller owns the pods. This module wires the informers and
the work queue; a pass over one Deployment is ``deployment_sync``, and the
decisions it takes are the pure ``deployment_*`` modules.

Events from ReplicaSets, pods and PodDisruptionBudgets enqueue the
Deployment they concern; a stuck rollout is looked at again when its
progress deadline passes (``RequeueAfter`` on the injected clock).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable

from controlplane.controllers import deployment_objects as o
from controlplane.controllers import podutil
from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.deployment_sync import (
    DEPLOYMENTS,
    REPLICA_SETS,
    Cluster,
    DeploymentSync,
)
from corral.api.errors import ApiError
from corral.api.labels import selector_from_dict
from corral.api.resources import REGISTRY
from corral.informer import Informer
from corral.objects import Obj

log = logging.getLogger(__name__)

PODS = REGISTRY.by_kind("v1", "Pod")
PDBS = REGISTRY.by_kind("policy/v1", "PodDisruptionBudget")
assert PODS is not None and PDBS is not None

# Index names are prefixed: informers are shared with other controllers.
_BY_CONTROLLER = "deployment/controller-uid"
_BY_UID = "deployment/uid"
_BY_NAMESPACE = "deployment/namespace"


def _controller_uid(obj: Obj) -> list[str]:
    ref = podutil.controller_ref(obj)
    return [str(ref.get("uid"))] if ref is not None and ref.get("uid") else []


def _uid(obj: Obj) -> list[str]:
    return [o.uid_of(obj)] if o.uid_of(obj) else []


def _namespace(obj: Obj) -> list[str]:
    return [o.namespace_of(obj)]


def _key(obj: Obj) -> str:
    return f"{o.namespace_of(obj)}/{o.name_of(obj)}"


class DeploymentController(Controller):
    name = "deployment"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        assert PODS is not None and PDBS is not None
        self.deployments = ctx.informer(DEPLOYMENTS)
        self.replica_sets = ctx.informer(REPLICA_SETS)
        self.pods = ctx.informer(PODS)
        self.pdbs = ctx.informer(PDBS)
        self.deployments.add_index(_BY_NAMESPACE, _namespace)
        self.replica_sets.add_index(_BY_NAMESPACE, _namespace)
        self.replica_sets.add_index(_BY_CONTROLLER, _controller_uid)
        self.replica_sets.add_index(_BY_UID, _uid)
        self.pods.add_index(_BY_CONTROLLER, _controller_uid)
        self.pods.add_index(_BY_NAMESPACE, _namespace)
        self.pdbs.add_index(_BY_NAMESPACE, _namespace)
        self.holds: dict[str, set[tuple[str, str]]] = {}

        self.deployments.add_handlers(
            on_add=self._deployment_changed,
            on_update=lambda old, new: self._deployment_changed(new),
            on_delete=self._deployment_changed,
        )
        self.replica_sets.add_handlers(
            on_add=self._replica_set_changed,
            on_update=self._replica_set_updated,
            on_delete=self._replica_set_changed,
        )
        # Only deletions matter: a Recreate rollout waits for the old pods to go.
        self.pods.add_handlers(on_delete=self._pod_deleted)
        self.pdbs.add_handlers(
            on_add=self._pdb_changed,
            on_update=lambda old, new: self._pdb_changed(new),
            on_delete=self._pdb_changed,
        )

    def informers(self) -> Iterable[Informer]:
        return (self.deployments, self.replica_sets, self.pods, self.pdbs)

    # --- event handlers: they only find the Deployment and enqueue it -------------------------

    def _deployment_changed(self, d: Obj) -> None:
        self.enqueue(_key(d))

    def _owner_of(self, rs: Obj) -> Obj | None:
        ref = podutil.controller_ref(rs)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get(f"{o.namespace_of(rs)}/{ref.get('name', '')}")
        return d if d is not None and o.uid_of(d) == ref.get("uid") else None

    def _replica_set_changed(self, rs: Obj) -> None:
        if podutil.controller_ref(rs) is not None:
            owner = self._owner_of(rs)
            if owner is not None:
                self.enqueue(_key(owner))
            return
        # An orphan: any Deployment that would adopt it.
        for d in self.deployments.by_index(_BY_NAMESPACE, o.namespace_of(rs)):
            selector = o.selector(d)
            if (
                selector is not None
                and not selector.is_empty()
                and selector.matches(o.labels_of(rs))
            ):
                self.enqueue(_key(d))

    def _replica_set_updated(self, old: Obj, new: Obj) -> None:
        if podutil.controller_ref(old) != podutil.controller_ref(new) or o.labels_of(
            old
        ) != o.labels_of(new):
            self._replica_set_changed(old)
        self._replica_set_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        ref = podutil.controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        for rs in self.replica_sets.by_index(_BY_UID, str(ref.get("uid", ""))):
            owner = self._owner_of(rs)
            if owner is not None:
                self.enqueue(_key(owner))

    def _pdb_changed(self, pdb: Obj) -> None:
        try:
            selector = selector_from_dict(o.spec(pdb).get("selector"))
        except ValueError:
            return  # a budget whose selector does not parse covers no Deployment
        for d in self.deployments.by_index(_BY_NAMESPACE, o.namespace_of(pdb)):
            if selector.matches(o.template_labels(d)):
                self.enqueue(_key(d))

    # --- lookups for a sync -------------------------------------------------------------------

    def _cluster(self) -> Cluster:
        return Cluster(
            pods_of=lambda rs: self.pods.by_index(_BY_CONTROLLER, o.uid_of(rs)),
            pods_in=lambda ns: self.pods.by_index(_BY_NAMESPACE, ns),
            replica_sets_in=lambda ns: self.replica_sets.by_index(_BY_NAMESPACE, ns),
            pdbs_in=lambda ns: self.pdbs.by_index(_BY_NAMESPACE, ns),
        )

    # --- the sync -----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            self.holds.pop(key, None)
            return
        d = copy.deepcopy(cached)
        replica_sets = await self._claim_replica_sets(d)
        pass_ = DeploymentSync(
            client=self.client,
            events=self.ctx.events,
            cluster=self._cluster(),
            d=d,
            replica_sets=replica_sets,
            now=self.clock.now(),
            holds=self.holds,
        )
        try:
            await pass_.run()
        except ApiError as error:
            if error.code != 409 or error.reason != "Conflict":
                raise
            # Written since our cache read it: the watch has that version on its
            # way, and its event enqueues this Deployment again. Retrying now
            # would only meet the same stale cache.
            log.debug("deployment %s: %s; waiting for the newer version", key, error.message)
            return
        if pass_.requeue is not None:
            raise RequeueAfter(pass_.requeue)

    async def _claim_replica_sets(self, d: Obj) -> list[Obj]:
        """The ReplicaSets this Deployment controls, after adopting and releasing.

        ``ControllerRefManager``, through ``podutil.claim``: an orphan that
        matches the selector is adopted (once a fresh read shows the
        Deployment still alive), an owned one that stopped matching is
        released.
        """
        selector = o.selector(d)
        if selector is None or selector.is_empty():
            # Validation refuses both; never let one claim every ReplicaSet.
            return []
        owned: list[Obj] = []
        may_adopt: bool | None = None
        for rs in self.replica_sets.by_index(_BY_NAMESPACE, o.namespace_of(d)):
            decision = podutil.claim(rs, d, selector)
            if decision is podutil.Claim.KEEP:
                owned.append(copy.deepcopy(rs))
            elif decision is podutil.Claim.ADOPT:
                if may_adopt is None:
                    may_adopt = await self._still_current(d)
                if may_adopt:
                    adopted = await self._patch_owner(rs, podutil.adopt_patch(d, rs))
                    if adopted is not None:
                        owned.append(adopted)
            elif decision is podutil.Claim.RELEASE:
                await self._patch_owner(rs, podutil.release_patch(o.uid_of(d), rs))
        return owned

    async def _still_current(self, d: Obj) -> bool:
        """The cache may be behind a delete: adopt only for a Deployment that, read fresh, lives."""
        try:
            fresh = await self.client.get(DEPLOYMENTS, o.name_of(d), o.namespace_of(d))
        except ApiError as error:
            if error.code == 404:
                return False
            raise
        return o.uid_of(fresh) == o.uid_of(d) and not podutil.is_terminating(fresh)

    async def _patch_owner(self, rs: Obj, patch: Obj) -> Obj | None:
        log.info("deployment: changing the owner of replica set %s", _key(rs))
        try:
            patched: Obj = await self.client.patch(
                REPLICA_SETS,
                o.name_of(rs),
                patch,
                o.namespace_of(rs),
                patch_type=podutil.PATCH_TYPE,
            )
        except ApiError as error:
            # Gone, or claimed by someone else meanwhile: not ours to fight over.
            if error.code in (404, 409, 422):
                return None
            raise
        return patched
