"""Jobs and CronJobs, as ``pkg/apis/batch/validation`` checks them.

A Job's selector is usually the server's to generate (``manualSelector``
unset); the API server adds it, and the labels it matches, after these
checks, so a missing selector is only an error with ``manualSelector: true``.
"""

from __future__ import annotations

from corral import cron
from corral.api.batch import CronJob, Job, JobSpec
from corral.api.errors import Cause
from corral.api.validate.common import (
    as_matcher,
    non_negative,
    selector_is_empty,
    validate_label_selector,
)
from corral.api.validate.field import IMMUTABLE, Raw, invalid, not_supported, required
from corral.api.validate.pods import validate_pod_template

SELECTOR_MISMATCH = "`selector` does not match template `labels`"
RESTART_POLICIES = ("OnFailure", "Never")
# A CronJob's Jobs are named <cronjob>-<minutes since the epoch>: 11 more characters.
MAX_CRONJOB_NAME = 52


def _selector(spec: JobSpec, path: str) -> list[Cause]:
    if spec.selector is None:
        return [required(f"{path}.selector")] if spec.manual_selector else []
    causes = validate_label_selector(spec.selector, f"{path}.selector")
    if selector_is_empty(spec.selector):
        return [*causes, invalid(f"{path}.selector", Raw("{}"), "empty selector is invalid")]
    matcher = as_matcher(spec.selector)
    labels = (spec.template.metadata.labels if spec.template.metadata else None) or {}
    if matcher is not None and not matcher.matches(labels):
        causes.append(invalid(f"{path}.template.metadata.labels", labels, SELECTOR_MISMATCH))
    return causes


def validate_job_spec(spec: JobSpec, path: str) -> list[Cause]:
    """``validateJobSpec``: counts, deadlines, the selector and the pod template."""
    causes: list[Cause] = []
    for name, value in (
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("activeDeadlineSeconds", spec.active_deadline_seconds),
        ("backoffLimit", spec.backoff_limit),
        ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished),
    ):
        causes.extend(non_negative(value, f"{path}.{name}"))
    if spec.active_deadline_seconds == 0:
        causes.append(invalid(f"{path}.activeDeadlineSeconds", 0, "must be greater than 0"))
    if spec.completion_mode == "Indexed" and spec.completions is None:
        causes.append(required(f"{path}.completions", "when completion mode is Indexed"))
    causes.extend(_selector(spec, path))
    template_path = f"{path}.template"
    causes.extend(validate_pod_template(spec.template, template_path))
    if spec.template.spec is not None:
        policy = spec.template.spec.restart_policy
        if policy not in RESTART_POLICIES:
            causes.append(
                not_supported(f"{template_path}.spec.restartPolicy", policy, RESTART_POLICIES)
            )
    return causes


def validate_job(job: Job) -> list[Cause]:
    return validate_job_spec(job.spec, "spec")


def validate_job_update(new: Job, old: Job) -> list[Cause]:
    """``ValidateJobSpecUpdate``: what names and shapes the Job's pods stays put."""
    causes: list[Cause] = []
    before, after = old.spec, new.spec
    if after.selector != before.selector:
        causes.append(invalid("spec.selector", Raw("{...}"), IMMUTABLE))
    if after.completion_mode != before.completion_mode:
        causes.append(invalid("spec.completionMode", after.completion_mode, IMMUTABLE))
    if after.completions != before.completions:
        causes.append(invalid("spec.completions", after.completions, IMMUTABLE))
    # The template may change only while the Job is suspended, as Kubernetes
    # allows (for queueing systems that adjust it before a start).
    if after.template != before.template and not (before.suspend and after.suspend):
        causes.append(invalid("spec.template", Raw("{...}"), IMMUTABLE))
    return causes


def validate_cron_job(cron_job: CronJob) -> list[Cause]:
    spec = cron_job.spec
    causes: list[Cause] = []
    name = cron_job.metadata.name or ""
    if len(name) > MAX_CRONJOB_NAME:
        causes.append(
            invalid("metadata.name", name, f"must be no more than {MAX_CRONJOB_NAME} characters")
        )
    if spec.time_zone is not None:
        try:
            cron.zone(spec.time_zone)
        except cron.ScheduleError as error:
            causes.append(invalid("spec.timeZone", spec.time_zone, str(error)))
    try:
        cron.parse(spec.schedule, None)
    except cron.ScheduleError as error:
        causes.append(invalid("spec.schedule", spec.schedule, str(error)))
    for field, value in (
        ("startingDeadlineSeconds", spec.starting_deadline_seconds),
        ("successfulJobsHistoryLimit", spec.successful_jobs_history_limit),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit),
    ):
        causes.extend(non_negative(value, f"spec.{field}"))
    causes.extend(validate_job_spec(spec.job_template.spec, "spec.jobTemplate.spec"))
    return causes
