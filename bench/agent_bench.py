"""Node agent benchmark: pod startup latency against the `docker run` floor, and agent memory.

Starts etcd, the API server, a dockerd of its own (no bridge, no iptables)
and three agents as real processes. Pods are created with ``nodeName`` set
(the scheduler is not what is measured) and timed from the create request to
the Running phase seen through a watch. The floor is plain ``docker run -d``
of the same containers in the same run: the infra container plus the app
container, one pod at a time and 30 at once, 10 at a time.

    python bench/agent_bench.py
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from corral.api.resources import REGISTRY
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client
from corralctl import dockerd as dockerd_process
from corralctl.dockerd import Dockerd
from corralctl.processes import ApiServer, Etcd, ManagedProcess, free_port, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.conftest import import_test_image

PODS = REGISTRY.resolve("pods")
NAMESPACES = REGISTRY.resolve("namespaces")
IMAGE = "corral-test/busybox:1"
PAUSE = "corral.local/pause:1"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def docker_floor(daemon: Dockerd, count: int, parallel: int) -> list[float]:
    """Seconds, from the batch's start, until each pod's two containers run under `docker run -d`.

    An infra container plus an app container joined to it, ``parallel`` pods at
    a time: timed from the start of the batch as corral's pods are from their
    (simultaneous) creation, so the two figures compare like with like.
    """
    client = daemon.client()
    batch_start = time.perf_counter()

    def one(index: int) -> float:
        infra = client.containers.run(
            PAUSE,
            ["/bin/sleep", "2147483647"],
            detach=True,
            network_mode="none",
            name=f"floor-pod-{index}",
        )
        client.containers.run(
            IMAGE,
            ["sleep", "100000"],
            detach=True,
            network_mode=f"container:{infra.id}",
            name=f"floor-app-{index}",
        )
        return time.perf_counter() - batch_start

    with ThreadPoolExecutor(parallel) as pool:
        durations = list(pool.map(one, range(count)))
    for container in client.containers.list(all=True, filters={"name": "floor-"}):
        container.remove(force=True)
    return durations


async def pod_startup(url: str, nodes: list[str], count: int, namespace: str) -> list[float]:
    assert PODS is not None and NAMESPACES is not None
    async with Client(ClientConfig(server=url, namespace=namespace)) as client:
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        listed = await client.list(PODS, namespace)
        version = listed["metadata"]["resourceVersion"]
        sent: dict[str, float] = {}
        running: dict[str, float] = {}
        done = asyncio.Event()

        async def watch() -> None:
            async for event in client.watch(PODS, namespace, resource_version=version):
                obj = event["object"]
                name = obj["metadata"]["name"]
                if (obj.get("status") or {}).get("phase") == "Running" and name not in running:
                    running[name] = time.perf_counter()
                    if len(running) == count:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)

        async def create(index: int) -> None:
            name = f"p{index}"
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "nodeName": nodes[index % len(nodes)],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "main",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "100000"],
                        }
                    ],
                },
            }
            sent[name] = time.perf_counter()
            await client.create(PODS, body, namespace)

        await asyncio.gather(*(create(i) for i in range(count)))
        await asyncio.wait_for(done.wait(), 300)
        watcher.cancel()
        return [running[name] - sent[name] for name in sent]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="corral-agent-bench-"))
    daemon = dockerd_process.start()
    processes: list[ManagedProcess] = []
    etcd = Etcd(scratch / "etcd", log_path=scratch / "etcd.log")
    try:
        import_test_image(daemon)
        etcd.start()
        etcd.wait_ready()
        api = ApiServer([etcd.endpoint], log_path=scratch / "apiserver.log")
        api.start()
        processes.append(api)
        api.wait_ready()
        agents = []
        for index in range(3):
            node = f"bench-node-{index}"
            agent = ManagedProcess(
                node,
                [
                    sys.executable,
                    "-m",
                    "nodeagent",
                    "--server",
                    api.url,
                    "--control",
                    f"127.0.0.1:{api.agent_port}",
                    "--node-name",
                    node,
                    "--runtime",
                    "docker",
                    # Measures the agent and Docker; the pod network has its own bench.
                    "--network",
                    "none",
                    "--docker-host",
                    daemon.host,
                    "--data-dir",
                    str(scratch / node),
                    "--listen-port",
                    str(free_port()),
                ],
                scratch / f"{node}.log",
            )
            agent.start()
            processes.append(agent)
            agents.append(agent)
        wait_until(lambda: daemon.client().images.list(name=PAUSE) != [], 60, "pause image")

        floor_one = [docker_floor(daemon, 1, 1)[0] for _ in range(10)]
        floor_thirty = docker_floor(daemon, 30, 10)
        single = [
            asyncio.run(pod_startup(api.url, ["bench-node-0"], 1, f"single-{i}"))[0]
            for i in range(10)
        ]
        thirty = asyncio.run(
            pod_startup(api.url, [f"bench-node-{i}" for i in range(3)], 30, "thirty")
        )
        memory = [rss_kib(a.pid or 0) for a in agents]
        results = {
            "date": time.strftime("%Y-%m-%d"),
            "floor_one_p50_s": statistics.median(floor_one),
            "floor_thirty_p99_s": percentile(floor_thirty, 0.99),
            "single_pod_p50_s": statistics.median(single),
            "single_pod_p99_s": percentile(single, 0.99),
            "thirty_pods_p50_s": statistics.median(thirty),
            "thirty_pods_p99_s": percentile(thirty, 0.99),
            "agent_rss_mib_with_10_pods_each": [round(m / 1024, 1) for m in memory],
        }
        print(
            f"docker run floor   1 pod : p50 {results['floor_one_p50_s']:.3f} s "
            "(infra + app container)"
        )
        print(
            f"docker run floor  30 pods: p99 {results['floor_thirty_p99_s']:.3f} s (10 at a time)"
        )
        print(
            f"corral pod startup   1 pod : p50 {results['single_pod_p50_s']:.3f} s, "
            f"p99 {results['single_pod_p99_s']:.3f} s (10 runs)"
        )
        print(
            f"corral pod startup  30 pods: p50 {results['thirty_pods_p50_s']:.3f} s, "
            f"p99 {results['thirty_pods_p99_s']:.3f} s (3 agents)"
        )
        print(f"agent RSS with 10 pods each: {results['agent_rss_mib_with_10_pods_each']} MiB")
        print(json.dumps(results))
    finally:
        for process in reversed(processes):
            process.stop(20)
        etcd.stop()
        dockerd_process.stop(daemon, clean=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
