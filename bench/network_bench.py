"""Node network benchmark: pod network setup latency, and Service rule programming at scale.

Everything runs inside network namespaces this script creates (a simulated
host on a test underlay, and plain namespaces standing in for pods) and
removes again; nothing touches the machine's own network.

- attach: ``NodeNetwork.attach`` for 200 pods, one after another (veth pair
  into the pod's namespace, bridge port, address, routes, IPAM on disk); then
  ``detach`` for each;
- Services: one ``ServiceProxy.sync`` installing 1,000 Services x 3
  endpoints (every 10th a NodePort, every 7th with ClientIP affinity), then
  single-endpoint changes in that set, each timed from the sync call to nft's
  committed transaction.

    python bench/network_bench.py [--pods 200] [--services 1000] [--changes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nodeagent.network import NetworkConfig, NodeNetwork, ServiceProxy
from nodeagent.network.testbed import add_netns, cleanup, create_hosts, delete_netns, namespaces

PREFIX = "crl-bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<38} n={len(ms):<4} p50 {percentile(ms, 0.5):7.1f} ms   "
        f"p99 {percentile(ms, 0.99):7.1f} ms   max {max(ms):7.1f} ms"
    )


def objects(count: int, endpoints: int) -> tuple[list[Any], list[Any]]:
    services, endpoint_objects = [], []
    for n in range(count):
        name = f"svc-{n}"
        node_port = n % 10 == 0
        services.append(
            {
                "metadata": {"namespace": "bench", "name": name},
                "spec": {
                    "clusterIP": f"10.96.{n // 250}.{n % 250 + 1}",
                    "type": "NodePort" if node_port else "ClusterIP",
                    "sessionAffinity": "ClientIP" if n % 7 == 0 else "None",
                    "ports": [
                        {
                            "name": "http",
                            "port": 80,
                            "protocol": "TCP",
                            **({"nodePort": 30000 + n} if node_port else {}),
                        }
                    ],
                },
            }
        )
        endpoint_objects.append(
            {
                "metadata": {"namespace": "bench", "name": name},
                "subsets": [
                    {
                        "addresses": [
                            {"ip": f"10.244.{k}.{n % 250 + 2}"} for k in range(endpoints)
                        ],
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                    }
                ],
            }
        )
    return services, endpoint_objects


async def bench_attach(net: NodeNetwork, pods: int) -> None:
    paths = [await add_netns(f"{PREFIX}-pod-{n}") for n in range(pods)]
    attach, detach = [], []
    for n, path in enumerate(paths):
        started = time.perf_counter()
        await net.attach(f"bench-pod-{n}", path)
        attach.append(time.perf_counter() - started)
    for n in range(pods):
        started = time.perf_counter()
        await net.detach(f"bench-pod-{n}")
        detach.append(time.perf_counter() - started)
    print(summary("attach (pod network setup)", attach))
    print(summary("detach", detach))


async def bench_services(proxy: ServiceProxy, count: int, changes: int, node_ip: str) -> None:
    services, endpoints = objects(count, 3)
    started = time.perf_counter()
    result = await proxy.sync(services, endpoints, [node_ip])
    full = time.perf_counter() - started
    print(
        f"full sync, {count} Services x 3 endpoints   {full * 1000:7.1f} ms "
        f"({result.commands} nft commands, one transaction)"
    )
    started = time.perf_counter()
    await proxy.sync(services, endpoints, [node_ip])
    print(
        f"no-op sync (render and compare only)     {(time.perf_counter() - started) * 1000:7.1f} ms"
    )
    timings = []
    for n in range(changes):
        target = endpoints[(n * 37) % count]["subsets"][0]["addresses"]
        if n % 2 == 0:
            target.pop()
        else:
            target.append({"ip": f"10.244.9.{n % 250 + 2}"})
        started = time.perf_counter()
        result = await proxy.sync(services, endpoints, [node_ip])
        timings.append(time.perf_counter() - started)
        assert not result.full
    print(summary(f"one endpoint change at {count} Services", timings))
    await proxy.resync()
    started = time.perf_counter()
    await proxy.sync(services, endpoints, [node_ip])
    print(
        f"full resync over an existing table       {(time.perf_counter() - started) * 1000:7.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    before = namespaces()
    await cleanup(prefix=PREFIX)
    bed = await create_hosts(1, PREFIX)
    try:
        with tempfile.TemporaryDirectory() as state:
            host = bed.hosts[0]
            config = NetworkConfig(
                host_netns=host.name,
                pod_cidr="10.244.0.0/23" if args.pods > 250 else "10.244.0.0/24",
                state_dir=Path(state),
                node_ip=host.ip,
            )
            net = NodeNetwork(config)
            await net.setup()
            await bench_attach(net, args.pods)
            await bench_services(ServiceProxy(config), args.services, args.changes, host.ip)
            net.close()
    finally:
        for name in namespaces() - before:
            if name.startswith(f"{PREFIX}-"):
                await delete_netns(name)
        await cleanup(bed, PREFIX)


if __name__ == "__main__":
    asyncio.run(main())
