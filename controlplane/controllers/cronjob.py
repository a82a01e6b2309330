"""CronJob: create a Job at each scheduled time.

Kubernetes' cronjob_controllerv2, on an injected clock: each sync tidies
``status.active`` (Jobs gone or finished leave it; a Job that completed
moves ``lastSuccessfulTime``), deletes finished Jobs past the history
limits, and, unless suspended, starts the Job for the most recent scheduled
time not yet run, named ``<cronjob>-<minutes since the epoch>`` so that a
retried sync can never start it twice. ``startingDeadlineSeconds`` bounds how
late a start may be; more than 100 missed times is reported, not an error;
``concurrencyPolicy`` decides what happens while a Job still runs (Allow
another, Forbid the new one, Replace the old one). The sync then sleeps
until the next scheduled time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from controlplane.controllers import job_status as js
from controlplane.controllers import podutil
from controlplane.controllers.base import Context, Controller, RequeueAfter
from corral import cron
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.clock import rfc3339
from corral.informer import object_key
from corral.objects import Obj, meta, name_of, namespace_of, parse_time, spec, status, uid_of

log = logging.getLogger(__name__)

JOBS = REGISTRY.require("batch/v1", "Job")
CRONJOBS = REGISTRY.require("batch/v1", "CronJob")
OWNER_UID_INDEX = "cronjob-controller-uid"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# Kubernetes' limit on missed start times walked before it says "too many".
MAX_MISSED = 100
# Wake a little after the scheduled time, so the clock has surely passed it.
NEXT_SCHEDULE_DELTA = 0.1


def by_controller_uid(job: Obj) -> list[str]:
    """Index function: Jobs by the uid of their controlling CronJob."""
    ref = podutil.controller_ref(job)
    if ref is None or ref.get("kind") != "CronJob":
        return []
    return [str(ref.get("uid", ""))]


def job_name(cron_job: Obj, scheduled: datetime) -> str:
    return f"{name_of(cron_job)}-{int(scheduled.timestamp() // 60)}"


def job_from_template(cron_job: Obj, scheduled: datetime, zone: cron.Schedule) -> Obj:
    """The Job for one scheduled time: the template's metadata and spec, owned by the CronJob."""
    template = spec(cron_job).get("jobTemplate") or {}
    template_meta = meta(template)
    annotations = dict(template_meta.get("annotations") or {})
    # RFC 3339 in the CronJob's zone, as Kubernetes writes it ("Z" for UTC).
    local = scheduled.astimezone(zone.zone).isoformat(timespec="seconds")
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = local.replace("+00:00", "Z")
    metadata: Obj = {
        "name": job_name(cron_job, scheduled),
        "namespace": namespace_of(cron_job),
        "annotations": annotations,
        "ownerReferences": [podutil.owner_reference(cron_job)],
    }
    if template_meta.get("labels"):
        metadata["labels"] = dict(template_meta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec(template)}


def job_finished(job: Obj) -> str | None:
    condition = js.finished_condition(job)
    return None if condition is None else str(condition.get("type"))


class CronJobController(Controller):
    name = "cronjob"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cron_jobs = ctx.informer(CRONJOBS)
        self.jobs = ctx.informer(JOBS)
        self.jobs.add_index(OWNER_UID_INDEX, by_controller_uid)
        self.cron_jobs.add_handlers(
            on_add=lambda o: self.enqueue(object_key(o)),
            on_update=lambda old, new: self.enqueue(object_key(new)),
        )
        self.jobs.add_handlers(
            on_add=self._job_changed,
            on_update=lambda old, new: self._job_changed(new),
            on_delete=self._job_changed,
        )

    def _job_changed(self, job: Obj) -> None:
        ref = podutil.controller_ref(job)
        if ref is None or ref.get("kind") != "CronJob":
            return
        key = f"{namespace_of(job)}/{ref.get('name', '')}"
        owner = self.cron_jobs.get(key)
        if owner is not None and uid_of(owner) == ref.get("uid"):
            self.enqueue(key)

    # --- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cron_job = self.cron_jobs.get(key)
        if cron_job is None:
            return
        now = self.clock.now()
        jobs = self.jobs.by_index(OWNER_UID_INDEX, uid_of(cron_job))
        desired = await self._tidy_active(cron_job, jobs)
        await self._clean_history(cron_job, jobs)
        if podutil.is_terminating(cron_job):
            await self._write_status(cron_job, desired)
            return
        try:
            schedule = cron.parse(
                str(spec(cron_job).get("schedule", "")), spec(cron_job).get("timeZone")
            )
        except cron.ScheduleError as error:
            await self._write_status(cron_job, desired)
            await self._event(cron_job, "Warning", "UnparseableSchedule", str(error))
            return
        if not spec(cron_job).get("suspend"):
            await self._start_due(cron_job, schedule, desired, jobs, now)
        await self._write_status(cron_job, desired)
        upcoming = schedule.next_after(now)
        raise RequeueAfter((upcoming - now).total_seconds() + NEXT_SCHEDULE_DELTA)

    async def _tidy_active(self, cron_job: Obj, jobs: list[Obj]) -> Obj:
        """The status with finished and vanished Jobs out of ``active``."""
        by_uid = {uid_of(j): j for j in jobs}
        current = status(cron_job)
        desired: Obj = {
            "lastScheduleTime": current.get("lastScheduleTime"),
            "lastSuccessfulTime": current.get("lastSuccessfulTime"),
        }
        active: list[Obj] = []
        for ref in current.get("active") or []:
            job = by_uid.get(str(ref.get("uid"))) or await self._fetch(ref)
            if job is None:
                continue
            if job_finished(job) is None:
                active.append(ref)
        # Jobs of ours that run but were never recorded (a status write lost).
        recorded = {str(r.get("uid")) for r in active}
        for job in jobs:
            unrecorded = uid_of(job) not in recorded and not podutil.is_terminating(job)
            if unrecorded and job_finished(job) is None:
                active.append(_reference(job))
        for job in jobs:
            if job_finished(job) == js.COMPLETE:
                done = status(job).get("completionTime")
                last = parse_time(desired["lastSuccessfulTime"])
                done_at = parse_time(done)
                if done_at is not None and (last is None or done_at > last):
                    desired["lastSuccessfulTime"] = done
        desired["active"] = active or None
        return desired

    async def _fetch(self, ref: Obj) -> Obj | None:
        """A Job the cache has not shown (yet): asked of the server, as Kubernetes does."""
        try:
            job: Obj = await self.client.get(JOBS, str(ref.get("name")), ref.get("namespace"))
        except ApiError as error:
            if error.code == 404:
                return None
            raise
        return job if uid_of(job) == ref.get("uid") else None

    async def _start_due(
        self,
        cron_job: Obj,
        schedule: cron.Schedule,
        desired: Obj,
        jobs: list[Obj],
        now: datetime,
    ) -> None:
        cj_spec = spec(cron_job)
        earliest = parse_time(desired.get("lastScheduleTime")) or parse_time(
            meta(cron_job).get("creationTimestamp")
        )
        if earliest is None:
            earliest = now
        deadline = cj_spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - timedelta(seconds=int(deadline)))
        scheduled, missed = cron.times_between(schedule, earliest, now, MAX_MISSED)
        if scheduled is None:
            return
        if missed > MAX_MISSED:
            await self._event(
                cron_job,
                "Warning",
                "TooManyMissedTimes",
                f"too many missed start times: {missed}. Set or decrease "
                ".spec.startingDeadlineSeconds or check clock skew",
            )
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
            await self._event(
                cron_job,
                "Warning",
                "MissedSchedule",
                f"Missed scheduled time to start a job: {rfc3339(scheduled)}",
            )
            return
        name = job_name(cron_job, scheduled)
        if any(name_of(j) == name for j in jobs):
            return  # already started for this time
        policy = cj_spec.get("concurrencyPolicy", "Allow")
        active = desired.get("active") or []
        if policy == "Forbid" and active:
            log.info("cronjob %s: a Job still runs and concurrency is Forbid", name_of(cron_job))
            return
        if policy == "Replace":
            for ref in active:
                await self._delete_job(cron_job, str(ref.get("name")))
            active = []
        job = await self._create_job(cron_job, scheduled, schedule)
        if job is None:
            return
        desired["active"] = [*active, _reference(job)]
        desired["lastScheduleTime"] = rfc3339(scheduled)

    async def _create_job(
        self, cron_job: Obj, scheduled: datetime, schedule: cron.Schedule
    ) -> Obj | None:
        body = job_from_template(cron_job, scheduled, schedule)
        try:
            created: Obj = await self.client.create(JOBS, body, namespace_of(cron_job))
        except ApiError as error:
            if error.code == 409:
                return None  # created by an earlier attempt; the informer will show it
            await self._event(
                cron_job, "Warning", "FailedCreate", f"Error creating job: {error.message}"
            )
            raise
        await self._event(cron_job, "Normal", "SuccessfulCreate", f"Created job {name_of(created)}")
        return created

    async def _delete_job(self, cron_job: Obj, name: str) -> None:
        try:
            await self.client.delete(
                JOBS, name, namespace_of(cron_job), propagation_policy="Background"
            )
        except ApiError as error:
            if error.code != 404:
                raise
            return
        await self._event(cron_job, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    async def _clean_history(self, cron_job: Obj, jobs: list[Obj]) -> None:
        """Delete the oldest finished Jobs past the successful and failed history limits."""
        cj_spec = spec(cron_job)
        for kind, field, default in (
            (js.COMPLETE, "successfulJobsHistoryLimit", 3),
            (js.FAILED, "failedJobsHistoryLimit", 1),
        ):
            limit = cj_spec.get(field)
            keep = default if limit is None else int(limit)
            finished = [
                j for j in jobs if job_finished(j) == kind and not podutil.is_terminating(j)
            ]
            finished.sort(key=_start_key)
            for job in finished[: max(0, len(finished) - keep)]:
                await self._delete_job(cron_job, name_of(job))

    async def _write_status(self, cron_job: Obj, desired: Obj) -> None:
        current = status(cron_job)
        patch = {k: v for k, v in desired.items() if current.get(k) != v}
        if not patch:
            return
        try:
            await self.client.patch(
                CRONJOBS,
                name_of(cron_job),
                {
                    "metadata": {"resourceVersion": meta(cron_job).get("resourceVersion")},
                    "status": patch,
                },
                namespace_of(cron_job),
                subresource="status",
            )
        except ApiError as error:
            if error.code != 404:
                raise

    async def _event(self, cron_job: Obj, event_type: str, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            await self.ctx.events.record(cron_job, event_type, reason, message)


def _reference(job: Obj) -> Obj:
    return {
        "kind": "Job",
        "namespace": namespace_of(job),
        "name": name_of(job),
        "uid": uid_of(job),
        "apiVersion": "batch/v1",
        "resourceVersion": meta(job).get("resourceVersion"),
    }


def _start_key(job: Obj) -> float:
    at = parse_time(status(job).get("startTime")) or parse_time(meta(job).get("creationTimestamp"))
    return at.timestamp() if at is not None else 0.0
