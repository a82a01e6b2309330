"""What metrics cost: API create throughput with metrics off and on, and each scrape.

In one run, on one machine: an etcd and an API server without
``--metrics-port`` (requests are not counted), then the same with it, both
as ``corral up`` runs them and driven by its administrator
(bench/securepath.py), so the scrapes go through TLS, authentication and
RBAC as a Prometheus server's would; the
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
from pathlib import Path

from api_bench import bench_api_creates, machine
from securepath import (
    SECURE,
    Target,
    component_metrics_url,
    secure_api,
    start_component,
)

from corralctl.processes import Etcd, ManagedProcess

Obj = dict[str, object]


def creates(target: Target, count: int, concurrency: int, namespace: str) -> Obj:
    return bench_api_creates(target, concurrency, count, {}, namespace=namespace)


def scrape_cost(client: Target, url: str, repeats: int) -> Obj:
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        size = len(client.get(url))
        times.append(time.perf_counter() - started)
    return {"median_ms": statistics.median(times) * 1000, "bytes": size}


def run_mode(root: Path, metered: bool, count: int, concurrency: int, repeats: int) -> Obj:
    """One etcd and API server, metrics on or off; scrapes too when on."""
    etcd = Etcd(root / "etcd", log_path=root / "etcd.log")
    etcd.start()
    secure = secure_api(root, etcd, metrics=metered)
    started: list[ManagedProcess] = []
    try:
        etcd.wait_ready()
        secure.api.start()
        secure.api.wait_ready()
        result: Obj = {"create": creates(secure.admin, count, concurrency, "bench")}
        if not metered:
            return result
        api_metrics = component_metrics_url(secure, "apiserver")
        result["apiserver"] = scrape_cost(secure.admin, api_metrics, repeats)
        for name, argv in (
            ("controller-manager", ["controlplane", "controller-manager"]),
            ("scheduler", ["scheduler"]),
        ):
            started.append(start_component(secure, name, argv))
            time.sleep(3)  # the informers list the pods first
            url = component_metrics_url(secure, name)
            result[name] = scrape_cost(secure.admin, url, repeats)
        return result
    finally:
        for process in started:
            process.stop()
        secure.api.stop()
        etcd.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer pods, for a smoke run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    count, repeats = (200, 5) if args.quick else (1000, 20)
    results: Obj = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "path": SECURE}
    print(f"path: {SECURE}", flush=True)
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
