"""Pod security on Jobs and CronJobs: their pod templates are held to the namespace's level."""

from __future__ import annotations

from controlplane.admission.podsecurity import admit
from corral.objects import Obj

HOST_PID: Obj = {"hostPID": True, "containers": [{"name": "c", "image": "busybox"}]}


def test_a_job_template_is_checked() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "ci", "namespace": "prod"},
        "spec": {"template": {"spec": HOST_PID}},
    }
    error = admit("Job", job, {})
    assert error is not None
    assert error.message == (
        'jobs.batch "ci" is forbidden: violates PodSecurity "baseline:latest": '
        "host namespaces (hostPID=true)"
    )


def test_a_cron_job_template_is_checked_through_its_job_template() -> None:
    cron_job = {
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "prod"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": HOST_PID}}}},
    }
    error = admit("CronJob", cron_job, {})
    assert error is not None
    assert error.message.startswith('cronjobs.batch "nightly" is forbidden')
    fine = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}
    assert admit("CronJob", {"metadata": {"name": "n"}, **fine}, {}) is None
    assert admit("CronJob", {"metadata": {"name": "n"}, "spec": {}}, {}) is None
