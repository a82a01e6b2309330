"""ReplicationController and ReplicaSet: keep ``spec.replicas`` pods running.

One controller class serves both kinds; they differ only in how the
selector is written (a plain map for an RC, a LabelSelector for an RS).
The loop is Kubernetes' ReplicaSet controller:

- claim: adopt orphans the selector matches, release owned pods it no
  longer matches;
- manage: create the missing pods in slow-start batches (1, 2, 4, ...), so a
  template the server refuses costs one failed request rather than a
  hundred; or delete the surplus, least valuable first;
- report ``status`` through the status subresource.

Expectations keep a sync from acting on a cache that has not yet shown the
controller's own creates and deletes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from controlplane.controllers import podutil
from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.ownedpods import OwnedPods, PodExpectations
from controlplane.controllers.podutil import NAMESPACE_INDEX, Claim
from corral.api.errors import ApiError
from corral.api.labels import LabelSelector, SelectorError, selector_from_dict, selector_from_set
from corral.api.resources import REGISTRY, ResourceType
from corral.clock import rfc3339
from corral.informer import object_key
from corral.objects import Obj, labels_of, meta, parse_time, spec, status, uid_of

log = logging.getLogger(__name__)

PODS = REGISTRY.by_kind("v1", "Pod")
REPLICATION_CONTROLLERS = REGISTRY.by_kind("v1", "ReplicationController")
REPLICA_SETS = REGISTRY.by_kind("apps/v1", "ReplicaSet")
assert PODS is not None and REPLICATION_CONTROLLERS is not None and REPLICA_SETS is not None

# Kubernetes' defaults: at most this many creates or deletes per sync, and
# the first slow-start batch.
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


async def slow_start_batch(
    count: int, initial: int, action: Callable[[], Awaitable[None]]
) -> tuple[int, Exception | None]:
    """Run ``action`` ``count`` times in doubling batches; stop after a batch with a failure.

    Returns how many succeeded and the first failure, as Kubernetes'
    slowStartBatch does.
    """
    done = 0
    batch = min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(action() for _ in range(batch)), return_exceptions=True)
        failures: list[Exception] = []
        for result in results:
            if isinstance(result, Exception):
                failures.append(result)
            elif isinstance(result, BaseException):
                raise result
        done += batch - len(failures)
        if failures:
            return done, failures[0]
        batch = min(2 * batch, count - done)
    return done, None


# --- choosing what to delete --------------------------------------------------------------


def _newest_first(at: datetime | None) -> tuple[int, float]:
    """Sort key: no time first, then the most recent."""
    return (0, 0.0) if at is None else (1, -at.timestamp())


def _deletion_cost(pod: Obj) -> int:
    try:
        return int((meta(pod).get("annotations") or {}).get(DELETION_COST_ANNOTATION, 0))
    except ValueError:
        return 0  # not a number: no cost, as Kubernetes' controller reads it


def deletion_order(pods: list[Obj], related: Iterable[Obj]) -> list[Obj]:
    """``pods`` ordered from the first to delete, as Kubernetes' ActivePodsWithRanks.

    Unscheduled before scheduled; Pending, Unknown, then Running; not ready
    before ready; lower pod-deletion-cost first; then pods on nodes crowded
    with replicas of the same workload (``related``); then the most
    recently ready; then the most restarted; then the newest.
    """
    crowding = Counter(node for p in related if (node := spec(p).get("nodeName")) is not None)

    def key(pod: Obj) -> tuple[Any, ...]:
        node = spec(pod).get("nodeName")
        ready = podutil.is_ready(pod)
        return (
            bool(node),
            _PHASE_ORDER.get(podutil.phase(pod), 0),
            ready,
            _deletion_cost(pod),
            -crowding[node] if node else 0,
            _newest_first(podutil.ready_since(pod)) if ready else (0, 0.0),
            -podutil.restart_count(pod),
            _newest_first(parse_time(meta(pod).get("creationTimestamp"))),
        )

    return sorted(pods, key=key)


# --- status ---------------------------------------------------------------------------------

_STATUS_COUNTS = ("fullyLabeledReplicas", "readyReplicas", "availableReplicas")


def _min_ready_seconds(owner: Obj) -> int:
    return int(spec(owner).get("minReadySeconds") or 0)


def compute_status(
    owner: Obj, pods: list[Obj], now: datetime, failure: tuple[str, str] | None = None
) -> Obj:
    """The status the owner should have for these (claimed, active) pods.

    Zero counts are left out, as Kubernetes' JSON leaves them out;
    ``failure`` (reason and message of the last create or delete error)
    sets the ReplicaFailure condition, which a clean sync clears.
    """
    template_labels = meta(spec(owner).get("template") or {})
    wanted = template_labels.get("labels") or {}
    min_ready = _min_ready_seconds(owner)
    counts = {
        "fullyLabeledReplicas": sum(1 for p in pods if wanted.items() <= labels_of(p).items()),
        "readyReplicas": sum(1 for p in pods if podutil.is_ready(p)),
        "availableReplicas": sum(1 for p in pods if podutil.is_available(p, min_ready, now)),
    }
    status: Obj = {"replicas": len(pods), **{k: v for k, v in counts.items() if v}}
    generation = meta(owner).get("generation")
    if generation:
        status["observedGeneration"] = generation
    old_conditions = [
        c for c in (owner.get("status") or {}).get("conditions") or [] if isinstance(c, dict)
    ]
    conditions = [c for c in old_conditions if c.get("type") != "ReplicaFailure"]
    if failure is not None:
        previous = next((c for c in old_conditions if c.get("type") == "ReplicaFailure"), None)
        reason, message = failure
        conditions.append(
            previous
            or {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": rfc3339(now),
            }
        )
    if conditions:
        status["conditions"] = conditions
    return status


def next_available_in(owner: Obj, pods: list[Obj], now: datetime) -> float | None:
    """Seconds until the next ready pod becomes available, if one is waiting out minReadySeconds."""
    min_ready = _min_ready_seconds(owner)
    if min_ready <= 0:
        return None
    waits = [
        (at - now).total_seconds()
        for p in pods
        if (at := podutil.available_at(p, min_ready)) is not None and at > now
    ]
    return min(waits) if waits else None


def status_patch(current: Obj, desired: Obj) -> Obj | None:
    """A merge patch turning ``current`` status into ``desired``; None when they already agree."""
    keys = {"replicas", "observedGeneration", "conditions", *_STATUS_COUNTS}
    patch = {k: desired.get(k) for k in keys if current.get(k) != desired.get(k)}
    return patch or None


# --- the controller ---------------------------------------------------------------------------


class ReplicationManager(Controller):
    """Converges pods on ``spec.replicas`` for one kind: RCs or ReplicaSets."""

    workers = 4

    def __init__(
        self,
        ctx: Context,
        rt: ResourceType,
        *,
        burst_replicas: int = BURST_REPLICAS,
        expectations_timeout: float = 300.0,
    ) -> None:
        super().__init__(ctx)
        assert PODS is not None
        self.rt = rt
        self.name = "replicaset" if rt.kind == "ReplicaSet" else "replicationcontroller"
        self.burst_replicas = burst_replicas
        self.expectations = PodExpectations(ctx.clock, expectations_timeout)
        self.owners = ctx.informer(rt)
        self.owners.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.owned = OwnedPods(
            self.owners, rt.kind, rt.group, self.expectations, self.enqueue, self._matching_owners
        )
        self.owners.add_handlers(
            on_add=lambda o: self.enqueue(object_key(o)),
            on_update=lambda old, new: self.enqueue(object_key(new)),
            on_delete=self.owned.owner_deleted,
        )
        self.pods.add_handlers(
            on_add=self.owned.pod_added,
            on_update=self._pod_updated,
            on_delete=self.owned.pod_deleted,
        )

    # --- selectors and owners ---------------------------------------------------------

    def selector(self, owner: Obj) -> LabelSelector | None:
        """The owner's selector; None when empty or malformed, which selects nothing here."""
        raw = spec(owner).get("selector")
        try:
            if self.rt.kind == "ReplicationController":
                selector = selector_from_set(raw) if isinstance(raw, dict) else None
            else:
                selector = selector_from_dict(raw) if raw is not None else None
        except SelectorError:
            return None
        return None if selector is None or selector.is_empty() else selector

    def _matching_owners(self, pod: Obj) -> list[str]:
        namespace = str(meta(pod).get("namespace", ""))
        labels = labels_of(pod)
        keys = []
        for owner in self.owners.by_index(NAMESPACE_INDEX, namespace):
            selector = self.selector(owner)
            if selector is not None and selector.matches(labels):
                keys.append(object_key(owner))
        return keys

    # --- event handlers -----------------------------------------------------------------

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        namespace = str(meta(new).get("namespace", ""))
        labels_changed = labels_of(old) != labels_of(new)
        if podutil.is_terminating(new) and not podutil.is_terminating(old):
            self.owned.pod_deleted(new)
            if labels_changed:
                self.owned.pod_deleted(old)
            return
        old_ref, new_ref = podutil.controller_ref(old), podutil.controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            old_key = self.owned.owner_key(old_ref, namespace)
            if old_key is not None:
                self.enqueue(old_key)
        if new_ref is not None:
            key = self.owned.owner_key(new_ref, namespace)
            if key is not None:
                self.enqueue(key)
            return
        if labels_changed or old_ref != new_ref:
            for key in self._matching_owners(new):
                self.enqueue(key)

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.forget(key)
            return
        selector = self.selector(owner)
        if selector is None:
            log.warning("%s %s has an empty or invalid selector; not managing it", self.name, key)
            return
        satisfied = self.expectations.satisfied(key)
        namespace = str(meta(owner).get("namespace", ""))
        candidates = [
            p for p in self.pods.by_index(NAMESPACE_INDEX, namespace) if podutil.is_active(p)
        ]
        pods = await self._claim(owner, selector, candidates)
        failure: ApiError | None = None
        if satisfied and not podutil.is_terminating(owner):
            try:
                await self._manage(key, owner, pods)
            except ApiError as error:
                failure = error
        now = self.clock.now()
        condition = None
        if failure is not None:
            verb = "FailedCreate" if len(pods) < self._replicas(owner) else "FailedDelete"
            condition = (verb, failure.message)
        await self._write_status(owner, compute_status(owner, pods, now, condition))
        if failure is not None:
            raise failure
        wait = next_available_in(owner, pods, now)
        if wait is not None:
            raise RequeueAfter(wait)

    @staticmethod
    def _replicas(owner: Obj) -> int:
        return int(spec(owner).get("replicas", 1))

    async def _claim(self, owner: Obj, selector: LabelSelector, candidates: list[Obj]) -> list[Obj]:
        claimed: list[Obj] = []
        may_adopt: bool | None = None
        for pod in candidates:
            decision = podutil.claim(pod, owner, selector)
            if decision is Claim.KEEP:
                claimed.append(pod)
            elif decision is Claim.ADOPT:
                if may_adopt is None:
                    may_adopt = await self._still_current(owner)
                if may_adopt:
                    adopted = await self._patch_pod(pod, podutil.adopt_patch(owner, pod))
                    if adopted is not None:
                        claimed.append(adopted)
            elif decision is Claim.RELEASE:
                await self._patch_pod(pod, podutil.release_patch(uid_of(owner), pod))
        return claimed

    async def _still_current(self, owner: Obj) -> bool:
        """Adopt only for an owner that, read fresh, still exists and is not being deleted.

        The cache may be behind a delete; adopting then would hand the pods
        to an owner the garbage collector is about to remove.
        """
        try:
            fresh = await self.client.get(self.rt, meta(owner)["name"], meta(owner)["namespace"])
        except ApiError as error:
            if error.code == 404:
                return False
            raise
        return uid_of(fresh) == uid_of(owner) and not podutil.is_terminating(fresh)

    async def _patch_pod(self, pod: Obj, patch: Obj) -> Obj | None:
        assert PODS is not None
        try:
            return await self.client.patch(
                PODS, meta(pod)["name"], patch, meta(pod)["namespace"], patch_type="strategic"
            )
        except ApiError as error:
            # Gone, replaced, or claimed by someone else meanwhile: not ours to fight over.
            if error.code in (404, 409, 422):
                return None
            raise

    async def _manage(self, key: str, owner: Obj, pods: list[Obj]) -> None:
        diff = len(pods) - self._replicas(owner)
        if diff < 0:
            await self._create(key, owner, min(-diff, self.burst_replicas))
        elif diff > 0:
            await self._delete(key, owner, pods, min(diff, self.burst_replicas))

    async def _create(self, key: str, owner: Obj, count: int) -> None:
        template = spec(owner).get("template")
        if not template:
            log.warning("%s %s has no pod template; cannot create pods", self.name, key)
            return
        assert PODS is not None
        pods_rt = PODS
        namespace = str(meta(owner).get("namespace", ""))
        terminating = False

        async def create_one() -> None:
            nonlocal terminating
            try:
                created = await self.client.create(
                    pods_rt, podutil.pod_from_template(template, owner), namespace
                )
            except ApiError as error:
                if error.code == 403 and error.kind == "namespaces":
                    terminating = True  # nothing can be created there any more
                else:
                    await self._event(owner, "Warning", "FailedCreate", f"Error creating: {error}")
                raise
            await self._event(owner, "Normal", "SuccessfulCreate", f"Created pod: {_name(created)}")

        self.expectations.expect(key, adds=count)
        created, failure = await slow_start_batch(count, SLOW_START_INITIAL_BATCH, create_one)
        # Creates never attempted (or refused) will not show up in the watch.
        for _ in range(count - created):
            self.expectations.observed_add(key)
        if failure is not None and not terminating:
            raise failure

    async def _delete(self, key: str, owner: Obj, pods: list[Obj], count: int) -> None:
        assert PODS is not None
        pods_rt = PODS
        victims = deletion_order(pods, self._related(owner, pods))[:count]
        self.expectations.expect_deletions(key, [uid_of(p) for p in victims])

        async def delete_one(pod: Obj) -> None:
            try:
                await self.client.delete(pods_rt, meta(pod)["name"], meta(pod)["namespace"])
            except ApiError as error:
                self.expectations.deletion_observed(key, uid_of(pod))
                if error.code == 404:
                    return
                await self._event(owner, "Warning", "FailedDelete", f"Error deleting: {error}")
                raise
            await self._event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {_name(pod)}")

        results = await asyncio.gather(*(delete_one(p) for p in victims), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _related(self, owner: Obj, pods: list[Obj]) -> list[Obj]:
        """Pods of the same workload: for a ReplicaSet under a Deployment, all its siblings'.

        Counting siblings' pods spreads a scale-down across nodes during a
        rollout, not only within one ReplicaSet.
        """
        ref = podutil.controller_ref(owner)
        if ref is None:
            return pods
        namespace = str(meta(owner).get("namespace", ""))
        siblings = {
            uid_of(o)
            for o in self.owners.by_index(NAMESPACE_INDEX, namespace)
            if (sibling_ref := podutil.controller_ref(o)) is not None
            and sibling_ref.get("uid") == ref.get("uid")
        }
        return [
            p
            for p in self.pods.by_index(NAMESPACE_INDEX, namespace)
            if podutil.is_active(p)
            and (pod_ref := podutil.controller_ref(p)) is not None
            and pod_ref.get("uid") in siblings
        ]

    async def _write_status(self, owner: Obj, desired: Obj) -> None:
        patch = status_patch(status(owner), desired)
        if patch is None:
            return
        try:
            await self.client.patch(
                self.rt,
                meta(owner)["name"],
                {"metadata": {"uid": uid_of(owner)}, "status": patch},
                meta(owner)["namespace"],
                subresource="status",
            )
        except ApiError as error:
            if error.code != 404:
                raise

    async def _event(self, owner: Obj, kind: str, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            await self.ctx.events.record(owner, kind, reason, message)


def _name(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def replication_controller(ctx: Context) -> ReplicationManager:
    assert REPLICATION_CONTROLLERS is not None
    return ReplicationManager(ctx, REPLICATION_CONTROLLERS)


def replica_set(ctx: Context) -> ReplicationManager:
    assert REPLICA_SETS is not None
    return ReplicationManager(ctx, REPLICA_SETS)
