"""DaemonSet benchmark: a rollout across 100 hollow nodes, end to end through the API.

Each run starts its own etcd, API server, scheduler and controller manager
(real processes, as ``corral up`` runs them, the manager with only the
daemonset and garbagecollector controllers) in a scratch directory,
registers hollow nodes (plain Node objects, Ready) and plays their agents
itself: a pod bound to a node is reported Running and Ready through the
status subresource, a pod being deleted is confirmed gone. Then:

- **create**: a DaemonSet is created; the time until its status shows a
  pod updated and available on every node (what ``kubectl rollout status``
  waits for);
- **update**: its image changes; the time until the rollout is done again,
  once for each update strategy in ``STRATEGIES``.

CPU seconds are read from /proc for etcd, the API server, the scheduler,
the controller manager and the bench itself.

    python bench/daemonset_bench.py              # 100 nodes
    python bench/daemonset_bench.py --nodes 20   # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson

from corral.objects import Obj

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scheduler_bench import JSON, Cluster, cpu_seconds, create_all, machine, node_body

from corralctl.processes import ManagedProcess

NAMESPACE = "bench"
STRATEGIES: tuple[tuple[str, Obj], ...] = (
    ("maxUnavailable=1", {"maxUnavailable": 1, "maxSurge": 0}),
    ("maxUnavailable=10%", {"maxUnavailable": "10%", "maxSurge": 0}),
    ("maxSurge=10%", {"maxUnavailable": 0, "maxSurge": "10%"}),
)
DEADLINE = 600.0


def daemon_set(image: str, name: str = "daemon") -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


class ControlPlane(Cluster):
    """The scheduler bench's cluster, with a controller manager beside the scheduler."""

    manager: ManagedProcess | None = None

    def start_manager(self) -> None:
        self.manager = self.start_component(
            "controller-manager",
            ["controlplane", "controller-manager"],
            "--controllers",
            "daemonset,garbagecollector",
        )

    def __exit__(self, *exc: object) -> None:
        if self.manager is not None:
            self.manager.stop()
        super().__exit__(*exc)

    def cpu(self) -> dict[str, float]:
        return {
            **super().cpu(),
            "controller-manager": cpu_seconds(self.manager.pid if self.manager else None),
        }


# --- the hollow agents --------------------------------------------------------------------------


async def _watch(session: aiohttp.ClientSession, url: str) -> AsyncIterator[Obj]:
    params = {"watch": "true", "allowWatchBookmarks": "false"}
    timeout = aiohttp.ClientTimeout(total=None)
    async with session.get(url, params=params, timeout=timeout) as response:
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


async def play_agents(session: aiohttp.ClientSession, url: str) -> None:
    """Every node's agent at once: bound pods become Ready, deleted pods go."""
    pods = f"{url}/api/v1/namespaces/{NAMESPACE}/pods"
    seen: set[str] = set()
    pending: set[asyncio.Task[None]] = set()

    async def act(pod: Obj) -> None:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            async with session.delete(f"{pods}/{name}", params={"gracePeriodSeconds": "0"}):
                return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "phase": "Running",
            "podIP": "10.250.0.1",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        }
        headers = {"Content-Type": "application/merge-patch+json"}
        body = orjson.dumps({"status": status})
        async with session.patch(f"{pods}/{name}/status", data=body, headers=headers):
            return

    async for event in _watch(session, pods):
        pod = event.get("object") or {}
        if event.get("type") not in ("ADDED", "MODIFIED"):
            continue
        uid = pod["metadata"]["uid"]
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        bound = bool((pod.get("spec") or {}).get("nodeName"))
        key = f"{uid}/{'delete' if terminating else 'ready'}"
        if key in seen or not (terminating or bound):
            continue
        seen.add(key)
        task = asyncio.create_task(act(pod))
        pending.add(task)
        task.add_done_callback(pending.discard)


# --- measuring -----------------------------------------------------------------------------------


async def rolled_out(session: aiohttp.ClientSession, url: str, nodes: int) -> float:
    """Seconds until the set's status says every node runs an updated, available pod."""
    start = time.perf_counter()
    ds_url = f"{url}/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/daemon"
    while time.perf_counter() - start < DEADLINE:
        async with session.get(ds_url) as response:
            ds = orjson.loads(await response.read())
        status = ds.get("status") or {}
        if (
            status.get("observedGeneration") == ds["metadata"].get("generation")
            and status.get("desiredNumberScheduled") == nodes
            and status.get("updatedNumberScheduled") == nodes
            and status.get("numberAvailable") == nodes
        ):
            return time.perf_counter() - start
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no rollout within {DEADLINE} s")


async def manager_ready(session: aiohttp.ClientSession, ds_url: str) -> None:
    """Wait for the controller manager to be syncing: a set for no node gets its status."""
    warmup = daemon_set("img:warmup", name="warmup")
    warmup["spec"]["template"]["spec"]["nodeSelector"] = {"no-such": "node"}
    async with session.post(ds_url, data=orjson.dumps(warmup), headers=JSON):
        pass
    start = time.perf_counter()
    while time.perf_counter() - start < DEADLINE:
        async with session.get(f"{ds_url}/warmup") as response:
            status = orjson.loads(await response.read()).get("status") or {}
        if status.get("observedGeneration"):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the controller manager never synced")


async def drive(cluster: ControlPlane, nodes: int) -> list[Obj]:
    url = cluster.url
    rows: list[Obj] = []
    async with cluster.session(64) as session:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        await create_all(session, f"{url}/api/v1/namespaces", [namespace])
        await create_all(session, f"{url}/api/v1/nodes", [node_body(i) for i in range(nodes)])
        agents = asyncio.create_task(play_agents(session, url))
        try:
            ds_url = f"{url}/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets"
            await manager_ready(session, ds_url)
            before = cluster.cpu()
            async with session.post(ds_url, data=orjson.dumps(daemon_set("img:0")), headers=JSON):
                pass
            seconds = await rolled_out(session, url, nodes)
            rows.append(_row("create", nodes, seconds, before, cluster.cpu()))
            for i, (label, rolling) in enumerate(STRATEGIES, start=1):
                patch = daemon_set(f"img:{i}")
                patch["spec"]["updateStrategy"] = {
                    "type": "RollingUpdate",
                    "rollingUpdate": rolling,
                }
                before = cluster.cpu()
                headers = {"Content-Type": "application/merge-patch+json"}
                async with session.patch(
                    f"{ds_url}/daemon", data=orjson.dumps(patch), headers=headers
                ):
                    pass
                seconds = await rolled_out(session, url, nodes)
                rows.append(_row(f"update {label}", nodes, seconds, before, cluster.cpu()))
        finally:
            agents.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agents
    return rows


def _row(step: str, nodes: int, seconds: float, before: dict[str, float],
         after: dict[str, float]) -> Obj:  # fmt: skip
    return {
        "step": step,
        "nodes": nodes,
        "seconds": round(seconds, 2),
        "pods_per_second": round(nodes / seconds, 1),
        "cpu_seconds": {k: round(after[k] - before[k], 2) for k in after},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="corral-ds-bench-") as scratch,
        ControlPlane(Path(scratch)) as cluster,
    ):
        cluster.start_scheduler()
        cluster.start_manager()
        rows = asyncio.run(drive(cluster, args.nodes))
    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    else:
        for row in rows:
            cpu = ", ".join(f"{k} {v}" for k, v in row["cpu_seconds"].items())
            print(
                f"{row['step']:<24} {row['nodes']} nodes  {row['seconds']:7.2f} s  "
                f"{row['pods_per_second']:6.1f} pods/s  (CPU s: {cpu})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
