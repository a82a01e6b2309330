"""StatefulSet: pods with stable names, stable DNS names and their own claims.

The loop, per set (Kubernetes' StatefulSetControl):

- claim: adopt orphan pods the selector matches and whose name makes them
  one of the set's ordinals; release owned pods the selector no longer
  matches;
- revisions: find or create the ControllerRevision of the current template
  (the update revision); the current revision is the one the status names;
- plan and act (statefulset_plan): create, delete and relabel pods, and
  create each new pod's PersistentVolumeClaims first;
- status through the status subresource, then prune the history.

A pod name is never created twice at once: the API server refuses a second
``web-1`` while one exists, so, unlike a ReplicaSet, this controller cannot
overshoot. Expectations still keep it from acting on a cache that has not
shown its own last creates and deletes, which would only cost failed
requests and backoff. Deletes carry the pod's UID as a precondition, so a
stale cache can never delete the pod that replaced the one it meant.
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane.controllers import podutil
from controlplane.controllers import statefulset_history as history
from controlplane.controllers import statefulset_identity as identity
from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.ownedpods import OwnedPods, PodExpectations
from controlplane.controllers.podutil import NAMESPACE_INDEX, Claim
from controlplane.controllers.statefulset_plan import (
    Create,
    Delete,
    FixIdentity,
    plan,
    status_counts,
)
from corral import replication
from corral.api.errors import ApiError
from corral.api.labels import LabelSelector, SelectorError, selector_from_dict
from corral.api.resources import REGISTRY
from corral.client.rest import resource_path
from corral.clock import rfc3339
from corral.informer import Informer, object_key
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
STATEFUL_SETS = REGISTRY.by_kind("apps/v1", "StatefulSet")
REVISIONS = REGISTRY.by_kind("apps/v1", "ControllerRevision")
CLAIMS = REGISTRY.by_kind("v1", "PersistentVolumeClaim")
assert PODS is not None and STATEFUL_SETS is not None and REVISIONS is not None

_STATUS_KEYS = (
    "observedGeneration",
    "replicas",
    "readyReplicas",
    "availableReplicas",
    "currentReplicas",
    "updatedReplicas",
    "currentRevision",
    "updateRevision",
    "collisionCount",
)


class SetExpectations(PodExpectations):
    """Pod expectations raised one action at a time, as a plan is carried out."""

    def expect_deletion(self, key: str, uid: str) -> None:
        self.raise_expectations(key, deletes=1)
        self._deleting.setdefault(key, set()).add(uid)


class StatefulSetController(Controller):
    name = "statefulset"
    workers = 2

    def __init__(self, ctx: Context, *, expectations_timeout: float = 300.0) -> None:
        super().__init__(ctx)
        assert PODS is not None and STATEFUL_SETS is not None and REVISIONS is not None
        self.expectations = SetExpectations(ctx.clock, expectations_timeout)
        self.sets = ctx.informer(STATEFUL_SETS)
        self.sets.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.revisions = ctx.informer(REVISIONS)
        self.revisions.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        # Claims are only read to skip creating those that exist; without the
        # kind (an older API server) a create that finds one is just a 409.
        self.claims: Informer | None = ctx.informer(CLAIMS) if CLAIMS is not None else None
        self.owned = OwnedPods(
            self.sets, "StatefulSet", "apps", self.expectations, self.enqueue, self._orphan_owners
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
        self.revisions.add_handlers(
            on_add=self._owned_changed,
            on_update=lambda _old, new: self._owned_changed(new),
            on_delete=self._owned_changed,
        )

    # --- owners and event handlers ----------------------------------------------------

    def selector(self, sts: Obj) -> LabelSelector | None:
        raw = spec(sts).get("selector")
        try:
            selector = selector_from_dict(raw) if raw is not None else None
        except SelectorError:
            return None
        return None if selector is None or selector.is_empty() else selector

    def _orphan_owners(self, pod: Obj) -> list[str]:
        namespace = namespace_of(pod)
        labels = labels_of(pod)
        return [
            object_key(sts)
            for sts in self.sets.by_index(NAMESPACE_INDEX, namespace)
            if (selector := self.selector(sts)) is not None
            and selector.matches(labels)
            and identity.is_member(sts, pod)
        ]

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
            keys.update(self._orphan_owners(new))
        for key in keys:
            if key is not None:
                self.enqueue(key)

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            self.expectations.forget(key)
            return
        if podutil.is_terminating(sts):
            return  # the garbage collector takes its pods and revisions
        selector = self.selector(sts)
        if selector is None:
            log.warning("statefulset %s has an empty or invalid selector; not managing it", key)
            return
        namespace = namespace_of(sts)
        satisfied = self.expectations.satisfied(key)
        pods = await self._claim(sts, selector, namespace)
        revisions = [
            r
            for r in self.revisions.by_index(NAMESPACE_INDEX, namespace)
            if (ref := podutil.controller_ref(r)) is not None and ref.get("uid") == uid_of(sts)
        ]
        current, update, revisions = await self._revisions(sts, revisions)
        now = self.clock.now()
        failure: ApiError | None = None
        if satisfied:
            try:
                await self._act(key, sts, pods, current, update, now)
            except ApiError as error:
                failure = error
        await self._write_status(sts, pods, current, update)
        await self._prune(sts, pods, revisions, current, update)
        if failure is not None:
            raise failure
        wait = self._next_available_in(sts, pods, now)
        if wait is not None:
            raise RequeueAfter(wait)

    async def _claim(self, sts: Obj, selector: LabelSelector, namespace: str) -> list[Obj]:
        claimed: list[Obj] = []
        for pod in self.pods.by_index(NAMESPACE_INDEX, namespace):
            decision = podutil.claim(pod, sts, selector)
            if decision is Claim.ADOPT and not identity.is_member(sts, pod):
                continue
            if decision is Claim.KEEP:
                claimed.append(pod)
            elif decision is Claim.ADOPT:
                adopted = await self._patch_pod(pod, podutil.adopt_patch(sts, pod))
                if adopted is not None:
                    claimed.append(adopted)
            elif decision is Claim.RELEASE:
                await self._patch_pod(pod, podutil.release_patch(uid_of(sts), pod))
        return claimed

    async def _revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[str, str, list[Obj]]:
        """(current revision name, update revision name, the set's revisions)."""
        assert REVISIONS is not None
        status = sts.get("status") or {}
        collisions = int(status.get("collisionCount") or 0)
        wanted = history.new_revision(sts, history.next_number(revisions), collisions)
        existing = history.find_equal(revisions, wanted)
        if existing is None:
            created = await self._create_revision(sts, wanted)
            revisions = [*revisions, created]
            update = name_of(created)
        else:
            update = name_of(existing)
            latest = history.sort_revisions(revisions)[-1]
            if name_of(latest) != update:
                # Back to an older template: that revision becomes the newest.
                number = history.next_number(revisions)
                await self.client.patch(
                    REVISIONS,
                    update,
                    {"revision": number},
                    meta(sts).get("namespace"),
                    patch_type="merge",
                )
                revisions = [
                    {**r, "revision": number} if name_of(r) == update else r for r in revisions
                ]
        names = {name_of(r) for r in revisions}
        current = str(status.get("currentRevision") or "")
        if current not in names:
            current = update
        return current, update, revisions

    async def _create_revision(self, sts: Obj, wanted: Obj) -> Obj:
        """Create the revision; a same-named one holding another template is a hash collision."""
        assert REVISIONS is not None
        namespace = meta(sts).get("namespace")
        try:
            created: Obj = await self.client.create(REVISIONS, wanted, namespace)
            return created
        except ApiError as error:
            if error.code != 409:
                raise
        found: Obj = await self.client.get(REVISIONS, name_of(wanted), namespace)
        if history.same_data(found, wanted) and uid_of(sts) in {
            r.get("uid") for r in owner_references(found)
        }:
            return found
        collisions = int(status(sts).get("collisionCount") or 0) + 1
        assert STATEFUL_SETS is not None
        await self.client.patch(
            STATEFUL_SETS,
            name_of(sts),
            {"metadata": {"uid": uid_of(sts)}, "status": {"collisionCount": collisions}},
            namespace,
            subresource="status",
        )
        raise ApiError(409, "AlreadyExists", "revision name collision; retrying with a new hash")

    async def _act(
        self, key: str, sts: Obj, pods: list[Obj], current: str, update: str, now: Any
    ) -> None:
        decided = plan(sts, pods, current, update, now)
        if decided.waiting:
            log.debug("statefulset %s: %s", key, decided.waiting)
        for action in decided.actions:
            if isinstance(action, Create):
                await self._create_pod(key, sts, action)
            elif isinstance(action, Delete):
                await self._delete_pod(key, sts, action)
            elif isinstance(action, FixIdentity):
                await self._patch_pod(action.pod, identity.identity_patch(sts, action.pod))

    async def _template_for(self, sts: Obj, revision: str) -> Obj:
        if revision:
            found = self.revisions.get(f"{meta(sts).get('namespace')}/{revision}")
            if found is not None:
                return history.template_of(found)
        template: Obj = spec(sts).get("template") or {}
        return template

    async def _create_pod(self, key: str, sts: Obj, action: Create) -> None:
        assert PODS is not None
        namespace = namespace_of(sts)
        await self._ensure_claims(sts, action.ordinal)
        template = await self._template_for(sts, action.revision)
        pod = identity.pod_for(sts, template, action.revision, action.ordinal)
        self.expectations.raise_expectations(key, adds=1)
        try:
            await self.client.create(PODS, pod, namespace)
        except ApiError as error:
            self.expectations.observed_add(key)
            if error.code == 409:
                return  # it exists; the cache will show it
            if not (error.code == 403 and error.kind == "namespaces"):
                await self._event(
                    sts,
                    "Warning",
                    "FailedCreate",
                    f"create Pod {name_of(pod)} in StatefulSet "
                    f"{name_of(sts)} failed error: {error.message}",
                )
            raise
        await self._event(
            sts,
            "Normal",
            "SuccessfulCreate",
            f"create Pod {name_of(pod)} in StatefulSet {name_of(sts)} successful",
        )

    async def _ensure_claims(self, sts: Obj, ordinal: int) -> None:
        namespace = namespace_of(sts)
        for template in identity.claim_templates(sts):
            name = identity.claim_name(template, sts, ordinal)
            if CLAIMS is None:
                raise ApiError(
                    422,
                    "Invalid",
                    f"cannot create claim {name}: this server has no PersistentVolumeClaims",
                )
            if self.claims is not None:
                existing = self.claims.get(f"{namespace}/{name}")
                if existing is not None:
                    if podutil.is_terminating(existing):
                        raise ApiError(
                            409,
                            "Conflict",
                            f"claim {name} is being deleted; pod {ordinal} waits for it to go",
                        )
                    continue
            try:
                await self.client.create(
                    CLAIMS, identity.claim_for(sts, template, ordinal), namespace
                )
            except ApiError as error:
                if error.code != 409:
                    await self._event(
                        sts,
                        "Warning",
                        "FailedCreate",
                        f"create Claim {name} for Pod {identity.pod_name(sts, ordinal)} in "
                        f"StatefulSet {name_of(sts)} failed error: {error.message}",
                    )
                    raise
                continue
            await self._event(
                sts,
                "Normal",
                "SuccessfulCreate",
                f"create Claim {name} Pod {identity.pod_name(sts, ordinal)} in StatefulSet "
                f"{name_of(sts)} success",
            )

    async def _delete_pod(self, key: str, sts: Obj, action: Delete) -> None:
        assert PODS is not None
        pod = action.pod
        if action.reason in ("update", "scale-down") and replication.leads(pod):
            # A replicated set's primary hands its role over before it goes
            # (docs/replication.md): ask, and come back once it is a replica.
            await self._request_switchover(sts, pod)
            return
        self.expectations.expect_deletion(key, uid_of(pod))
        if action.reason == "scale-down":
            await self._claims_follow_pod(sts, pod)
        options: Obj = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": uid_of(pod)},
        }
        path = resource_path(PODS, meta(pod)["namespace"], meta(pod)["name"])
        try:
            await self.client.request("DELETE", path, body=options)
        except ApiError as error:
            self.expectations.deletion_observed(key, uid_of(pod))
            if error.code in (404, 409):
                return
            await self._event(
                sts,
                "Warning",
                "FailedDelete",
                f"delete Pod {name_of(pod)} in StatefulSet "
                f"{name_of(sts)} failed error: {error.message}",
            )
            raise
        await self._event(
            sts,
            "Normal",
            "SuccessfulDelete",
            f"delete Pod {name_of(pod)} in StatefulSet {name_of(sts)} successful",
        )

    async def _request_switchover(self, sts: Obj, pod: Obj) -> None:
        annotations = annotations_of(pod)
        if annotations.get(replication.SWITCHOVER_ANNOTATION):
            return
        assert PODS is not None
        asked = {replication.SWITCHOVER_ANNOTATION: rfc3339(self.clock.now())}
        try:
            await self.client.patch(
                PODS, str(meta(pod)["name"]), {"metadata": {"annotations": asked}},
                str(meta(pod)["namespace"]),
            )  # fmt: skip
        except ApiError as error:
            if error.code != 404:
                raise
            return
        await self._event(
            sts,
            "Normal",
            "SwitchoverRequested",
            f"Pod {name_of(pod)} leads its replicated set: it hands over to a replica "
            "before it is replaced",
        )

    async def _claims_follow_pod(self, sts: Obj, pod: Obj) -> None:
        """Under ``whenScaled: Delete``, a condemned pod's claims go with it (the GC does it)."""
        _, when_scaled = identity.retention(sts)
        ordinal = identity.ordinal_of(pod)
        if when_scaled != "Delete" or CLAIMS is None or ordinal is None:
            return
        for template in identity.claim_templates(sts):
            name = identity.claim_name(template, sts, ordinal)
            patch = {"metadata": {"ownerReferences": [podutil.owner_reference(pod)]}}
            try:
                await self.client.patch(
                    CLAIMS, name, patch, meta(sts).get("namespace"), patch_type="merge"
                )
            except ApiError as error:
                if error.code != 404:
                    raise

    async def _patch_pod(self, pod: Obj, patch: Obj) -> Obj | None:
        assert PODS is not None
        try:
            return await self.client.patch(
                PODS, meta(pod)["name"], patch, meta(pod)["namespace"], patch_type="strategic"
            )
        except ApiError as error:
            if error.code in (404, 409, 422):
                return None
            raise

    # --- status and history --------------------------------------------------------------

    def desired_status(self, sts: Obj, pods: list[Obj], current: str, update: str) -> Obj:
        counts = status_counts(sts, pods, current, update, self.clock.now())
        status: Obj = {k: v for k, v in counts.items() if v or k == "replicas"}
        generation = meta(sts).get("generation")
        if generation:
            status["observedGeneration"] = generation
        wanted = identity.replicas(sts)
        done = (
            counts["updatedReplicas"] == wanted
            and counts["readyReplicas"] == wanted
            and counts["replicas"] == wanted
        )
        if done:
            # The rollout is over: the update revision is what runs.
            current = update
            status["currentReplicas"] = counts["updatedReplicas"]
        status["currentRevision"] = current
        status["updateRevision"] = update
        collisions = (sts.get("status") or {}).get("collisionCount")
        if collisions:
            status["collisionCount"] = collisions
        return status

    async def _write_status(self, sts: Obj, pods: list[Obj], current: str, update: str) -> None:
        assert STATEFUL_SETS is not None
        desired = self.desired_status(sts, pods, current, update)
        existing = status(sts)
        patch = {k: desired.get(k) for k in _STATUS_KEYS if existing.get(k) != desired.get(k)}
        if not patch:
            return
        try:
            await self.client.patch(
                STATEFUL_SETS,
                name_of(sts),
                {"metadata": {"uid": uid_of(sts)}, "status": patch},
                meta(sts).get("namespace"),
                subresource="status",
            )
        except ApiError as error:
            if error.code != 404:
                raise

    async def _prune(
        self, sts: Obj, pods: list[Obj], revisions: list[Obj], current: str, update: str
    ) -> None:
        assert REVISIONS is not None
        in_use = {identity.revision_of(p) for p in pods}
        for revision in history.to_prune(sts, revisions, in_use, current, update):
            try:
                await self.client.delete(
                    REVISIONS, name_of(revision), meta(revision).get("namespace")
                )
            except ApiError as error:
                if error.code != 404:
                    raise

    def _next_available_in(self, sts: Obj, pods: list[Obj], now: Any) -> float | None:
        min_ready = int(spec(sts).get("minReadySeconds") or 0)
        if min_ready <= 0:
            return None
        waits = [
            (at - now).total_seconds()
            for p in pods
            if (at := podutil.available_at(p, min_ready)) is not None and at > now
        ]
        return min(waits) if waits else None

    async def _event(self, sts: Obj, kind: str, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            await self.ctx.events.record(sts, kind, reason, message)
