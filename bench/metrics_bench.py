"""What metrics cost: API create throughput with metrics off and on, and each scrape.

In one run, on one machine: an etcd and an API server without
``--metrics-port`` (requests are not counted), then the same with it; the
same creates at the same concurrency against each (api_bench's load
generators). Then, with PODS pods stored and a controller manager and a
scheduler running against the metered server, each component's /metrics is
scraped REPEATS times: milliseconds per scrape and bytes per scrape.

    python bench/metrics_bench.py            # 1,000 pods
    python bench/metrics_bench.py --quick    # fewer, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from api_bench import Target, bench_api_creates, machine

from corralctl.processes import ApiServer, Etcd, ManagedProcess, free_port, http_ok, wait_until

Obj = dict[str, object]


def creates(url: str, count: int, concurrency: int, namespace: str) -> Obj:
    return bench_api_creates(Target(url), concurrency, count, {}, namespace=namespace)


def scrape_cost(url: str, repeats: int) -> Obj:
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            size = len(response.read())
        times.append(time.perf_counter() - started)
    return {"median_ms": statistics.median(times) * 1000, "bytes": size}


def _component(root: Path, name: str, argv: list[str], port: int) -> ManagedProcess:
    process = ManagedProcess(name, [sys.executable, "-m", *argv], root / f"{name}.log")
    process.start()
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 60, name, alive=process.running)
    return process


def run_mode(root: Path, metered: bool, count: int, concurrency: int, repeats: int) -> Obj:
    """One etcd and API server, metrics on or off; scrapes too when on."""
    etcd = Etcd(root / "etcd", log_path=root / "etcd.log")
    etcd.start()
    metrics_port = free_port()
    extra = ("--metrics-port", str(metrics_port)) if metered else ()
    api = ApiServer([etcd.endpoint], log_path=root / "apiserver.log", extra_args=extra)
    started: list[ManagedProcess] = []
    try:
        etcd.wait_ready()
        api.start()
        api.wait_ready()
        result: Obj = {"create": creates(api.url, count, concurrency, "bench")}
        if not metered:
            return result
        result["apiserver"] = scrape_cost(f"http://127.0.0.1:{metrics_port}/metrics", repeats)
        for name, argv in (
            ("controller-manager", ["controlplane", "controller-manager"]),
            ("scheduler", ["scheduler"]),
        ):
            port = free_port()
            started.append(
                _component(
                    root,
                    name,
                    [*argv, "--server", api.url, "--leader-elect", "false",
                     "--metrics-bind-address", f"127.0.0.1:{port}"],
                    port,
                )
            )  # fmt: skip
            time.sleep(3)  # the informers list the pods first
            result[name] = scrape_cost(f"http://127.0.0.1:{port}/metrics", repeats)
        return result
    finally:
        for process in started:
            process.stop()
        api.stop()
        etcd.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer pods, for a smoke run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    count, repeats = (200, 5) if args.quick else (1000, 20)
    results: Obj = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="corral-metrics-bench-") as scratch:
        for mode in ("off", "on"):
            row = run_mode(Path(scratch) / mode, mode == "on", count, 8, repeats)
            results[mode] = row
            create = row["create"]
            assert isinstance(create, dict)
            print(
                f"metrics {mode:<3}  {count} creates, 8 clients: {create['per_second']:.0f}/s "
                f"p50 {create['p50_ms']:.1f} ms p99 {create['p99_ms']:.1f} ms",
                flush=True,
            )
    on = results["on"]
    assert isinstance(on, dict)
    for component in ("apiserver", "controller-manager", "scheduler"):
        cost = on[component]
        print(
            f"scrape  {component:<18} at {count} pods: {cost['median_ms']:.1f} ms, "
            f"{cost['bytes'] / 1024:.1f} KiB"
        )
    print(json.dumps(results["machine"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
