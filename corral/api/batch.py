"""batch/v1: Job and CronJob.

Defaults follow ``pkg/apis/batch/v1/defaults.go``: a Job with neither
completions nor parallelism runs one pod to one completion; backoffLimit 6;
completionMode NonIndexed. A CronJob allows concurrent runs and keeps three
successful and one failed Job. Fields corral does not act on yet
(podFailurePolicy, successPolicy, backoffLimitPerIndex, ...) are accepted
and stored as sent, so that manifests written for Kubernetes still apply.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from corral.api.base import ApiModel, MergeKey, Time
from corral.api.core import ObjectReference, PodTemplateSpec
from corral.api.meta import LabelSelector, ObjectMeta

GROUP = "batch"
API_VERSION = "batch/v1"

CompletionMode = Literal["NonIndexed", "Indexed"]


class UncountedTerminatedPods(ApiModel):
    succeeded: list[str] | None = None
    failed: list[str] | None = None


class JobSpec(ApiModel):
    parallelism: int | None = None
    completions: int | None = None
    active_deadline_seconds: int | None = None
    backoff_limit: int | None = None
    backoff_limit_per_index: int | None = None
    max_failed_indexes: int | None = None
    selector: LabelSelector | None = None
    manual_selector: bool | None = None
    template: PodTemplateSpec
    ttl_seconds_after_finished: int | None = None
    completion_mode: CompletionMode | None = None
    suspend: bool | None = None
    pod_replacement_policy: Literal["TerminatingOrFailed", "Failed"] | None = None
    pod_failure_policy: dict[str, Any] | None = None
    success_policy: dict[str, Any] | None = None
    managed_by: str | None = None

    @model_validator(mode="after")
    def _defaults(self) -> JobSpec:
        # SetDefaults_Job: with neither set, one pod runs to one completion;
        # with only parallelism set, completions stays unset (a work queue).
        if self.completions is None and self.parallelism is None:
            self.completions = 1
        if self.parallelism is None:
            self.parallelism = 1
        if self.backoff_limit is None:
            self.backoff_limit = 6
        if self.completion_mode is None:
            self.completion_mode = "NonIndexed"
        if self.suspend is None:
            self.suspend = False
        if self.pod_replacement_policy is None and self.pod_failure_policy is None:
            self.pod_replacement_policy = "TerminatingOrFailed"
        return self


class JobCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_probe_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class JobStatus(ApiModel):
    conditions: Annotated[list[JobCondition], MergeKey("type")] | None = None
    start_time: Time | None = None
    completion_time: Time | None = None
    active: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    terminating: int | None = None
    ready: int | None = None
    completed_indexes: str | None = None
    failed_indexes: str | None = None
    uncounted_terminated_pods: UncountedTerminatedPods | None = None


class Job(ApiModel):
    api_version: Literal["batch/v1"] = "batch/v1"
    kind: Literal["Job"] = "Job"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: JobSpec
    status: JobStatus | None = None


class JobTemplateSpec(ApiModel):
    metadata: ObjectMeta | None = None
    spec: JobSpec


class CronJobSpec(ApiModel):
    schedule: str
    time_zone: str | None = None
    starting_deadline_seconds: int | None = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    suspend: bool = False
    job_template: JobTemplateSpec
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 1


class CronJobStatus(ApiModel):
    active: Annotated[list[ObjectReference], MergeKey("uid")] | None = None
    last_schedule_time: Time | None = None
    last_successful_time: Time | None = None


class CronJob(ApiModel):
    api_version: Literal["batch/v1"] = "batch/v1"
    kind: Literal["CronJob"] = "CronJob"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: CronJobSpec
    status: CronJobStatus | None = None
