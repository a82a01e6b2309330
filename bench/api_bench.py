"""API server benchmark: creates, LIST of 10k pods, watch fan-out, and raw etcd for scale.

Starts its own etcd and API server (real processes, as ``corral up`` runs
them) in a scratch directory, drives them from separate load-generator
processes, and prints the figures. Raw etcd transactions are measured in the
same run, with the same concurrency, the same value size and the same kind
of client (Python gRPC), so the API's overhead over etcd shows as a ratio.
Each create phase also prints the CPU time that the API server, etcd and the
load generators spent per create, which explains the ratio: at saturation
it is about the inverse ratio of CPU per create (docs/benchmarks.md).

    python bench/api_bench.py            # everything, under a minute on a quiet machine
    python bench/api_bench.py --quick    # fewer operations, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import uvloop
from aetcd import rpc

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
    url: str, namespace: str, names: list[str], concurrency: int
) -> tuple[list[float], float]:
    async def run() -> list[float]:
        latencies: list[float] = []
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            queue = iter(names)

            async def worker() -> None:
                for name in queue:
                    started = time.perf_counter()
                    async with session.post(
                        f"{url}/api/v1/namespaces/{namespace}/pods",
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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, all threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Load:
    """What one fan-out took: wall time, every latency, and CPU seconds per process."""

    def __init__(self, elapsed: float, latencies: list[float], cpu: dict[str, float]) -> None:
        self.elapsed = elapsed
        self.latencies = latencies
        self.cpu = cpu


def fan_out(
    target: Callable[..., tuple[list[float], float]],
    items: list[str],
    concurrency: int,
    *args: Any,
    watched: dict[str, int] | None = None,
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
        before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        started = time.perf_counter()
        results = pool.starmap(target, [(*args, chunk, per_process) for chunk in chunks])
        elapsed = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in watched.items()}
    cpu["load generator"] = sum(spent for _, spent in results)
    return Load(elapsed, [latency for chunk, _ in results for latency in chunk], cpu)


def _warm_up(_: int) -> None:
    return None


# --- the scenarios ----------------------------------------------------------------------


async def _request(session: aiohttp.ClientSession, method: str, url: str, body: Obj) -> None:
    async with session.request(method, url, data=orjson.dumps(body), headers=JSON) as response:
        await response.read()


async def make_namespace(url: str, name: str) -> None:
    async with aiohttp.ClientSession() as session:
        await _request(
            session,
            "POST",
            f"{url}/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )


def bench_creates(
    url: str, etcd: str, concurrency: int, count: int, servers: dict[str, int]
) -> Obj:
    namespace = f"create-{concurrency}"
    asyncio.run(make_namespace(url, namespace))
    names = [f"p{i}" for i in range(count)]
    api = fan_out(_api_creates, names, concurrency, url, namespace, watched=servers)
    # The stored value of a pod is about the size of its request body.
    keys = [f"/bench-raw/{concurrency}/{i}" for i in range(count)]
    raw = fan_out(_etcd_txns, keys, concurrency, etcd, pod_body("p0"), watched=servers)
    return {
        "clients": concurrency,
        "creates": count,
        "api_per_second": count / api.elapsed,
        "api_p50_ms": percentile(api.latencies, 0.50) * 1000,
        "api_p99_ms": percentile(api.latencies, 0.99) * 1000,
        "api_cpu_us_per_create": {name: spent / count * 1e6 for name, spent in api.cpu.items()},
        "etcd_per_second": count / raw.elapsed,
        "etcd_p50_ms": percentile(raw.latencies, 0.50) * 1000,
        "etcd_p99_ms": percentile(raw.latencies, 0.99) * 1000,
        "etcd_cpu_us_per_create": {name: spent / count * 1e6 for name, spent in raw.cpu.items()},
    }


def cpu_line(label: str, per_create: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {spent:.0f}" for name, spent in per_create.items() if spent >= 0.5)
    return f"         {label} CPU µs per create: {parts} (sum {sum(per_create.values()):.0f})"


def bench_list(url: str, count: int, repeats: int) -> Obj:
    namespace = "list"
    asyncio.run(make_namespace(url, namespace))
    names = [f"p{i}" for i in range(count)]
    fan_out(_api_creates, names, 64, url, namespace)  # the listed pods

    async def timed() -> tuple[list[float], list[float], int]:
        transfer: list[float] = []
        parsed: list[float] = []
        size = 0
        async with aiohttp.ClientSession() as session:
            for _ in range(repeats):
                started = time.perf_counter()
                async with session.get(f"{url}/api/v1/namespaces/{namespace}/pods") as response:
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


def bench_watch(url: str, watchers: int, events: int) -> Obj:
    namespace = "watch"
    asyncio.run(make_namespace(url, namespace))

    async def run() -> Obj:
        sent: dict[str, float] = {}
        delays: list[float] = []
        delivered = 0
        ready = asyncio.Event()
        opened = 0
        connector = aiohttp.TCPConnector(limit=watchers + 8)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def watcher() -> None:
                nonlocal delivered, opened
                async with session.get(
                    f"{url}/api/v1/namespaces/{namespace}/pods",
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
                    f"{url}/api/v1/namespaces/{namespace}/pods",
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as scratch:
        root = Path(scratch)
        etcd = Etcd(root / "etcd", log_path=root / "etcd.log")
        etcd.start()
        etcd.wait_ready()
        api = ApiServer([etcd.endpoint], log_path=root / "apiserver.log")
        api.start()
        try:
            api.wait_ready()
            results: Obj = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "creates": []}
            assert api.pid is not None and etcd.pid is not None
            servers = {"apiserver": api.pid, "etcd": etcd.pid}
            for clients, count in ((1, 2000), (8, 4000), (64, 8000)):
                row = bench_creates(
                    api.url, etcd.endpoint, clients, max(int(count * scale), 64), servers
                )
                results["creates"].append(row)
                print(
                    f"creates  clients={clients:>2}  api {row['api_per_second']:7.0f}/s "
                    f"p50 {row['api_p50_ms']:6.1f} ms p99 {row['api_p99_ms']:6.1f} ms | "
                    f"raw etcd {row['etcd_per_second']:7.0f}/s p50 {row['etcd_p50_ms']:6.1f} ms "
                    f"p99 {row['etcd_p99_ms']:6.1f} ms | ratio "
                    f"{row['api_per_second'] / row['etcd_per_second']:.2f}",
                    flush=True,
                )
                print(cpu_line("api", row["api_cpu_us_per_create"]), flush=True)
                print(cpu_line("raw", row["etcd_cpu_us_per_create"]), flush=True)
            listing = bench_list(api.url, int(10_000 * scale), 5)
            results["list"] = listing
            print(
                f"list     {listing['pods']} pods ({listing['bytes'] / 1e6:.1f} MB): median "
                f"{listing['median_s']:.3f} s, max {listing['max_s']:.3f} s, with client-side "
                f"parse {listing['median_with_client_parse_s']:.3f} s",
                flush=True,
            )
            watch = bench_watch(api.url, 100, max(int(500 * scale), 20))
            results["watch"] = watch
            print(
                f"watch    {watch['watchers']} watchers x {watch['events']} events: "
                f"{watch['deliveries_per_second']:.0f} deliveries/s, delay p50 "
                f"{watch['delay_p50_ms']:.1f} ms p99 {watch['delay_p99_ms']:.1f} ms",
                flush=True,
            )
            print(json.dumps(results["machine"]))
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
        finally:
            api.stop()
            etcd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
