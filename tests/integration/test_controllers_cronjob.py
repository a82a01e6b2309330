"""The CronJob controller against a real API server, on a clock the test moves.

A minute a step would make these tests slow; the controller runs on a
ManualClock and the test advances it past each scheduled time. The API
server, kubectl and the official Python client (BatchV1Api) are real.
The test plays the Job controller where a Job must finish.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.controllers.cronjob import SCHEDULED_TIMESTAMP_ANNOTATION, CronJobController
from corral.client.rest import Client
from corral.clock import ManualClock, rfc3339
from corral.objects import Obj
from tests.conftest import LocalCluster
from tests.integration.test_controllers_harness import events_for, rt, running
from tests.support import eventually

T = TypeVar("T")

JOBS = rt("Job", "batch/v1")
CRONJOBS = rt("CronJob", "batch/v1")


def cron_manifest(name: str, schedule: str = "* * * * *", **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            **spec,
            "jobTemplate": {
                "metadata": {"labels": {"run": name}},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "containers": [{"name": "tick", "image": "busybox:1.36"}],
                        }
                    }
                },
            },
        },
    }


async def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def jobs_of(client: Client, namespace: str) -> list[Obj]:
    items: list[Obj] = (await client.list(JOBS, namespace))["items"]
    return sorted(items, key=lambda j: j["metadata"]["name"])


async def complete(client: Client, job: Obj, at: datetime) -> None:
    """The Job controller's part: the Job has finished."""
    when = rfc3339(at)
    await client.patch(
        JOBS,
        job["metadata"]["name"],
        {
            "status": {
                "startTime": when,
                "completionTime": when,
                "succeeded": 1,
                "conditions": [
                    {
                        "type": "Complete",
                        "status": "True",
                        "lastTransitionTime": when,
                        "reason": "CompletionsReached",
                    }
                ],
            }
        },
        job["metadata"]["namespace"],
        subresource="status",
    )


def next_minute(clock: ManualClock) -> float:
    """Seconds to move the clock to one second past the next whole minute."""
    now = clock.now()
    upcoming = now.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1)
    return (upcoming - now).total_seconds()


async def settle() -> None:
    """Real time for the controller to act on a step of the clock, or to show it does not."""
    await asyncio.sleep(1.0)


async def ticking(clock: ManualClock, check: Callable[[], Awaitable[T | None]], message: str) -> T:
    """``eventually``, with the clock moving 0.1 s a poll (5 s at most), so that the
    controller's retries after a conflict, which wait on that clock, come round."""

    async def step() -> T | None:
        clock.advance(0.1)
        return await check()

    return await eventually(step, timeout=10, interval=0.2, message=message)


async def test_every_minute_creates_a_job_and_forbid_waits_for_the_running_one(
    client: Client,
    namespace: str,
    cluster: LocalCluster,
    kubectl_env: dict[str, str],
    tmp_path: Path,
) -> None:
    clock = ManualClock(datetime.now(UTC))
    manifest = tmp_path / "cron.json"
    manifest.write_text(json.dumps(cron_manifest("tick", concurrencyPolicy="Forbid")))
    created = await kubectl(kubectl_env, "apply", "-n", namespace, "-f", str(manifest))
    assert created.returncode == 0, created.stderr
    async with running(client, namespace, CronJobController, clock=clock):
        await settle()
        assert await jobs_of(client, namespace) == []  # nothing is due before the minute

        clock.advance(next_minute(clock))
        first = await eventually(lambda: jobs_of(client, namespace), message="the first Job")
        assert len(first) == 1
        job = first[0]
        scheduled = clock.now().replace(second=0)
        assert job["metadata"]["name"] == f"tick-{int(scheduled.timestamp() // 60)}"
        assert job["metadata"]["labels"]["run"] == "tick"
        assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == rfc3339(scheduled)
        owner = job["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("CronJob", "tick", True)

        async def status_shows_active() -> Obj | None:
            found = (await client.get(CRONJOBS, "tick", namespace)).get("status") or {}
            return found if found.get("active") else None

        status = await ticking(clock, status_shows_active, message="status.active")
        assert [a["name"] for a in status["active"]] == [job["metadata"]["name"]]
        assert status["lastScheduleTime"] == rfc3339(scheduled)

        # Forbid: the next minute comes while the first Job still runs.
        clock.advance(60)
        await settle()
        assert [j["metadata"]["name"] for j in await jobs_of(client, namespace)] == [
            job["metadata"]["name"]
        ]

        # Once it has finished, the next scheduled time starts a new one.
        await complete(client, job, clock.now())
        clock.advance(60)

        async def two_jobs() -> list[Obj] | None:
            found = await jobs_of(client, namespace)
            return found if len(found) == 2 else None

        await ticking(clock, two_jobs, message="the second Job")

        async def succeeded_recorded() -> Obj | None:
            found = (await client.get(CRONJOBS, "tick", namespace)).get("status") or {}
            return found if found.get("lastSuccessfulTime") else None

        status = await ticking(clock, succeeded_recorded, message="lastSuccessfulTime")
        assert len(status["active"]) == 1
        assert status["active"][0]["name"] != job["metadata"]["name"]
    assert await events_for(client, namespace, "tick", "SuccessfulCreate")
    listed = await kubectl(kubectl_env, "get", "cronjobs", "-n", namespace)
    header, row = listed.stdout.splitlines()
    assert header.split()[:6] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST"]
    assert row.split()[:2] == ["tick", "*"] and row.split()[6:8] == ["<none>", "False"]

    api = k8s.BatchV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    try:
        read = await asyncio.to_thread(api.read_namespaced_cron_job, "tick", namespace)
        assert read.spec.concurrency_policy == "Forbid"
        assert read.status.last_schedule_time is not None
        assert read.status.last_successful_time is not None
        listed = await asyncio.to_thread(api.list_namespaced_job, namespace)
        assert len(listed.items) == 2
    finally:
        api.api_client.close()


async def test_replace_suspend_and_history_limit(
    client: Client, namespace: str, cluster: LocalCluster
) -> None:
    clock = ManualClock(datetime.now(UTC))
    api = k8s.BatchV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    body = cron_manifest("swap", concurrencyPolicy="Replace", successfulJobsHistoryLimit=1)
    try:
        await asyncio.to_thread(api.create_namespaced_cron_job, namespace, body)
        async with running(client, namespace, CronJobController, clock=clock):
            clock.advance(next_minute(clock))
            first = (await eventually(lambda: jobs_of(client, namespace), message="a Job"))[0]

            # Replace: the running Job makes way for the next one.
            clock.advance(60)

            async def replaced() -> list[Obj] | None:
                found = await jobs_of(client, namespace)
                names = [j["metadata"]["name"] for j in found]
                return found if len(found) == 1 and names != [first["metadata"]["name"]] else None

            second = (await ticking(clock, replaced, message="the Job replaced"))[0]

            # Suspended: no new Job, however many minutes pass.
            await asyncio.to_thread(
                api.patch_namespaced_cron_job, "swap", namespace, {"spec": {"suspend": True}}
            )
            await complete(client, second, clock.now())
            await settle()
            clock.advance(180)
            await settle()
            assert [j["metadata"]["name"] for j in await jobs_of(client, namespace)] == [
                second["metadata"]["name"]
            ]

            # Resumed: the missed time runs; history keeps one successful Job.
            await asyncio.to_thread(
                api.patch_namespaced_cron_job, "swap", namespace, {"spec": {"suspend": False}}
            )

            async def third() -> list[Obj] | None:
                found = await jobs_of(client, namespace)
                new = [j for j in found if j["metadata"]["name"] != second["metadata"]["name"]]
                return new or None

            found = await ticking(clock, third, message="a third Job")
            assert len(found) == 1
            await complete(client, found[0], clock.now())
            clock.advance(60)

            async def kept_one_finished() -> bool:
                found = await jobs_of(client, namespace)
                finished = [j for j in found if (j.get("status") or {}).get("conditions")]
                return len(finished) == 1 and len(found) == 2

            await ticking(clock, kept_one_finished, message="one successful Job kept")
    finally:
        api.api_client.close()


async def test_starting_deadline_skips_a_start_too_late(client: Client, namespace: str) -> None:
    clock = ManualClock(datetime.now(UTC))
    await client.create(
        CRONJOBS, cron_manifest("late", "0 * * * *", startingDeadlineSeconds=30), namespace
    )
    async with running(client, namespace, CronJobController, clock=clock):
        now = clock.now()
        top = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        # The controller wakes at the hour; it is a minute late by then.
        clock.advance((top - now).total_seconds() + 60)
        await settle()
        assert await jobs_of(client, namespace) == []


async def test_too_many_missed_times_are_reported_and_the_latest_runs(
    client: Client, namespace: str
) -> None:
    clock = ManualClock(datetime.now(UTC))
    await client.create(CRONJOBS, cron_manifest("behind"), namespace)
    async with running(client, namespace, CronJobController, clock=clock):
        # The controller was away for three hours: 180 start times were missed.
        clock.advance(3 * 3600 + next_minute(clock))

        async def warned() -> list[Obj] | None:
            return await events_for(client, namespace, "behind", "TooManyMissedTimes") or None

        events = await ticking(clock, warned, message="a TooManyMissedTimes event")
        assert "too many missed start times" in events[0]["message"]
        jobs = await eventually(lambda: jobs_of(client, namespace), message="the latest Job")
        latest = clock.now().replace(second=0, microsecond=0)
        # One Job, for the most recent time, not one per missed minute.
        assert [j["metadata"]["name"] for j in jobs] == [f"behind-{int(latest.timestamp() // 60)}"]


async def test_time_zone_decides_when_the_hour_strikes(client: Client, namespace: str) -> None:
    clock = ManualClock(datetime.now(UTC))
    # Kolkata is UTC+05:30: its "0 * * * *" runs at half past each UTC hour.
    manifest = cron_manifest("kolkata", "0 * * * *", timeZone="Asia/Kolkata")
    await client.create(CRONJOBS, manifest, namespace)
    async with running(client, namespace, CronJobController, clock=clock):
        now = clock.now()
        half_past = now.replace(minute=30, second=0, microsecond=0)
        if half_past <= now:
            half_past += timedelta(hours=1)
        clock.advance((half_past - now).total_seconds() + 1)
        jobs = await eventually(lambda: jobs_of(client, namespace), message="the Job")
    annotation = jobs[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION]
    local = half_past.astimezone(ZoneInfo("Asia/Kolkata"))
    assert annotation == local.isoformat() and annotation.endswith("+05:30")
    assert local.minute == 0
