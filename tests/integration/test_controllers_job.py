"""The Job controller against a real API server, driven by the real kubectl and the
official Python client (BatchV1Api).

The test plays the node agent (see ``test_controllers_harness``): it reports
pods Succeeded or Failed through the status subresource, as an agent does
when a container exits 0 or 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.controllers.base import Context
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.job import JobController
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.clock import SystemClock, rfc3339
from corral.objects import Obj
from tests.conftest import LocalCluster
from tests.integration.test_controllers_harness import PODS, events_for, rt, running
from tests.support import eventually

JOBS = rt("Job", "batch/v1")

# A short back-off keeps the tests quick; the 10 s default is unit-tested.
fast_jobs = functools.partial(JobController, backoff_base=0.5)


def job_manifest(name: str, **spec: Any) -> Obj:
    restart = spec.pop("restartPolicy", "Never")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": restart,
                    "containers": [{"name": "work", "image": "busybox:1.36"}],
                }
            },
        },
    }


async def finish(client: Client, pod: Obj, exit_code: int) -> None:
    """The agent's part: the pod's only container exited with ``exit_code``."""
    now = rfc3339(SystemClock().now())
    state = {"terminated": {"exitCode": exit_code, "startedAt": now, "finishedAt": now}}
    await client.patch(
        PODS,
        pod["metadata"]["name"],
        {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "work",
                        "image": "busybox:1.36",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": state,
                    }
                ],
            }
        },
        pod["metadata"]["namespace"],
        subresource="status",
    )


@contextlib.asynccontextmanager
async def agent(
    client: Client, namespace: str, exit_code: Callable[[int], int | None]
) -> AsyncIterator[list[str]]:
    """Finish every new pod with ``exit_code(n)`` for the n-th pod seen (None: leave it running)."""
    seen: list[str] = []
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            listed = await client.list(PODS, namespace)
            for pod in sorted(listed["items"], key=lambda p: p["metadata"]["name"]):
                name = pod["metadata"]["name"]
                if name in seen or pod["metadata"].get("deletionTimestamp"):
                    continue
                seen.append(name)
                code = exit_code(len(seen) - 1)
                if code is not None:
                    with contextlib.suppress(ApiError):
                        await finish(client, pod, code)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    task = asyncio.create_task(loop())
    try:
        yield seen
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real kubectl, off the event loop so that the controllers keep running."""
    return await asyncio.to_thread(
        subprocess.run, ["kubectl", *args], env=env, capture_output=True, text=True, timeout=90
    )


def batch_api(cluster: LocalCluster) -> k8s.BatchV1Api:
    return k8s.BatchV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def condition(job: Obj, kind: str) -> Obj | None:
    for found in (job.get("status") or {}).get("conditions") or []:
        if found["type"] == kind and found["status"] == "True":
            return dict(found)
    return None


async def test_parallel_job_with_one_failure_completes_and_kubectl_wait_returns_0(
    client: Client,
    namespace: str,
    cluster: LocalCluster,
    kubectl_env: dict[str, str],
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "job.json"
    manifest.write_text(
        json.dumps(job_manifest("ci", parallelism=3, completions=3, backoffLimit=2))
    )
    async with (
        running(client, namespace, fast_jobs),
        agent(client, namespace, lambda n: 1 if n == 0 else 0) as seen,
    ):
        created = await kubectl(kubectl_env, "apply", "-n", namespace, "-f", str(manifest))
        assert created.returncode == 0, created.stderr
        assert "job.batch/ci created" in created.stdout
        waited = await kubectl(
            kubectl_env, "wait", "-n", namespace, "--for=condition=complete", "job/ci",
            "--timeout=60s",
        )  # fmt: skip
        assert waited.returncode == 0, waited.stderr
        assert "job.batch/ci condition met" in waited.stdout
        listed = await kubectl(kubectl_env, "get", "jobs", "-n", namespace)
        header, row = listed.stdout.splitlines()
        assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
        assert row.split()[:3] == ["ci", "Complete", "3/3"]

    job = await client.get(JOBS, "ci", namespace)
    status = job["status"]
    assert (status["succeeded"], status["failed"]) == (3, 1)
    assert "active" not in status and status["ready"] == 0
    complete = condition(job, "Complete")
    assert complete is not None and complete["reason"] == "CompletionsReached"
    assert complete["lastTransitionTime"] and status["completionTime"] and status["startTime"]
    assert condition(job, "Failed") is None
    assert len(seen) == 4  # three pods, and one to replace the failed one

    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    pods = (await client.list(PODS, namespace, label_selector="job-name=ci"))["items"]
    assert len(pods) == 4
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert labels["batch.kubernetes.io/job-name"] == "ci"
        assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == uid
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
        assert pod["metadata"]["ownerReferences"][0]["controller"] is True
    assert await events_for(client, namespace, "ci", "Completed")
    done = await client.list(JOBS, namespace, field_selector="status.successful=3")
    assert [j["metadata"]["name"] for j in done["items"]] == ["ci"]
    assert not (await client.list(JOBS, namespace, field_selector="status.successful=1"))["items"]

    # The Python client reads the same Job.
    api = batch_api(cluster)
    try:
        read = api.read_namespaced_job("ci", namespace)
        assert read.status.succeeded == 3 and read.status.failed == 1
        assert [c.type for c in read.status.conditions if c.status == "True"] == ["Complete"]
    finally:
        api.api_client.close()


async def test_python_client_job_fails_past_backoff_limit(
    client: Client, namespace: str, cluster: LocalCluster, kubectl_env: dict[str, str]
) -> None:
    api = batch_api(cluster)
    body = job_manifest("flaky", backoffLimit=1)
    try:
        async with running(client, namespace, fast_jobs), agent(client, namespace, lambda n: 1):
            await asyncio.to_thread(api.create_namespaced_job, namespace, body)
            waited = await kubectl(
                kubectl_env, "wait", "-n", namespace, "--for=condition=failed", "job/flaky",
                "--timeout=60s",
            )  # fmt: skip
            assert waited.returncode == 0, waited.stderr
        read = await asyncio.to_thread(api.read_namespaced_job, "flaky", namespace)
        failed = [c for c in read.status.conditions if c.type == "Failed"]
        assert failed[0].status == "True" and failed[0].reason == "BackoffLimitExceeded"
        assert read.status.failed == 2 and not read.status.succeeded
        assert read.status.completion_time is None
    finally:
        api.api_client.close()


async def test_restart_policy_always_is_refused_naming_the_field(
    client: Client,
    namespace: str,
    cluster: LocalCluster,
    kubectl_env: dict[str, str],
    tmp_path: Path,
) -> None:
    body = job_manifest("bad", restartPolicy="Always")
    with pytest.raises(ApiError) as raised:
        await client.create(JOBS, body, namespace)
    assert raised.value.code == 422
    assert "spec.template.spec.restartPolicy" in raised.value.message

    api = batch_api(cluster)
    try:
        with pytest.raises(k8s.ApiException) as refused:
            await asyncio.to_thread(api.create_namespaced_job, namespace, body)
        assert refused.value.status == 422
        details = json.loads(refused.value.body)["details"]
        assert details["causes"][0]["field"] == "spec.template.spec.restartPolicy"
        assert details["causes"][0]["reason"] == "FieldValueNotSupported"
    finally:
        api.api_client.close()

    manifest = tmp_path / "bad.json"
    manifest.write_text(json.dumps(body))
    result = await kubectl(kubectl_env, "create", "-n", namespace, "-f", str(manifest))
    assert result.returncode != 0
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in result.stderr


async def test_deadline_fails_the_job_and_stops_its_pods(client: Client, namespace: str) -> None:
    await client.create(
        JOBS, job_manifest("slow", parallelism=2, activeDeadlineSeconds=2), namespace
    )
    async with running(client, namespace, fast_jobs), agent(client, namespace, lambda n: None):

        async def failed() -> Obj | None:
            return condition(await client.get(JOBS, "slow", namespace), "Failed")

        found = await eventually(failed, timeout=15, message="a Failed condition")
        assert found["reason"] == "DeadlineExceeded"

        async def no_pods_left() -> bool:
            listed = await client.list(PODS, namespace, label_selector="job-name=slow")
            return not listed["items"]

        await eventually(no_pods_left, timeout=10, message="the running pods deleted")


async def test_ttl_deletes_a_finished_job_and_deleting_a_job_deletes_its_pods(
    client: Client, namespace: str, kubectl_env: dict[str, str]
) -> None:
    await client.create(JOBS, job_manifest("brief", ttlSecondsAfterFinished=1), namespace)
    await client.create(JOBS, job_manifest("kept", completions=2), namespace)

    def garbage(ctx: Context) -> GarbageCollector:
        return GarbageCollector(ctx)

    async with (
        running(client, namespace, fast_jobs, garbage),
        agent(client, namespace, lambda n: 0),
    ):

        async def brief_gone() -> bool:
            try:
                await client.get(JOBS, "brief", namespace)
            except ApiError as error:
                return error.code == 404
            return False

        await eventually(brief_gone, timeout=20, message="the Job deleted after its TTL")

        async def kept_done() -> bool:
            return condition(await client.get(JOBS, "kept", namespace), "Complete") is not None

        await eventually(kept_done, timeout=20, message="kept completes")
        deleted = await kubectl(kubectl_env, "delete", "-n", namespace, "job/kept")
        assert deleted.returncode == 0, deleted.stderr

        async def pods_gone() -> bool:
            listed = await client.list(PODS, namespace)
            return not listed["items"]

        await eventually(pods_gone, timeout=20, message="the Jobs' pods collected")


async def test_indexed_job_runs_each_index_once(client: Client, namespace: str) -> None:
    body = job_manifest("shards", completions=3, parallelism=2, completionMode="Indexed")
    await client.create(JOBS, body, namespace)
    async with running(client, namespace, fast_jobs), agent(client, namespace, lambda n: 0):

        async def complete() -> Obj | None:
            found = await client.get(JOBS, "shards", namespace)
            return found if condition(found, "Complete") else None

        job = await eventually(complete, timeout=20, message="the indexed Job complete")
    assert job["status"]["completedIndexes"] == "0-2"
    assert job["status"]["succeeded"] == 3
    pods = (await client.list(PODS, namespace, label_selector="job-name=shards"))["items"]
    by_index = {
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods
    }
    assert sorted(by_index) == ["0", "1", "2"] and len(pods) == 3
    for index, pod in by_index.items():
        assert pod["metadata"]["name"].startswith(f"shards-{index}-")
        assert pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert pod["spec"]["hostname"] == f"shards-{index}"
        env = pod["spec"]["containers"][0]["env"]
        assert {"name": "JOB_COMPLETION_INDEX", "value": index} in env


async def test_kubectl_apply_twice_reports_unchanged(
    namespace: str, kubectl_env: dict[str, str], tmp_path: Path
) -> None:
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": job_manifest("x")["spec"]}},
    }
    manifest = tmp_path / "batch.json"
    items = [job_manifest("once", backoffLimit=1), cron]
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    ns = ("-n", namespace)
    first = await kubectl(kubectl_env, "apply", *ns, "-f", str(manifest))
    assert first.returncode == 0, first.stderr
    second = await kubectl(kubectl_env, "apply", *ns, "-f", str(manifest))
    assert second.returncode == 0, second.stderr
    assert sorted(second.stdout.splitlines()) == [
        "cronjob.batch/nightly unchanged",
        "job.batch/once unchanged",
    ]


async def test_a_suspended_job_starts_nothing_until_resumed(
    client: Client, namespace: str, cluster: LocalCluster
) -> None:
    api = batch_api(cluster)
    try:
        body = job_manifest("held", completions=2, parallelism=2, suspend=True)
        await asyncio.to_thread(api.create_namespaced_job, namespace, body)
        async with running(client, namespace, fast_jobs), agent(client, namespace, lambda n: 0):

            async def suspended() -> Obj | None:
                return condition(await client.get(JOBS, "held", namespace), "Suspended")

            found = await eventually(suspended, message="a Suspended condition")
            assert found["reason"] == "JobSuspended"
            await asyncio.sleep(0.5)
            assert not (await client.list(PODS, namespace))["items"]
            assert "startTime" not in (await client.get(JOBS, "held", namespace))["status"]

            await asyncio.to_thread(
                api.patch_namespaced_job, "held", namespace, {"spec": {"suspend": False}}
            )

            async def complete() -> Obj | None:
                found = await client.get(JOBS, "held", namespace)
                return found if condition(found, "Complete") else None

            job = await eventually(complete, timeout=20, message="the resumed Job complete")
        kinds = {c["type"]: c for c in job["status"]["conditions"]}
        assert kinds["Suspended"]["status"] == "False"
        assert kinds["Suspended"]["reason"] == "JobResumed"
        assert job["status"]["succeeded"] == 2 and job["status"]["startTime"]
    finally:
        api.api_client.close()
