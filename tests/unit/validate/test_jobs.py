"""Jobs and CronJobs as pkg/apis/batch/validation checks them, and batch/v1's defaults."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.batch import CronJob, Job
from corral.api.validate.jobs import validate_cron_job, validate_job, validate_job_update


def job(**spec: Any) -> Job:
    restart = spec.pop("restartPolicy", "Never")
    labels = spec.pop("labels", None)
    template: dict[str, Any] = {
        "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}
    }
    if labels:
        template["metadata"] = {"labels": labels}
    return Job.model_validate({"metadata": {"name": "j"}, "spec": {**spec, "template": template}})


def cron_job(name: str = "c", **spec: Any) -> CronJob:
    template = job().spec.model_dump(by_alias=True, exclude_none=True)
    return CronJob.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"schedule": "*/5 * * * *", **spec, "jobTemplate": {"spec": template}},
        }
    )


def fields(causes: list[Any]) -> list[tuple[str, str]]:
    return [(c.field, c.reason) for c in causes]


def test_defaults_as_kubernetes() -> None:
    spec = job().spec
    assert (spec.parallelism, spec.completions, spec.backoff_limit) == (1, 1, 6)
    assert spec.completion_mode == "NonIndexed" and spec.suspend is False
    assert spec.pod_replacement_policy == "TerminatingOrFailed"
    # Only parallelism: a work queue, completions stay unset.
    queue = job(parallelism=3).spec
    assert (queue.parallelism, queue.completions) == (3, None)
    cj = cron_job().spec
    assert cj.concurrency_policy == "Allow" and cj.suspend is False
    assert (cj.successful_jobs_history_limit, cj.failed_jobs_history_limit) == (3, 1)


def test_a_valid_job_has_no_causes() -> None:
    assert validate_job(job(parallelism=3, completions=5, activeDeadlineSeconds=60)) == []


@pytest.mark.parametrize("policy", ["Always"])
def test_restart_policy_must_be_on_failure_or_never(policy: str) -> None:
    causes = validate_job(job(restartPolicy=policy))
    assert fields(causes) == [("spec.template.spec.restartPolicy", "FieldValueNotSupported")]
    assert causes[0].message == (
        'Unsupported value: "Always": supported values: "OnFailure", "Never"'
    )


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"parallelism": -1}, "spec.parallelism"),
        ({"completions": -1}, "spec.completions"),
        ({"backoffLimit": -1}, "spec.backoffLimit"),
        ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds"),
        ({"ttlSecondsAfterFinished": -5}, "spec.ttlSecondsAfterFinished"),
    ],
)
def test_counts_and_durations(spec: dict[str, Any], field: str) -> None:
    assert [f for f, _ in fields(validate_job(job(**spec)))] == [field]


def test_indexed_needs_completions() -> None:
    causes = validate_job(job(completionMode="Indexed", parallelism=2))
    assert fields(causes) == [("spec.completions", "FieldValueRequired")]


def test_manual_selector_must_be_given_and_match() -> None:
    assert fields(validate_job(job(manualSelector=True))) == [
        ("spec.selector", "FieldValueRequired")
    ]
    causes = validate_job(
        job(manualSelector=True, selector={"matchLabels": {"a": "b"}}, labels={"a": "c"})
    )
    assert fields(causes) == [("spec.template.metadata.labels", "FieldValueInvalid")]


def test_update_keeps_selector_completions_and_template() -> None:
    old = job(completions=2)
    assert validate_job_update(job(completions=2, parallelism=4), old) == []
    assert fields(validate_job_update(job(completions=3), old)) == [
        ("spec.completions", "FieldValueInvalid")
    ]
    changed = job(completions=2, restartPolicy="OnFailure")
    assert fields(validate_job_update(changed, old)) == [("spec.template", "FieldValueInvalid")]
    # While suspended, the template may change (queueing systems adjust it).
    suspended = job(completions=2, suspend=True)
    assert (
        validate_job_update(job(completions=2, suspend=True, restartPolicy="OnFailure"), suspended)
        == []
    )


def test_a_valid_cron_job_has_no_causes() -> None:
    assert validate_cron_job(cron_job(timeZone="Europe/Paris")) == []
    assert validate_cron_job(cron_job(schedule="@hourly")) == []


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"schedule": "61 * * * *"}, "spec.schedule"),
        ({"schedule": "* * *"}, "spec.schedule"),
        ({"schedule": "TZ=UTC * * * * *"}, "spec.schedule"),
        ({"timeZone": "Nowhere/Town"}, "spec.timeZone"),
        ({"startingDeadlineSeconds": -1}, "spec.startingDeadlineSeconds"),
        ({"successfulJobsHistoryLimit": -1}, "spec.successfulJobsHistoryLimit"),
        ({"failedJobsHistoryLimit": -1}, "spec.failedJobsHistoryLimit"),
    ],
)
def test_cron_job_fields(spec: dict[str, Any], field: str) -> None:
    assert [f for f, _ in fields(validate_cron_job(cron_job(**spec)))] == [field]


def test_cron_job_name_leaves_room_for_the_job_suffix() -> None:
    assert validate_cron_job(cron_job("x" * 52)) == []
    assert [f for f, _ in fields(validate_cron_job(cron_job("x" * 53)))] == ["metadata.name"]
