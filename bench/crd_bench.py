"""Custom-object creates per second next to Pod creates per second, in the same run.

Starts its own etcd and API server (real processes) in a scratch directory,
the server as ``corral up`` runs it and the bench as its administrator
(bench/securepath.py), defines a CRD whose schema checks types, bounds, a pattern, an enum and
defaults, and then, at each concurrency, creates as many Widgets as Pods
from the same load-generator processes (bench/api_bench.py's fan-out), so
the two rates compare the write paths: a Pod is decoded by its pydantic
model and validated by corral's rules, a Widget is pruned, defaulted and
validated against its openAPIV3Schema (corral/api/crd_schema.py).

    python bench/crd_bench.py            # about a minute on a quiet machine
    python bench/crd_bench.py --quick    # fewer operations, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import orjson

from corral.objects import Obj

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_bench import JSON, fan_out, machine, make_namespace, percentile, pod_body
from securepath import SECURE, Target, secure_api

from corralctl.processes import Etcd

GROUP = "bench.corral.test"

WIDGET_SCHEMA: Obj = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "pattern": "^[a-z0-9./:-]+$", "maxLength": 128},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 100, "default": 1},
                "size": {"type": "string", "enum": ["small", "large"], "default": "small"},
                "port": {"x-kubernetes-int-or-string": True},
                "resources": {
                    "type": "object",
                    "additionalProperties": {"x-kubernetes-int-or-string": True},
                },
                "tags": {"type": "array", "maxItems": 8, "items": {"type": "string"}},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "integer"}}},
    },
}


def crd_body() -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": WIDGET_SCHEMA},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def widget_body(name: str) -> bytes:
    """A Widget about the size of bench/api_bench.py's Pod."""
    return orjson.dumps(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
            "spec": {
                "image": "corral.local/bench/httpd:1.0",
                "port": "http",
                "resources": {"cpu": "100m", "memory": "64Mi"},
                "tags": ["web", "bench"],
            },
        }
    )


def _creates(
    target: Target, collection: str, kind: str, names: list[str], concurrency: int
) -> tuple[list[float], float]:
    """Create ``names`` at ``collection`` with ``concurrency`` workers; a load-generator process."""
    import uvloop

    started_cpu = time.process_time()
    body = widget_body if kind == "Widget" else pod_body

    async def run() -> list[float]:
        latencies: list[float] = []
        async with target.session(concurrency) as session:
            queue = iter(names)

            async def worker() -> None:
                for name in queue:
                    started = time.perf_counter()
                    async with session.post(
                        f"{target.url}{collection}", data=body(name), headers=JSON
                    ) as response:
                        await response.read()
                        if response.status != 201:
                            raise RuntimeError(f"create {kind} {name}: HTTP {response.status}")
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies

    latencies = uvloop.run(run())
    return latencies, time.process_time() - started_cpu


async def define_widgets(target: Target) -> None:
    async with (
        target.session() as session,
        session.post(
            f"{target.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            data=orjson.dumps(crd_body()),
            headers=JSON,
        ) as response,
    ):
        if response.status != 201:
            raise RuntimeError(f"CRD create: HTTP {response.status}: {await response.text()}")


def bench_pair(target: Target, concurrency: int, count: int, servers: dict[str, int]) -> Obj:
    namespace = f"crd-{concurrency}"
    asyncio.run(make_namespace(target, namespace))
    row: Obj = {"clients": concurrency, "creates": count}
    for kind, collection in (
        ("Pod", f"/api/v1/namespaces/{namespace}/pods"),
        ("Widget", f"/apis/{GROUP}/v1/namespaces/{namespace}/widgets"),
    ):
        names = [f"{kind.lower()}{i}" for i in range(count)]
        load = fan_out(_creates, names, concurrency, target, collection, kind, watched=servers)
        row[kind] = {
            "per_second": count / load.elapsed,
            "p50_ms": percentile(load.latencies, 0.50) * 1000,
            "p99_ms": percentile(load.latencies, 0.99) * 1000,
            "apiserver_cpu_us_per_create": load.cpu["apiserver"] / count * 1e6,
        }
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    with tempfile.TemporaryDirectory(prefix="corral-crd-bench-") as scratch:
        root = Path(scratch)
        etcd = Etcd(root / "etcd", log_path=root / "etcd.log")
        etcd.start()
        secure = secure_api(root, etcd)
        api, admin = secure.api, secure.admin
        try:
            etcd.wait_ready()
            api.start()
            api.wait_ready()
            assert api.pid is not None and etcd.pid is not None
            servers = {"apiserver": api.pid, "etcd": etcd.pid}
            asyncio.run(define_widgets(admin))
            results: Obj = {
                "machine": machine(),
                "date": time.strftime("%Y-%m-%d"),
                "path": SECURE,
                "rows": [],
            }
            print(f"path: {SECURE}", flush=True)
            for clients, count in ((1, 1000), (8, 2000), (64, 4000)):
                row = bench_pair(admin, clients, max(int(count * scale), 64), servers)
                results["rows"].append(row)
                pod, widget = row["Pod"], row["Widget"]
                print(
                    f"creates  clients={clients:>2}  pods {pod['per_second']:6.0f}/s "
                    f"p50 {pod['p50_ms']:5.1f} ms p99 {pod['p99_ms']:6.1f} ms "
                    f"({pod['apiserver_cpu_us_per_create']:.0f} µs API CPU) | widgets "
                    f"{widget['per_second']:6.0f}/s p50 {widget['p50_ms']:5.1f} ms "
                    f"p99 {widget['p99_ms']:6.1f} ms "
                    f"({widget['apiserver_cpu_us_per_create']:.0f} µs API CPU) | ratio "
                    f"{widget['per_second'] / pod['per_second']:.2f}",
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
