"""Job and CronJob end to end with real processes: the controller manager under its own
identity (RBAC included), the API server, kubectl and the official Python client.

One real minute: the CronJob's first scheduled time. The test plays the
node agent, reporting the Job's pod Succeeded as an agent does when its
container exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from corral.client.rest import Client
from corral.objects import Obj
from tests.conftest import LocalCluster
from tests.integration.test_controllers_cronjob import cron_manifest
from tests.integration.test_controllers_harness import PODS, rt
from tests.integration.test_controllers_job import finish
from tests.support import eventually

pytestmark = pytest.mark.slow

JOBS = rt("Job", "batch/v1")
CRONJOBS = rt("CronJob", "batch/v1")


@contextlib.asynccontextmanager
async def controller_manager(cluster: LocalCluster) -> AsyncIterator[None]:
    """``corral controller-manager`` running the Job, CronJob and garbage collector controllers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controlplane.controllers.main",
        "--kubeconfig",
        str(cluster.component_kubeconfig("controller-manager")),
        "--controllers",
        "job,cronjob,garbagecollector",
        "--leader-elect",
        "false",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
        # Still running: nothing the test did made it fail.
        assert process.returncode is None
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.communicate(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise


async def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, ["kubectl", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_a_cron_job_every_minute_runs_a_job_to_completion(
    client: Client,
    namespace: str,
    cluster: LocalCluster,
    kubectl_env: dict[str, str],
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "cron.json"
    manifest.write_text(json.dumps(cron_manifest("minutely", concurrencyPolicy="Forbid")))
    created = await kubectl(kubectl_env, "apply", "-n", namespace, "-f", str(manifest))
    assert created.returncode == 0, created.stderr
    async with controller_manager(cluster):

        async def a_job() -> Obj | None:
            items: list[Obj] = (await client.list(JOBS, namespace))["items"]
            return items[0] if items else None

        job = await eventually(a_job, timeout=75, interval=0.5, message="the minute's Job")
        name = job["metadata"]["name"]

        async def its_pod() -> Obj | None:
            listed = await client.list(PODS, namespace, label_selector=f"job-name={name}")
            return listed["items"][0] if listed["items"] else None

        pod = await eventually(its_pod, timeout=15, message="the Job's pod")
        await finish(client, pod, 0)
        waited = await kubectl(
            kubectl_env, "wait", "-n", namespace, "--for=condition=complete", f"job/{name}",
            "--timeout=60s",
        )  # fmt: skip
        assert waited.returncode == 0, waited.stderr

        api = k8s.BatchV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
        try:

            async def recorded() -> k8s.V1CronJob | None:
                read = await asyncio.to_thread(api.read_namespaced_cron_job, "minutely", namespace)
                return read if read.status.last_successful_time is not None else None

            cron_job = await eventually(recorded, timeout=15, message="lastSuccessfulTime")
            assert not cron_job.status.active
            assert cron_job.status.last_schedule_time is not None
            read_job = await asyncio.to_thread(api.read_namespaced_job, name, namespace)
            assert read_job.status.succeeded == 1
        finally:
            api.api_client.close()
        # Deleting the CronJob takes its Jobs and their pods with it.
        deleted = await kubectl(kubectl_env, "delete", "-n", namespace, "cronjob/minutely")
        assert deleted.returncode == 0, deleted.stderr

        async def all_gone() -> bool:
            jobs = (await client.list(JOBS, namespace))["items"]
            pods = (await client.list(PODS, namespace))["items"]
            return not jobs and not pods

        await eventually(all_gone, timeout=30, interval=0.5, message="Jobs and pods collected")
