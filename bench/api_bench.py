"""API server benchmark: creates, LIST of 10k pods, watch fan-out, and raw etcd for scale.

Starts its own etcd and API server (real processes, as ``corral up`` runs
them) in a scratch directory, drives them from separate load-generator
processes, and prints the figures. The headline is the path ``corral up``
serves: HTTPS with the cluster CA, the administrator's client certificate
(as in ``D/kubeconfig``), RBAC, the audit log and the default admission
chain, with the PKI made by corral up's own helpers. The creates are then
measured again on a development server (``--insecure-dev-http``: plain HTTP,
no authentication, RBAC or audit), so the cost of security shows as a ratio.
Raw etcd transactions are measured in the same run, with the same
concurrency, the same value size and the same kind of client (Python gRPC),
so the API's overhead over etcd shows as a ratio too.
Each create phase also prints the CPU time that the API server, etcd and the
load generators spent per create, which explains the ratio: at saturation
it is about the inverse ratio of CPU per create (docs/benchmarks.md).

The creates are measured for each API server worker count of ``--workers``
(default 1, 2 and 4: ``corral apiserver --workers N``), on the secure and
the insecure server alike; CPU per create is then given per worker, and the
resident memory of each worker with 100 pods stored.

    python bench/api_bench.py            # everything, a few minutes on a quiet machine
    python bench/api_bench.py --quick    # fewer operations, for a smoke run
    python bench/api_bench.py --workers 1,2 --reuse-port   # SO_REUSEPORT sockets instead
    python bench/api_bench.py --profile  # CPU per create by layer (needs py-spy)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import api_profile
import grpc
import orjson
import uvloop
from aetcd import rpc
from securepath import INSECURE, SECURE, Target, cpu_seconds, secure_api

from corral.objects import Obj
from corralctl.processes import ApiServer, Etcd

JSON = {"Content-Type": "application/json"}


def pod_body(name: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "corral.local/bench/httpd:1.0",
                        "ports": [{"containerPort": 80, "name": "http"}],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"cpu": "200m", "memory": "128Mi"},
                        },
                    }
                ]
            },
        }
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# --- load generators (each runs in a process of its own) ---------------------------------


def _api_creates(
    target: Target, namespace: str, names: list[str], concurrency: int
) -> tuple[list[float], float]:
    async def run() -> list[float]:
        latencies: list[float] = []
        async with target.session(concurrency) as session:
            queue = iter(names)

            async def worker() -> None:
                for name in queue:
                    started = time.perf_counter()
                    async with session.post(
                        f"{target.url}/api/v1/namespaces/{namespace}/pods",
                        data=pod_body(name),
                        headers=JSON,
                    ) as response:
                        await response.read()
                        if response.status != 201:
                            raise RuntimeError(f"create {name}: HTTP {response.status}")
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies

    return _with_cpu(run)


def _etcd_txns(
    endpoint: str, value: bytes, keys: list[str], concurrency: int
) -> tuple[list[float], float]:
    async def run() -> list[float]:
        latencies: list[float] = []
        channel = grpc.aio.insecure_channel(endpoint.removeprefix("http://"))
        kv = rpc.KVStub(channel)
        queue = iter(keys)

        async def worker() -> None:
            for key in queue:
                raw = key.encode()
                request = rpc.TxnRequest(
                    compare=[
                        rpc.Compare(
                            result=rpc.Compare.EQUAL,
                            target=rpc.Compare.CREATE,
                            key=raw,
                            create_revision=0,
                        )
                    ],
                    success=[rpc.RequestOp(request_put=rpc.PutRequest(key=raw, value=value))],
                )
                started = time.perf_counter()
                response = await kv.Txn(request)
                if not response.succeeded:
                    raise RuntimeError(f"txn {key} failed")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await channel.close()
        return latencies

    return _with_cpu(run)


def _with_cpu(run: Callable[[], Coroutine[Any, Any, list[float]]]) -> tuple[list[float], float]:
    """The latencies, and the CPU seconds this load generator spent producing them."""
    started = time.process_time()
    latencies = uvloop.run(run())
    return latencies, time.process_time() - started


class Load:
    """What one fan-out took: wall time, every latency, and CPU seconds per process."""

    def __init__(self, elapsed: float, latencies: list[float], cpu: dict[str, float]) -> None:
        self.elapsed = elapsed
        self.latencies = latencies
        self.cpu = cpu


class Probe(Protocol):
    """Something started just before a fan-out's timed work and stopped just after it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def fan_out(
    target: Callable[..., tuple[list[float], float]],
    items: list[str],
    concurrency: int,
    *args: Any,
    watched: dict[str, int] | None = None,
    probe: Probe | None = None,
) -> Load:
    """Split the work over load-generator processes: ``target(*args, chunk, concurrency)``.

    Two processes for high concurrency, so that the generator is not the
    bottleneck. ``watched`` names server processes (name: pid) whose CPU
    over the same interval is reported next to the generators'.
    """
    watched = watched or {}
    processes = 1 if concurrency < 16 else 2
    per_process = concurrency // processes
    chunks = [items[i::processes] for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        # Children import everything on their first task: keep that off the clock.
        pool.map(_warm_up, range(processes))
        if probe is not None:
            probe.start()
        before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        started = time.perf_counter()
        try:
            results = pool.starmap(target, [(*args, chunk, per_process) for chunk in chunks])
        finally:
            elapsed = time.perf_counter() - started
            cpu = {name: cpu_seconds(pid) - before[name] for name, pid in watched.items()}
            if probe is not None:
                probe.stop()
    cpu["load generator"] = sum(spent for _, spent in results)
    return Load(elapsed, [latency for chunk, _ in results for latency in chunk], cpu)


def _warm_up(_: int) -> None:
    return None


# --- the scenarios ----------------------------------------------------------------------


async def _request(session: aiohttp.ClientSession, method: str, url: str, body: Obj) -> None:
    async with session.request(method, url, data=orjson.dumps(body), headers=JSON) as response:
        await response.read()


async def make_namespace(target: Target, name: str) -> None:
    async with target.session() as session:
        await _request(
            session,
            "POST",
            f"{target.url}/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )


def bench_api_creates(
    target: Target,
    concurrency: int,
    count: int,
    servers: dict[str, int],
    probe: Probe | None = None,
    *,
    namespace: str = "",
) -> Obj:
    namespace = namespace or f"create-{concurrency}"
    asyncio.run(make_namespace(target, namespace))
    names = [f"p{i}" for i in range(count)]
    api = fan_out(_api_creates, names, concurrency, target, namespace, watched=servers, probe=probe)
    return create_row(api, concurrency, count)


def bench_raw_etcd(etcd: str, concurrency: int, count: int, servers: dict[str, int]) -> Obj:
    # The stored value of a pod is about the size of its request body.
    keys = [f"/bench-raw/{concurrency}/{i}" for i in range(count)]
    raw = fan_out(_etcd_txns, keys, concurrency, etcd, pod_body("p0"), watched=servers)
    return create_row(raw, concurrency, count)


def create_row(load: Load, concurrency: int, count: int) -> Obj:
    """One create phase's figures: throughput, latency and CPU per create of each process."""
    return {
        "clients": concurrency,
        "creates": count,
        "per_second": count / load.elapsed,
        "p50_ms": percentile(load.latencies, 0.50) * 1000,
        "p99_ms": percentile(load.latencies, 0.99) * 1000,
        "cpu_us_per_create": {name: spent / count * 1e6 for name, spent in load.cpu.items()},
    }


def create_line(label: str, row: Obj) -> str:
    return (
        f"creates  clients={row['clients']:>2}  {label:<60} {row['per_second']:7.0f}/s "
        f"p50 {row['p50_ms']:6.1f} ms p99 {row['p99_ms']:6.1f} ms"
    )


def cpu_line(per_create: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {spent:.0f}" for name, spent in per_create.items() if spent >= 0.5)
    return f"         CPU µs per create: {parts} (sum {sum(per_create.values()):.0f})"


def bench_list(target: Target, count: int, repeats: int) -> Obj:
    namespace = "list"
    asyncio.run(make_namespace(target, namespace))
    names = [f"p{i}" for i in range(count)]
    fan_out(_api_creates, names, 64, target, namespace)  # the listed pods

    async def timed() -> tuple[list[float], list[float], int]:
        transfer: list[float] = []
        parsed: list[float] = []
        size = 0
        async with target.session() as session:
            for _ in range(repeats):
                started = time.perf_counter()
                async with session.get(
                    f"{target.url}/api/v1/namespaces/{namespace}/pods"
                ) as response:
                    body = await response.read()
                transfer.append(time.perf_counter() - started)
                items = orjson.loads(body)["items"]
                parsed.append(time.perf_counter() - started)
                size = len(body)
                if len(items) != count:
                    raise RuntimeError(f"listed {len(items)} pods, expected {count}")
        return transfer, parsed, size

    transfer, parsed, size = asyncio.run(timed())
    return {
        "pods": count,
        "bytes": size,
        "median_s": statistics.median(transfer),
        "max_s": max(transfer),
        "median_with_client_parse_s": statistics.median(parsed),
    }


def bench_watch(target: Target, watchers: int, events: int) -> Obj:
    namespace = "watch"
    asyncio.run(make_namespace(target, namespace))

    async def run() -> Obj:
        sent: dict[str, float] = {}
        delays: list[float] = []
        delivered = 0
        ready = asyncio.Event()
        opened = 0
        async with target.session(watchers + 8) as session:

            async def watcher() -> None:
                nonlocal delivered, opened
                async with session.get(
                    f"{target.url}/api/v1/namespaces/{namespace}/pods",
                    params={"watch": "true", "resourceVersion": "0"},
                    timeout=aiohttp.ClientTimeout(total=None),
                ) as response:
                    opened += 1
                    if opened == watchers:
                        ready.set()
                    seen = 0
                    buffer = b""
                    async for chunk in response.content.iter_any():
                        buffer += chunk
                        while b"\n" in buffer:
                            line, buffer = buffer.split(b"\n", 1)
                            name = orjson.loads(line)["object"]["metadata"]["name"]
                            delays.append(time.perf_counter() - sent[name])
                            delivered += 1
                            seen += 1
                            if seen == events:
                                return

            tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
            await asyncio.wait_for(ready.wait(), 60)
            await asyncio.sleep(0.5)
            started = time.perf_counter()
            for i in range(events):
                name = f"w{i}"
                sent[name] = time.perf_counter()
                await _request(
                    session,
                    "POST",
                    f"{target.url}/api/v1/namespaces/{namespace}/pods",
                    orjson.loads(pod_body(name)),
                )
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            elapsed = time.perf_counter() - started
        return {
            "watchers": watchers,
            "events": events,
            "deliveries": delivered,
            "deliveries_per_second": delivered / elapsed,
            "delay_p50_ms": percentile(delays, 0.50) * 1000,
            "delay_p99_ms": percentile(delays, 0.99) * 1000,
        }

    return uvloop.run(run())


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


CREATE_PHASES = ((1, 2000), (8, 4000), (64, 8000))


@dataclass(frozen=True)
class Workers:
    """How many processes each API server runs, and how they share its port."""

    count: int = 1
    reuse_port: bool = False

    def args(self) -> tuple[str, ...]:
        return ("--workers-reuse-port",) if self.reuse_port and self.count > 1 else ()


def secure_server(root: Path, etcd: Etcd, workers: Workers = Workers()) -> tuple[ApiServer, Target]:
    """The API server as ``corral up`` runs it (bench/securepath.py), and its administrator."""
    secure = secure_api(
        root, etcd, name=f"secure-{workers.count}", workers=workers.count, extra_args=workers.args()
    )
    return secure.api, secure.admin


def insecure_server(
    root: Path, etcd: Etcd, workers: Workers = Workers()
) -> tuple[ApiServer, Target]:
    # A key prefix of its own: it starts as empty as the secure one did,
    # with none of that run's pods in its watch cache.
    api = ApiServer(
        [etcd.endpoint],
        log_path=root / f"apiserver-insecure-{workers.count}.log",
        workers=workers.count,
        extra_args=("--etcd-prefix", f"/insecure-{workers.count}", *workers.args()),
    )
    return api, Target(api.url)


@contextlib.contextmanager
def running(api: ApiServer, target: Target, workers: int) -> Iterator[ApiServer]:
    api.start()
    try:
        api.wait_ready()
        asyncio.run(every_worker_answers(target, workers))
        yield api
    finally:
        api.stop()


async def every_worker_answers(target: Target, workers: int, timeout: float = 120.0) -> None:
    """Wait until each worker has answered: load started earlier would all land on the first.

    A worker accepts connections only once its watch cache is filled, and
    the load generators keep their connections for the whole run.
    """
    if workers == 1:
        return
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only workers {sorted(seen)} of {workers} answered")
        # A connection of its own each time, so that each may reach another worker.
        async with target.session() as session, session.get(f"{target.url}/readyz") as answer:
            await answer.read()
            if answer.status == 200:
                seen.add(answer.headers.get("X-Corral-Worker", ""))
        await asyncio.sleep(0.05)


def worker_pids(api: ApiServer, workers: int) -> dict[str, int]:
    """Each process that serves the API: the server itself, or each worker of its supervisor."""
    assert api.pid is not None
    if workers == 1:
        return {"apiserver": api.pid}
    children = Path(f"/proc/{api.pid}/task/{api.pid}/children").read_text().split()
    return {f"apiserver w{i}": int(pid) for i, pid in enumerate(children)}


def servers_of(api: ApiServer, etcd: Etcd, workers: int = 1) -> dict[str, int]:
    assert etcd.pid is not None
    return {**worker_pids(api, workers), "etcd": etcd.pid}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def footprint(target: Target, api: ApiServer, workers: int, servers: dict[str, int]) -> Obj:
    """Each worker's resident memory with 100 pods stored (the goal: 150 MB or less)."""
    bench_api_creates(target, 8, 100, servers, namespace="footprint")
    return {name: rss_mb(pid) for name, pid in worker_pids(api, workers).items()}


def footprint_line(workers: int, rss: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {mb:.0f}" for name, mb in rss.items())
    return f"memory   workers={workers}  RSS MB with 100 pods: {parts}"


def secure_phase(
    root: Path, etcd: Etcd, scale: float, results: Obj, workers: Workers, *, first: bool
) -> None:
    """Creates over HTTPS; the first run also raw etcd at the same concurrency, LIST and watch."""
    api, target = secure_server(root, etcd, workers)
    with running(api, target, workers.count):
        servers = servers_of(api, etcd, workers.count)
        rss = footprint(target, api, workers.count, servers)
        results["footprint"][str(workers.count)] = rss
        print(footprint_line(workers.count, rss), flush=True)
        for clients, count in CREATE_PHASES:
            count = max(int(count * scale), 64)
            row = bench_api_creates(target, clients, count, servers)
            row["workers"] = workers.count
            results["creates"]["secure"].append(row)
            print(create_line(SECURE, row), flush=True)
            print(cpu_line(row["cpu_us_per_create"]), flush=True)
            if not first:
                continue
            raw = bench_raw_etcd(etcd.endpoint, clients, count, servers)
            results["creates"]["raw_etcd"].append(raw)
            print(create_line("raw etcd txn (Python gRPC)", raw), flush=True)
            print(cpu_line(raw["cpu_us_per_create"]), flush=True)
        if not first:
            return
        listing = bench_list(target, int(10_000 * scale), 5)
        results["list"] = listing
        print(
            f"list     {listing['pods']} pods ({listing['bytes'] / 1e6:.1f} MB), secure: median "
            f"{listing['median_s']:.3f} s, max {listing['max_s']:.3f} s, with client-side "
            f"parse {listing['median_with_client_parse_s']:.3f} s",
            flush=True,
        )
        watch = bench_watch(target, 100, max(int(500 * scale), 20))
        results["watch"] = watch
        print(
            f"watch    {watch['watchers']} watchers x {watch['events']} events, secure: "
            f"{watch['deliveries_per_second']:.0f} deliveries/s, delay p50 "
            f"{watch['delay_p50_ms']:.1f} ms p99 {watch['delay_p99_ms']:.1f} ms",
            flush=True,
        )


def insecure_phase(root: Path, etcd: Etcd, scale: float, results: Obj, workers: Workers) -> None:
    api, target = insecure_server(root, etcd, workers)
    with running(api, target, workers.count):
        servers = servers_of(api, etcd, workers.count)
        for clients, count in CREATE_PHASES:
            row = bench_api_creates(target, clients, max(int(count * scale), 64), servers)
            row["workers"] = workers.count
            results["creates"]["insecure"].append(row)
            print(create_line(f"{INSECURE}, {workers.count}w", row), flush=True)
            print(cpu_line(row["cpu_us_per_create"]), flush=True)


def summary(creates: Obj) -> list[str]:
    """Per worker count and concurrency: the three rates, their ratios, and the p99s."""
    lines = [
        "summary  workers clients   secure/s  insecure/s  raw etcd/s | secure/insecure  "
        "secure/raw etcd | secure p99 ms"
    ]
    raw_by_clients = {row["clients"]: row for row in creates["raw_etcd"]}
    for secure, insecure in zip(creates["secure"], creates["insecure"], strict=True):
        raw = raw_by_clients[secure["clients"]]
        rates = secure["per_second"], insecure["per_second"], raw["per_second"]
        lines.append(
            f"         {secure['workers']:>7} {secure['clients']:>7} {rates[0]:>10.0f} "
            f"{rates[1]:>11.0f} {rates[2]:>11.0f} | {rates[0] / rates[1]:>15.2f}  "
            f"{rates[0] / rates[2]:>15.2f} | {secure['p99_ms']:>13.1f}"
        )
    return lines


def worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 1,2,4, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected counts of at least 1, got {text!r}")
    return counts


class ProfileProbe:
    """py-spy on the API server, and its threads' CPU, over one fan-out's timed work."""

    def __init__(self, sampler: api_profile.Sampler) -> None:
        self.sampler = sampler
        self.before: dict[int, tuple[str, float]] = {}
        self.after: dict[int, tuple[str, float]] = {}
        self.stacks = ""

    def start(self) -> None:
        self.sampler.start()
        self.before = api_profile.thread_cpu(self.sampler.pid)

    def stop(self) -> None:
        self.after = api_profile.thread_cpu(self.sampler.pid)
        self.stacks = self.sampler.stop()


def profile_phase(root: Path, etcd: Etcd, scale: float, py_spy: str) -> Obj:
    """Secure creates at 64 clients with py-spy attached; CPU per create by layer."""
    api, target = secure_server(root, etcd)
    with running(api, target, 1):
        servers = servers_of(api, etcd)
        # Lazy imports and first-use caches are not what a create costs.
        bench_api_creates(target, 8, max(int(2000 * scale), 64), servers)
        assert api.pid is not None
        probe = ProfileProbe(api_profile.Sampler(py_spy, api.pid, root / "profile.txt"))
        count = max(int(30_000 * scale), 1000)
        row = bench_api_creates(target, 64, count, servers, probe, namespace="profile")
    print(create_line(f"{SECURE}, profiled", row), flush=True)
    print(cpu_line(row["cpu_us_per_create"]), flush=True)
    buckets, parts = api_profile.tally(probe.stacks)
    python_cpu, native_cpu = api_profile.split_cpu(probe.before, probe.after)
    print("API server CPU per create, by layer (innermost known frame of each sample):")
    for line in api_profile.table(buckets, parts, python_cpu, native_cpu, count):
        print(line)
    return {
        "creates": row,
        "samples": dict(buckets),
        "other_samples": dict(parts),
        "python_threads_cpu_s": python_cpu,
        "native_threads_cpu_s": native_cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only secure creates at 64 clients, with py-spy on the API server: "
        "CPU per create by layer",
    )
    parser.add_argument(
        "--profile-stacks",
        metavar="FILE",
        help="with --profile, also keep py-spy's collapsed stacks here (flamegraph.pl input)",
    )
    parser.add_argument(
        "--workers",
        type=worker_counts,
        default=[1, 2, 4],
        help="API server worker counts to measure, comma-separated (default: 1,2,4)",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="workers get SO_REUSEPORT sockets of their own (--workers-reuse-port)",
    )
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    py_spy = api_profile.find_py_spy()
    if args.profile and py_spy is None:
        print(f"error: {api_profile.PY_SPY_HINT}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as scratch:
        root = Path(scratch)
        etcd = Etcd(root / "etcd", log_path=root / "etcd.log")
        etcd.start()
        try:
            etcd.wait_ready()
            results: Obj = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
            if args.profile:
                assert py_spy is not None
                results["profile"] = profile_phase(root, etcd, scale, py_spy)
                if args.profile_stacks:
                    shutil.copyfile(root / "profile.txt", args.profile_stacks)
            else:
                results["creates"] = {"secure": [], "insecure": [], "raw_etcd": []}
                results["footprint"] = {}
                results["reuse_port"] = args.reuse_port
                for position, count in enumerate(args.workers):
                    workers = Workers(count, args.reuse_port)
                    secure_phase(root, etcd, scale, results, workers, first=position == 0)
                    insecure_phase(root, etcd, scale, results, workers)
                for line in summary(results["creates"]):
                    print(line)
            print(json.dumps(results["machine"]))
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
        finally:
            etcd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
