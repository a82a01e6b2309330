"""nodeagent.usage: reading cgroup v1/v2 and /proc files, rates, and the reports sent."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from corral.clock import ManualClock
from nodeagent.runtime.base import ContainerRecord
from nodeagent.usage import (
    Counters,
    HostCounters,
    UsageSampler,
    counters_from_docker_stats,
    cpu_rate,
    read_cgroup,
    read_node,
)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cgroup_v2_counters_come_from_cpu_stat_and_memory_less_inactive_file(
    tmp_path: Path,
) -> None:
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    _write(proc, {"42/cgroup": "0::/system.slice/docker-abc.scope\n"})
    _write(
        cgroup / "system.slice/docker-abc.scope",
        {
            "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
            "memory.current": "10485760\n",
            "memory.stat": "anon 4194304\nfile 6291456\ninactive_file 2097152\n",
        },
    )
    assert read_cgroup(42, cgroup, proc) == Counters(1_500_000_000, 10485760 - 2097152)


def test_cgroup_v1_counters_come_from_cpuacct_and_the_memory_controller(tmp_path: Path) -> None:
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    _write(
        proc,
        {"7/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"},
    )
    _write(
        cgroup,
        {
            "cpuacct/docker/abc/cpuacct.usage": "2500000000\n",
            "memory/docker/abc/memory.usage_in_bytes": "8388608\n",
            "memory/docker/abc/memory.stat": "cache 100\ntotal_inactive_file 1048576\n",
        },
    )
    assert read_cgroup(7, cgroup, proc) == Counters(2_500_000_000, 8388608 - 1048576)


def test_an_unreadable_cgroup_falls_back_to_the_runtime_stats(tmp_path: Path) -> None:
    asked: list[str] = []

    async def stats(container_id: str) -> dict[str, object]:
        asked.append(container_id)
        return {
            "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000}},
            "memory_stats": {"usage": 5_000_000, "stats": {"inactive_file": 1_000_000}},
        }

    source = HostCounters(stats, cgroup_root=tmp_path, proc=tmp_path)
    record = _record("c1", "web", pid=99)
    found = asyncio.run(source.containers([record]))
    assert asked == ["c1"]
    assert found == {"c1": Counters(3_000_000_000, 4_000_000)}


def test_docker_stats_without_figures_give_nothing() -> None:
    assert counters_from_docker_stats({"cpu_stats": {}, "memory_stats": {}}) is None


def test_node_counters_are_busy_ticks_and_memory_in_use(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "stat": "cpu  100 0 50 1000 20 5 5 0 0 0\ncpu0 100 0 50 1000 20 5 5 0 0 0\n",
            "meminfo": "MemTotal:  2048 kB\nMemFree: 512 kB\nMemAvailable:  1024 kB\n",
        },
    )
    counters = read_node(tmp_path)
    assert counters.memory_bytes == 1024 * 1024
    # user + nice + system + irq + softirq + steal = 160 ticks of 1/USER_HZ s.
    assert counters.cpu_ns == 160 * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def test_rates_are_per_second_and_a_reset_counter_reads_zero() -> None:
    assert cpu_rate(Counters(0, 0), Counters(5_000_000_000, 0), 10.0) == 500_000_000
    assert cpu_rate(Counters(9, 0), Counters(1, 0), 10.0) == 0
    assert cpu_rate(Counters(0, 0), Counters(1, 0), 0.0) == 0


def _record(cid: str, name: str, *, pid: int = 0, role: str = "app") -> ContainerRecord:
    return ContainerRecord(
        id=cid,
        name=name,
        role=role,  # type: ignore[arg-type]
        pod_uid="uid-1",
        pod_name="web-1",
        pod_namespace="shop",
        state="running",
        image="busybox",
        pid=pid,
    )


class _Counting:
    """Each container burns half a core; the node a whole one; memory is fixed."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    async def node(self) -> Counters:
        return Counters(int(self.clock.monotonic() * 1e9), 1 << 30)

    async def containers(self, records: list[ContainerRecord]) -> dict[str, Counters]:
        return {r.id: Counters(int(self.clock.monotonic() * 5e8), 64 << 20) for r in records}


async def test_the_sampler_reports_rates_per_pod_from_the_second_reading_on() -> None:
    clock = ManualClock()
    records = [_record("c1", "web"), _record("c2", "sidecar"), _record("s", "POD", role="sandbox")]
    sent = []

    async def containers() -> list[ContainerRecord]:
        return records

    async def send(report: object) -> None:
        sent.append(report)

    sampler = UsageSampler("n1", containers, _Counting(clock), send, clock, interval=10)
    assert await sampler.sample_once() is None  # one reading is no rate yet
    clock.advance(10)
    report = await sampler.sample_once()
    assert report.node_name == "n1"
    assert report.window_seconds == 10
    assert report.cpu_nanocores == 1_000_000_000
    assert report.memory_bytes == 1 << 30
    (pod,) = report.pods
    assert (pod.namespace, pod.name) == ("shop", "web-1")
    # The sandbox is no container of the pod's as metrics.k8s.io counts them.
    assert [(c.name, c.cpu_nanocores, c.memory_bytes) for c in pod.containers] == [
        ("web", 500_000_000, 64 << 20),
        ("sidecar", 500_000_000, 64 << 20),
    ]
