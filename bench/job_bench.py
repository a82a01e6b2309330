"""Job benchmark: Jobs started and completed per second, end to end through the API.

Each run starts its own etcd, API server and controller manager (real
processes, the manager with only the job controller) in a scratch
directory and plays the node agents itself: every pod a Job creates is
reported Succeeded through the status subresource as soon as it is seen,
as an agent does when the container exits 0. Then ``--jobs`` Jobs (one
pod each) are created, 16 at a time, and the bench measures:

- **started**: the time from the first create until every Job has its pod
  (Jobs started per second);
- **completed**: the time until every Job has its Complete condition.

CPU seconds are read from /proc for etcd, the API server, the controller
manager and the bench itself.

    python bench/job_bench.py              # 200 Jobs
    python bench/job_bench.py --jobs 20    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson

from corral.objects import Obj

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemonset_bench import _watch
from scheduler_bench import Cluster, cpu_seconds, create_all, machine

from corralctl.processes import ManagedProcess

NAMESPACE = "bench"
DEADLINE = 600.0


def job_body(name: str) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox:1.36"}],
                }
            }
        },
    }


class ControlPlane(Cluster):
    """The scheduler bench's cluster, with a controller manager running the job controller."""

    manager: ManagedProcess | None = None

    def start_manager(self) -> None:
        self.manager = self.start_component(
            "controller-manager", ["controlplane", "controller-manager"], "--controllers", "job"
        )

    def __exit__(self, *exc: object) -> None:
        if self.manager is not None:
            self.manager.stop()
        super().__exit__(*exc)

    def cpu(self) -> dict[str, float]:
        out = {
            **super().cpu(),
            "controller-manager": cpu_seconds(self.manager.pid if self.manager else None),
        }
        out.pop("scheduler", None)
        return out


async def play_agents(session: aiohttp.ClientSession, url: str, started: dict[str, float]) -> None:
    """Every new pod succeeds at once; ``started`` records when each Job's pod was seen."""
    pods = f"{url}/api/v1/namespaces/{NAMESPACE}/pods"
    pending: set[asyncio.Task[None]] = set()
    headers = {"Content-Type": "application/merge-patch+json"}

    async def succeed(name: str) -> None:
        body = orjson.dumps({"status": {"phase": "Succeeded"}})
        async with session.patch(f"{pods}/{name}/status", data=body, headers=headers):
            return

    async for event in _watch(session, pods):
        pod = event.get("object") or {}
        if event.get("type") != "ADDED":
            continue
        job = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name", "")
        started.setdefault(job, time.perf_counter())
        task = asyncio.create_task(succeed(pod["metadata"]["name"]))
        pending.add(task)
        task.add_done_callback(pending.discard)


async def complete_count(session: aiohttp.ClientSession, jobs_url: str) -> int:
    async with session.get(jobs_url) as response:
        items = orjson.loads(await response.read()).get("items") or []
    return sum(
        1
        for job in items
        if any(
            c.get("type") == "Complete" and c.get("status") == "True"
            for c in (job.get("status") or {}).get("conditions") or []
        )
    )


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < DEADLINE:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {DEADLINE} s")


async def drive(cluster: ControlPlane, jobs: int) -> Obj:
    url = cluster.url
    jobs_url = f"{url}/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    started: dict[str, float] = {}
    async with cluster.session(64) as session:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        await create_all(session, f"{url}/api/v1/namespaces", [namespace])
        agents = asyncio.create_task(play_agents(session, url, started))
        try:
            # Warm up: the controller manager is syncing once one Job completes.
            await create_all(session, jobs_url, [job_body("warmup")])
            await wait_for(lambda: _at_least(session, jobs_url, 1), "the warm-up Job")
            started.clear()
            before = cluster.cpu()
            begin = time.perf_counter()
            names = [f"job-{i:05d}" for i in range(jobs)]
            await create_all(session, jobs_url, [job_body(n) for n in names])

            async def all_started() -> bool:
                return all(n in started for n in names)

            await wait_for(all_started, "every Job's pod")
            started_seconds = max(started[n] for n in names) - begin
            await wait_for(lambda: _at_least(session, jobs_url, jobs + 1), "every Job complete")
            completed_seconds = time.perf_counter() - begin
            after = cluster.cpu()
        finally:
            agents.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agents
    return {
        "jobs": jobs,
        "started_seconds": round(started_seconds, 2),
        "jobs_started_per_second": round(jobs / started_seconds, 1),
        "completed_seconds": round(completed_seconds, 2),
        "jobs_completed_per_second": round(jobs / completed_seconds, 1),
        "cpu_seconds": {k: round(after[k] - before[k], 2) for k in after},
    }


async def _at_least(session: aiohttp.ClientSession, jobs_url: str, count: int) -> bool:
    return await complete_count(session, jobs_url) >= count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="corral-job-bench-") as scratch,
        ControlPlane(Path(scratch)) as cluster,
    ):
        cluster.start_manager()
        row = asyncio.run(drive(cluster, args.jobs))
    if args.json:
        print(json.dumps({"machine": machine(), "result": row}, indent=2))
    else:
        cpu = ", ".join(f"{k} {v}" for k, v in row["cpu_seconds"].items())
        print(
            f"{row['jobs']} Jobs: started in {row['started_seconds']} s "
            f"({row['jobs_started_per_second']}/s), complete in {row['completed_seconds']} s "
            f"({row['jobs_completed_per_second']}/s)  (CPU s: {cpu})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
