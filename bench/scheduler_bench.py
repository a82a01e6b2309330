"""Scheduler benchmark: pods/s and per-pod latency, end to end through the API.

Each run starts its own etcd, API server and scheduler (real processes, as
``corral up`` runs them: TLS, each component's own identity under RBAC,
audit; bench/securepath.py) in a scratch directory, registers hollow nodes
(plain Node objects with allocatable resources, a Ready condition, and
hostname and zone labels) and schedules pods with mixed requests, each one
a replica of one of 100 ReplicationControllers, so replica spreading works
as hard as it would in a real cluster.

- **backlog** (throughput): every pod is created first, then the scheduler
  starts. Throughput is pods over the time from the first bind to the
  last, as the bench's own watch sees them. Each pod costs the API one
  write, the bind. Run ``--repeat`` times: the machine is shared.
- **stream** (latency): the scheduler runs while the bench creates pods at
  a steady ``--rate``, below the throughput, so that the latency from the
  create request to the bind showing up on the watch is the scheduling
  path's and not a queue's.
- **sweep**: backlog runs of the same pods over more and more nodes.
- **algorithm**: filter, score and assume in-process, with no API at all.

The scheduler's own figures come from its ``/metrics``: the algorithm's
time per pod and the attempt latency (from the pod leaving the queue to
the bind's acknowledgement). CPU per pod is read from /proc for etcd, the
API server, the scheduler and the bench itself, so where the machine's two
cores go is plain.

    python bench/scheduler_bench.py            # everything, about fifteen minutes
    python bench/scheduler_bench.py --quick    # small counts, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop
from prometheus_client.parser import text_string_to_metric_families
from securepath import (
    SecureApi,
    Target,
    component_metrics_url,
    cpu_seconds,
    secure_api,
    start_component,
)

from corral.metrics import histogram_quantile
from corral.objects import Obj
from corralctl.processes import Etcd, ManagedProcess, ProcessError
from scheduler.cache import Cache
from scheduler.config import SchedulerConfig
from scheduler.handle import ClusterHandle
from scheduler.pipeline import Pipeline
from scheduler.podinfo import PodInfo
from scheduler.selectors import SpreadingSelectors

JSON = {"Content-Type": "application/json"}
NAMESPACE = "bench"
CONTROLLERS = 100
ZONES = ("zone-a", "zone-b", "zone-c")
CPUS = ("100m", "250m", "500m", "1")
MEMORIES = ("128Mi", "256Mi", "512Mi", "1Gi")
CONCURRENCY = 64


def node_body(i: int) -> Obj:
    name = f"hollow-{i:05d}"
    resources = {"cpu": "32", "memory": "128Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
            },
        },
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def rc_body(i: int) -> Obj:
    labels = {"app": f"app-{i}"}
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": f"app-{i}"},
        "spec": {
            # Zero replicas: the object is there for its selector; the bench
            # creates the replicas itself, as the controller would.
            "replicas": 0,
            "selector": labels,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "corral.local/bench:1"}]},
            },
        },
    }


def pod_body(i: int, rng: random.Random) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i:06d}", "labels": {"app": f"app-{i % CONTROLLERS}"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "corral.local/bench:1",
                    "resources": {
                        "requests": {"cpu": rng.choice(CPUS), "memory": rng.choice(MEMORIES)}
                    },
                }
            ]
        },
    }


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# --- driving the API ---------------------------------------------------------------------


async def create_all(
    session: aiohttp.ClientSession,
    url: str,
    bodies: list[Obj],
    sent: dict[str, float] | None = None,
    rate: float = 0.0,
) -> None:
    """POST every body, ``CONCURRENCY`` at a time, or paced at ``rate`` per second.

    Records when each pod's create was sent, in ``sent``.
    """
    queue = iter(enumerate(bodies))
    start = time.perf_counter()

    async def worker() -> None:
        for i, body in queue:
            if rate:
                due = start + i / rate
                if due > time.perf_counter():
                    await asyncio.sleep(due - time.perf_counter())
            name = body["metadata"]["name"]
            if sent is not None:
                sent[name] = time.perf_counter()
            async with session.post(url, data=orjson.dumps(body), headers=JSON) as response:
                payload = await response.read()
                if response.status != 201:
                    raise RuntimeError(f"create {name}: HTTP {response.status}: {payload[:200]!r}")

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def resource_version(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url, params={"limit": "1"}) as response:
        return str(orjson.loads(await response.read())["metadata"]["resourceVersion"])


async def watch_bound(
    session: aiohttp.ClientSession,
    url: str,
    since: str,
    expected: int,
    bound: dict[str, float],
    nodes: dict[str, str],
) -> None:
    """Record when each pod is first seen with a node, until ``expected`` are."""
    params = {"watch": "true", "resourceVersion": since}
    async with session.get(
        url, params=params, timeout=aiohttp.ClientTimeout(total=None)
    ) as response:
        buffer = b""
        async for chunk in response.content.iter_any():
            now = time.perf_counter()
            buffer += chunk
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            for line in lines:
                if not line.strip():
                    continue
                obj = orjson.loads(line)["object"]
                node = (obj.get("spec") or {}).get("nodeName")
                name = obj["metadata"]["name"]
                if node and name not in bound:
                    if name in nodes:
                        raise RuntimeError(f"{name} bound twice")
                    bound[name] = now
                    nodes[name] = node
            if len(bound) >= expected:
                return


def scrape(client: Target, url: str) -> dict[str, float]:
    """Sample values by name and labels; histograms also as estimated p50/p99 and mean."""
    text = client.get(url, timeout=10).decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        buckets: list[tuple[float, float]] = []
        for sample in family.samples:
            if sample.labels.get("result", "scheduled") != "scheduled":
                continue  # attempts: the successful ones, as before
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
            elif set(sample.labels) <= {"result", "profile"}:
                values[sample.name] = sample.value
        if buckets:
            values[f"{family.name}:p50"] = histogram_quantile(0.5, buckets)
            values[f"{family.name}:p99"] = histogram_quantile(0.99, buckets)
    return values


# --- one scenario ------------------------------------------------------------------------


class Cluster:
    """etcd, the API server and (when started) the scheduler, as ``corral up`` runs them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etcd = Etcd(root / "etcd", log_path=root / "etcd.log")
        self.secure: SecureApi | None = None
        self.scheduler: ManagedProcess | None = None

    def __enter__(self) -> Cluster:
        self.etcd.start()
        self.etcd.wait_ready()
        self.secure = secure_api(self.root, self.etcd)
        self.secure.api.start()
        try:
            self.secure.api.wait_ready()
        except ProcessError:
            print(self.secure.api.log_tail(20), file=sys.stderr)
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        api = self.secure.api if self.secure is not None else None
        for process in (self.scheduler, api, self.etcd):
            if process is not None:
                process.stop()

    @property
    def started(self) -> SecureApi:
        assert self.secure is not None, "the cluster is not started"
        return self.secure

    @property
    def url(self) -> str:
        return self.started.api.url

    @property
    def admin(self) -> Target:
        return self.started.admin

    def session(self, limit: int) -> aiohttp.ClientSession:
        return self.admin.session(limit)

    def cpu(self) -> dict[str, float]:
        return {
            "etcd": cpu_seconds(self.etcd.pid),
            "apiserver": cpu_seconds(self.secure.api.pid if self.secure else None),
            "scheduler": cpu_seconds(self.scheduler.pid if self.scheduler else None),
            "bench": time.process_time(),
        }

    def start_component(
        self, component: str, module_argv: list[str], *extra: str
    ) -> ManagedProcess:
        return start_component(
            self.started, component, module_argv, ("--log-level", "warning", *extra)
        )

    def start_scheduler(self) -> None:
        self.scheduler = self.start_component("scheduler", ["scheduler"])

    def scrape_scheduler(self) -> dict[str, float]:
        return scrape(self.admin, component_metrics_url(self.started, "scheduler"))


async def populate(cluster: Cluster, nodes: int) -> None:
    url = cluster.url
    async with cluster.session(CONCURRENCY) as session:
        await create_all(
            session,
            f"{url}/api/v1/namespaces",
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}],
        )
        await create_all(session, f"{url}/api/v1/nodes", [node_body(i) for i in range(nodes)])
        await create_all(
            session,
            f"{url}/api/v1/namespaces/{NAMESPACE}/replicationcontrollers",
            [rc_body(i) for i in range(CONTROLLERS)],
        )


def run_scenario(mode: str, pods: int, nodes: int, seed: int = 1, rate: float = 0.0) -> Obj:
    """One run on a fresh cluster; a cluster that fails to start is tried again, twice."""
    for attempt in range(3):
        try:
            return _run_scenario(mode, pods, nodes, seed, rate)
        except ProcessError as error:
            if attempt == 2:
                raise
            print(f"(the cluster did not start: {error}; again)", file=sys.stderr, flush=True)
            time.sleep(5)
    raise AssertionError("unreachable")


def _run_scenario(mode: str, pods: int, nodes: int, seed: int, rate: float) -> Obj:
    rng = random.Random(seed)
    bodies = [pod_body(i, rng) for i in range(pods)]
    with (
        tempfile.TemporaryDirectory(prefix="corral-sched-bench-") as scratch,
        Cluster(Path(scratch)) as cluster,
    ):
        uvloop.run(populate(cluster, nodes))
        pods_url = f"{cluster.url}/api/v1/namespaces/{NAMESPACE}/pods"
        sent: dict[str, float] = {}
        bound: dict[str, float] = {}
        placed: dict[str, str] = {}

        cpu_before: dict[str, float] = {}

        async def drive() -> float:
            async with cluster.session(CONCURRENCY + 4) as session:
                if mode == "backlog":
                    await create_all(session, pods_url, bodies)
                since = await resource_version(session, pods_url)
                watcher = asyncio.ensure_future(
                    watch_bound(session, pods_url, since, pods, bound, placed)
                )
                started = time.perf_counter()
                if mode == "backlog":
                    await asyncio.to_thread(cluster.start_scheduler)
                cpu_before.update(cluster.cpu())
                if mode == "stream":
                    await create_all(session, pods_url, bodies, sent, rate)
                await asyncio.wait_for(watcher, 600)
                return started

        if mode == "stream":
            cluster.start_scheduler()
        started = uvloop.run(drive())
        cpu_after = cluster.cpu()
        load = os.getloadavg()[0]
        assert cluster.scheduler is not None
        metrics = cluster.scrape_scheduler()
        log_tail = cluster.scheduler.log_tail(5)
    cpu_per_pod = {
        name: (cpu_after[name] - cpu_before.get(name, 0.0)) / pods * 1000 for name in cpu_after
    }
    first, last = min(bound.values()), max(bound.values())
    if mode == "backlog":
        elapsed = last - first
        latencies: list[float] = []
    else:
        elapsed = last - started
        latencies = [bound[name] - sent[name] for name in bound]
    per_node: dict[str, int] = {}
    for node in placed.values():
        per_node[node] = per_node.get(node, 0) + 1
    # Histograms: quantiles are estimated within their buckets (1 ms doubling).
    algorithm = "scheduler_scheduling_algorithm_duration_seconds"
    attempt = "scheduler_scheduling_attempt_duration_seconds"
    return {
        "mode": mode,
        "pods": pods,
        "nodes": nodes,
        "pods_per_second": pods / elapsed,
        "seconds": elapsed,
        "e2e_p50_ms": percentile(latencies, 0.5) * 1000,
        "e2e_p99_ms": percentile(latencies, 0.99) * 1000,
        "attempt_p50_ms": metrics[f"{attempt}:p50"] * 1000,
        "attempt_p99_ms": metrics[f"{attempt}:p99"] * 1000,
        "algorithm_p50_ms": metrics[f"{algorithm}:p50"] * 1000,
        "algorithm_p99_ms": metrics[f"{algorithm}:p99"] * 1000,
        "algorithm_mean_ms": metrics[f"{algorithm}_sum"] / metrics[f"{algorithm}_count"] * 1000,
        "evaluated_nodes_p50": metrics["corral_scheduler_evaluated_nodes:p50"],
        "nodes_used": len(per_node),
        "max_pods_per_node": max(per_node.values()),
        "bind_failures": metrics.get("corral_scheduler_bind_failures_total", 0.0),
        # CPU per pod over the measured part, per process (ms); the cores are
        # shared, so these add up to what the machine spent on each pod.
        "cpu_ms_per_pod": cpu_per_pod,
        # What two cores could do at that cost, were nothing else running:
        # the machine is shared, and this moves less from run to run.
        "capacity_pods_per_second": 2000 / sum(cpu_per_pod.values()),
        "load_average": load,
        "scheduler_log_tail": log_tail,
    }


# --- the algorithm alone -----------------------------------------------------------------


def algorithm_only(pods: int, nodes: int, seed: int = 1) -> Obj:
    """Schedule in-process with no API: filter, score and assume, nothing else."""
    rng = random.Random(seed)
    cache = Cache()
    selectors = SpreadingSelectors()
    for i in range(CONTROLLERS):
        selectors.set(
            "ReplicationController",
            {**rc_body(i), "metadata": {"name": f"app-{i}", "namespace": NAMESPACE}},
        )
    for i in range(nodes):
        cache.set_node(node_body(i))
    pipeline = Pipeline(SchedulerConfig(), ClusterHandle(cache, selectors), rng=rng)
    infos = []
    for i in range(pods):
        body = pod_body(i, rng)
        body["metadata"]["namespace"] = NAMESPACE
        infos.append(PodInfo.from_obj(body))
    durations = []
    started = time.perf_counter()
    for pod in infos:
        t0 = time.perf_counter()
        result = pipeline.schedule(pod, cache.node_list())
        cache.assume(pod, result.node)
        durations.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return {
        "pods": pods,
        "nodes": nodes,
        "pods_per_second": pods / elapsed,
        "p50_ms": percentile(durations, 0.5) * 1000,
        "p99_ms": percentile(durations, 0.99) * 1000,
    }


def machine() -> Obj:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(
        "--only", choices=("algorithm", "backlog", "stream", "sweep"), help="run one part"
    )
    parser.add_argument("--repeat", type=int, default=3, help="backlog runs per scenario")
    parser.add_argument("--rate", type=float, default=200.0, help="stream creates per second")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    scenarios = [(1_000, 100), (10_000, 1_000), (10_000, 5_000)]
    sweep = [100, 500, 1_000, 2_500, 5_000]
    sweep_pods = 3_000
    if args.quick:
        scenarios = [(300, 50), (1_000, 200)]
        sweep = [50, 200]
        sweep_pods = 300
    results: Obj = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(results["machine"]), flush=True)

    if args.only in (None, "algorithm"):
        results["algorithm"] = []
        for nodes in sweep:
            row = algorithm_only(sweep_pods * 2, nodes)
            results["algorithm"].append(row)
            print(
                f"algorithm  {row['pods']:>6} pods {nodes:>5} nodes: "
                f"{row['pods_per_second']:7.0f} pods/s  p50 {row['p50_ms']:6.2f} ms  "
                f"p99 {row['p99_ms']:6.2f} ms",
                flush=True,
            )
    if args.only in (None, "backlog"):
        results["backlog"] = []
        for pods, nodes in scenarios:
            runs = []
            for _ in range(max(args.repeat, 1)):
                row = run_scenario("backlog", pods, nodes)
                runs.append(row)
                _print_row(row)
            rates = sorted(r["pods_per_second"] for r in runs)
            print(
                f"backlog  {pods:>6} pods {nodes:>5} nodes: median "
                f"{statistics.median(rates):.0f} pods/s (runs: "
                + ", ".join(f"{r:.0f}" for r in rates)
                + ")",
                flush=True,
            )
            results["backlog"].append({"pods": pods, "nodes": nodes, "runs": runs})
    if args.only in (None, "stream"):
        results["stream"] = []
        for pods, nodes in scenarios:
            row = run_scenario("stream", pods, nodes, rate=args.rate)
            results["stream"].append(row)
            _print_row(row)
    if args.only in (None, "sweep"):
        results["sweep"] = []
        for nodes in sweep:
            row = run_scenario("backlog", sweep_pods, nodes)
            results["sweep"].append(row)
            _print_row(row)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _print_row(row: Obj) -> None:
    e2e = (
        f"create->bound p50 {row['e2e_p50_ms']:6.1f} ms p99 {row['e2e_p99_ms']:6.1f} ms  "
        if row["mode"] == "stream"
        else ""
    )
    print(
        f"{row['mode']:<8} {row['pods']:>6} pods {row['nodes']:>5} nodes: "
        f"{row['pods_per_second']:6.0f} pods/s  {e2e}"
        f"attempt p50 {row['attempt_p50_ms']:6.1f} ms p99 {row['attempt_p99_ms']:6.1f} ms  "
        f"algorithm p50 {row['algorithm_p50_ms']:5.2f} ms p99 {row['algorithm_p99_ms']:5.2f} ms "
        f"(mean {row['algorithm_mean_ms']:.2f})  nodes filtered p50 "
        f"{row['evaluated_nodes_p50']:.0f}  used {row['nodes_used']} nodes, max "
        f"{row['max_pods_per_node']} pods/node, bind failures {row['bind_failures']:.0f}\n"
        f"         CPU ms/pod: "
        + ", ".join(f"{name} {ms:.2f}" for name, ms in row["cpu_ms_per_pod"].items())
        + f"; two cores' worth {row['capacity_pods_per_second']:.0f} pods/s; "
        f"load average {row['load_average']:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
