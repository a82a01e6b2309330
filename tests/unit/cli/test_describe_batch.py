"""``corral describe job`` and ``cronjob``: kubectl 1.32's Job and CronJob describer layouts."""

from __future__ import annotations

from corral.objects import Obj
from tests.unit.cli.test_describe import FakeClient, ago, run_describe, utc

__all__ = ["utc"]  # The fixture pins TZ, so the layouts' times read the same everywhere.

TEMPLATE: Obj = {
    "metadata": {"labels": {"job-name": "ci"}},
    "spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox:1.36"}]},
}

JOB: Obj = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "ci",
        "namespace": "default",
        "uid": "uid-job",
        "labels": {"team": "ci"},
        "creationTimestamp": ago(minutes=5),
        "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "u",
             "controller": True}
        ],
    },
    "spec": {
        "parallelism": 3,
        "completions": 3,
        "completionMode": "Indexed",
        "suspend": False,
        "backoffLimit": 2,
        "activeDeadlineSeconds": 600,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-job"}},
        "template": TEMPLATE,
    },
    "status": {
        "startTime": ago(minutes=4),
        "completionTime": ago(minutes=2),
        "succeeded": 3,
        "failed": 1,
        "ready": 0,
        "completedIndexes": "0-2",
    },
}  # fmt: skip

CRON_JOB: Obj = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {"name": "nightly", "namespace": "default", "uid": "u"},
    "spec": {
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Paris",
        "concurrencyPolicy": "Forbid",
        "suspend": False,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {"spec": {"parallelism": 1, "completions": 1, "template": TEMPLATE}},
    },
    "status": {"lastScheduleTime": ago(hours=1), "active": [{"name": "nightly-1"}]},
}

POD_TEMPLATE = (
    "  Labels:  job-name=ci\n"
    "  Containers:\n"
    "   work:\n"
    "    Image:         busybox:1.36\n"
    "    Port:          <none>\n"
    "    Host Port:     <none>\n"
    "    Environment:   <none>\n"
    "    Mounts:        <none>\n"
    "  Volumes:         <none>\n"
    "  Node-Selectors:  <none>\n"
    "  Tolerations:     <none>\n"
)


def test_job() -> None:
    code, out, err = run_describe(FakeClient(JOB), "job", "ci")
    assert (code, err) == (0, "")
    lines = out.splitlines(keepends=True)
    head = "".join(lines[: lines.index("Pod Template:\n")])
    assert [line.split(":")[0] for line in head.splitlines()] == [
        "Name", "Namespace", "Selector", "Labels", "Annotations", "Controlled By",
        "Parallelism", "Completions", "Completion Mode", "Suspend", "Backoff Limit",
        "Start Time", "Completed At", "Duration", "Active Deadline Seconds",
        "Pods Statuses", "Completed Indexes",
    ]  # fmt: skip
    assert "Selector:                 batch.kubernetes.io/controller-uid=uid-job\n" in head
    assert "Controlled By:            CronJob/nightly\n" in head
    assert "Duration:                 2m\n" in head
    assert "Active Deadline Seconds:  600s\n" in head
    assert "Pods Statuses:            0 Active (0 Ready) / 3 Succeeded / 1 Failed\n" in head
    assert "Completed Indexes:        0-2\n" in head
    assert "Suspend:                  false\n" in head
    assert POD_TEMPLATE in out


def test_cron_job() -> None:
    code, out, err = run_describe(FakeClient(CRON_JOB), "cronjob", "nightly")
    assert (code, err) == (0, "")
    for line in (
        "Schedule:                      0 2 * * *\n",
        "Time Zone:                     Europe/Paris\n",
        "Concurrency Policy:            Forbid\n",
        "Suspend:                       False\n",
        "Successful Job History Limit:  3\n",
        "Failed Job History Limit:      1\n",
        "Starting Deadline Seconds:     <unset>\n",
        "Selector:                      <unset>\n",
        "Parallelism:                   1\n",
        "Completions:                   1\n",
    ):
        assert line in out, (line, out)
    # After the pod template the columns align afresh, as kubectl's tabwriter does.
    assert out.endswith("Active Jobs:         nightly-1\nEvents:              <none>\n")
    assert "Last Schedule Time:" in out and "Pod Template:\n" in out
