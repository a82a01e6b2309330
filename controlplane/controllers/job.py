"""Job: run pods until enough succeed, or give up.

Kubernetes' job controller: keep up to ``parallelism`` pods running until
``completions`` have succeeded (or, with no completions, until one has and
none still runs; in Indexed mode, until each index has, see job_indexed.py);
count failures against
``backoffLimit`` and wait 10 s, doubling to 6 minutes, before starting pods
again after a failure; fail the Job past its backoffLimit or its
``activeDeadlineSeconds``; delete a finished Job ``ttlSecondsAfterFinished``
later. A Job's pods carry a controller reference, so the garbage collector
removes them with it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from controlplane.controllers import job_indexed, podutil
from controlplane.controllers import job_status as js
from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.ownedpods import OwnedPods, PodExpectations
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.clock import rfc3339
from corral.informer import object_key
from corral.objects import Obj, meta, name_of, namespace_of, parse_time, spec, status, uid_of

log = logging.getLogger(__name__)

PODS = REGISTRY.require("v1", "Pod")
JOBS = REGISTRY.require("batch/v1", "Job")
OWNER_UID_INDEX = "job-controller-uid"
# At most this many creates or deletes per sync, as Kubernetes' burst.
BURST = 500


def by_controller_uid(pod: Obj) -> list[str]:
    """Index function: pods by the uid of their controlling Job."""
    ref = podutil.controller_ref(pod)
    if ref is None or ref.get("kind") != "Job":
        return []
    return [str(ref.get("uid", ""))]


class JobController(Controller):
    name = "job"
    workers = 4

    def __init__(
        self,
        ctx: Context,
        *,
        backoff_base: float = js.DEFAULT_BACKOFF,
        backoff_max: float = js.MAX_BACKOFF,
    ) -> None:
        super().__init__(ctx)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.expectations = PodExpectations(ctx.clock)
        self.jobs = ctx.informer(JOBS)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(OWNER_UID_INDEX, by_controller_uid)
        self.owned = OwnedPods(
            self.jobs, "Job", "batch", self.expectations, self.enqueue, lambda pod: []
        )
        self.jobs.add_handlers(
            on_add=lambda o: self.enqueue(object_key(o)),
            on_update=lambda old, new: self.enqueue(object_key(new)),
            on_delete=self.owned.owner_deleted,
        )
        self.pods.add_handlers(
            on_add=self.owned.pod_added,
            on_update=self._pod_updated,
            on_delete=self.owned.pod_deleted,
        )

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if podutil.is_terminating(new) and not podutil.is_terminating(old):
            self.owned.pod_deleted(new)
            return
        key = self.owned.owner_key(podutil.controller_ref(new), namespace_of(new))
        if key is not None:
            self.enqueue(key)

    # --- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            self.expectations.forget(key)
            return
        now = self.clock.now()
        pods = self.pods.by_index(OWNER_UID_INDEX, uid_of(job))
        if js.finished_condition(job) is not None:
            await self._after_finish(job, pods, now)
            return
        if podutil.is_terminating(job) or not self.expectations.satisfied(key):
            return
        counts = js.count_pods(job, pods)
        desired = js.desired_status(job, counts, len(counts.active), now)
        suspension = js.suspension_change(job, now)
        if suspension is not None:
            js.apply_suspension(desired, suspension[0], now)
            await self._event(job, "Normal", suspension[1], suspension[2])
        job_for_checks = {**job, "status": {**status(job), **desired}}
        deadline = js.deadline_in(job_for_checks, now)
        failure = None
        if js.past_backoff_limit(job, counts):
            failure = js.BACKOFF_LIMIT_EXCEEDED
        elif deadline is not None and deadline <= 0:
            failure = js.DEADLINE_EXCEEDED
        if failure is not None:
            await self._finish(job, counts.active, desired, js.FAILED, failure, now)
            return
        if js.is_complete(job, counts):
            desired["completionTime"] = rfc3339(now)
            await self._finish(
                job, counts.active, desired, js.COMPLETE, js.COMPLETIONS_REACHED, now
            )
            return
        wait = await self._manage(key, job, pods, counts, now)
        await self._write_status(job, desired)
        waits = [w for w in (wait, deadline) if w is not None and w > 0]
        if waits:
            raise RequeueAfter(min(waits) + 0.05)

    async def _manage(
        self, key: str, job: Obj, pods: list[Obj], counts: js.PodCounts, now: datetime
    ) -> float | None:
        """Create or delete pods towards the wanted number; the seconds of back-off left."""
        want = js.wanted_active(job, counts.succeeded)
        active = counts.active
        if len(active) > want:
            surplus = podutil_newest_first(active)[: min(len(active) - want, BURST)]
            self.expectations.expect_deletions(key, [uid_of(p) for p in surplus])
            await asyncio.gather(*(self._delete_pod(job, p) for p in surplus))
            return None
        missing = min(want - len(active), BURST)
        if missing <= 0:
            return None
        remaining = js.backoff_remaining(pods, now, self.backoff_base, self.backoff_max)
        if remaining > 0:
            return remaining
        indexes: list[int | None] = [None] * missing
        if job_indexed.is_indexed(job):
            indexes = [*job_indexed.to_create(job, pods, missing)]
        self.expectations.expect(key, adds=len(indexes))
        results = await asyncio.gather(
            *(self._create_pod(job, i) for i in indexes), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                # The create never happened: expect one fewer.
                self.expectations.observed_add(key)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        return None

    async def _create_pod(self, job: Obj, index: int | None) -> None:
        pod = podutil.pod_from_template(spec(job).get("template") or {}, job)
        if index is not None:
            pod = job_indexed.with_index(pod, job, index)
        try:
            created = await self.client.create(PODS, pod, namespace_of(job))
        except ApiError as error:
            await self._event(job, "Warning", "FailedCreate", f"Error creating: {error.message}")
            raise
        await self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {name_of(created)}")

    async def _delete_pod(self, job: Obj, pod: Obj) -> None:
        try:
            await self.client.delete(PODS, name_of(pod), namespace_of(pod))
        except ApiError as error:
            if error.code != 404:
                raise
            return
        await self._event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")

    async def _finish(
        self,
        job: Obj,
        active: list[Obj],
        desired: Obj,
        kind: str,
        reason: str,
        now: datetime,
    ) -> None:
        """Stop the running pods and record the condition that ends the Job."""
        await asyncio.gather(*(self._delete_pod(job, p) for p in active))
        conditions = [c for c in desired.get("conditions") or [] if c.get("type") != kind]
        desired["conditions"] = [*conditions, js.new_condition(kind, reason, now)]
        desired["active"] = None
        desired["ready"] = 0
        await self._write_status(job, desired)
        event_type = "Normal" if kind == js.COMPLETE else "Warning"
        event_reason = "Completed" if kind == js.COMPLETE else reason
        message = "Job completed" if kind == js.COMPLETE else js.MESSAGES[reason]
        await self._event(job, event_type, event_reason, message)

    async def _after_finish(self, job: Obj, pods: list[Obj], now: datetime) -> None:
        """A finished Job: no pod left running, and gone once its TTL runs out."""
        stragglers = [p for p in pods if podutil.is_active(p)]
        if stragglers:
            await asyncio.gather(*(self._delete_pod(job, p) for p in stragglers))
        ttl = spec(job).get("ttlSecondsAfterFinished")
        if ttl is None or podutil.is_terminating(job):
            return
        condition = js.finished_condition(job) or {}
        finished = parse_time(status(job).get("completionTime")) or parse_time(
            condition.get("lastTransitionTime")
        )
        if finished is None:
            return
        left = (finished - now).total_seconds() + int(ttl)
        if left > 0:
            raise RequeueAfter(left + 0.05)
        try:
            # Foreground, as Kubernetes' TTL-after-finished controller: the
            # Job goes only once its pods have.
            await self.client.delete(
                JOBS, name_of(job), namespace_of(job), propagation_policy="Foreground"
            )
        except ApiError as error:
            if error.code != 404:
                raise

    async def _write_status(self, job: Obj, desired: Obj) -> None:
        patch = js.status_patch(status(job), desired)
        if patch is None:
            return
        patch_body = {"metadata": {"resourceVersion": meta(job).get("resourceVersion")}}
        try:
            await self.client.patch(
                JOBS,
                name_of(job),
                {**patch_body, "status": patch},
                namespace_of(job),
                subresource="status",
            )
        except ApiError as error:
            if error.code == 404:
                return
            raise

    async def _event(self, job: Obj, event_type: str, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            await self.ctx.events.record(job, event_type, reason, message)


def podutil_newest_first(pods: list[Obj]) -> list[Obj]:
    """Pods to delete first: not yet ready, then the most recently created."""
    return sorted(
        pods,
        key=lambda p: (
            podutil.is_ready(p),
            -(t.timestamp() if (t := parse_time(meta(p).get("creationTimestamp"))) else 0.0),
        ),
    )
