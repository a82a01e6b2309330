"""Resource usage: what each container and the node use, for metrics.k8s.io.

The kubelet's resource metrics come from cAdvisor: cumulative CPU time and
the memory working set (usage minus inactive file pages) of each container's
cgroup. This module reads the same counters (cgroup v2, or v1's cpuacct and
memory controllers, found through the container's main process; Docker's
stats API when those files are out of reach) and turns two cumulative CPU
readings into a rate, as metrics-server does. A runtime with a
``usage_counters`` method of its own (the hollow one) supplies synthetic
counters instead.

One report per node per interval goes to the control plane over the agent's
existing gRPC channel; the API server keeps it in memory only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from corral.clock import Clock
from corral.proto import agent_pb2 as pb
from nodeagent.runtime.base import ContainerRecord

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")
_USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Counters:
    """One reading: cumulative CPU time and the working set at that moment."""

    cpu_ns: int
    memory_bytes: int


class CounterSource(Protocol):
    async def node(self) -> Counters: ...

    async def containers(self, records: list[ContainerRecord]) -> dict[str, Counters]:
        """Counters of the running containers given, by container id (missing when unknown)."""
        ...


# --- reading cgroup and /proc files -----------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _stat_field(text: str, name: str) -> int | None:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return None


def working_set(usage: int, memory_stat: str, inactive_key: str) -> int:
    """cAdvisor's working set: usage less the inactive file pages, never below zero."""
    inactive = _stat_field(memory_stat, inactive_key) or 0
    return max(usage - inactive, 0)


def cgroup_paths(proc_cgroup: str) -> dict[str, str]:
    """``/proc/PID/cgroup`` as controller -> path; the v2 hierarchy is under ``""``."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers = parts[1].split(",") if parts[1] else [""]
        for controller in controllers:
            paths[controller] = parts[2]
    return paths


def read_cgroup(pid: int, root: Path = CGROUP_ROOT, proc: Path = PROC) -> Counters | None:
    """The counters of the cgroup process ``pid`` is in, or None when they cannot be read."""
    text = _read(proc / str(pid) / "cgroup")
    if text is None:
        return None
    paths = cgroup_paths(text)
    if "cpuacct" in paths and "memory" in paths:
        return _read_v1(root, paths["cpuacct"], paths["memory"])
    if "" in paths:
        return _read_v2(root / paths[""].lstrip("/"))
    return None


def _read_v2(directory: Path) -> Counters | None:
    cpu_stat = _read(directory / "cpu.stat")
    current = _read(directory / "memory.current")
    memory_stat = _read(directory / "memory.stat")
    if cpu_stat is None or current is None or memory_stat is None:
        return None
    usage_usec = _stat_field(cpu_stat, "usage_usec")
    if usage_usec is None:
        return None
    memory = working_set(int(current), memory_stat, "inactive_file")
    return Counters(usage_usec * 1000, memory)


def _read_v1(root: Path, cpuacct: str, memory: str) -> Counters | None:
    cpu = _read(root / "cpuacct" / cpuacct.lstrip("/") / "cpuacct.usage")
    memory_dir = root / "memory" / memory.lstrip("/")
    usage = _read(memory_dir / "memory.usage_in_bytes")
    memory_stat = _read(memory_dir / "memory.stat")
    if cpu is None or usage is None or memory_stat is None:
        return None
    return Counters(int(cpu), working_set(int(usage), memory_stat, "total_inactive_file"))


def read_node(proc: Path = PROC) -> Counters:
    """The whole machine: busy CPU time from /proc/stat, MemTotal - MemAvailable."""
    stat = _read(proc / "stat") or ""
    busy_ticks = 0
    for line in stat.splitlines():
        if line.startswith("cpu "):
            # user nice system idle iowait irq softirq steal: all but idle and iowait.
            fields = [int(f) for f in line.split()[1:9]]
            busy_ticks = sum(fields) - fields[3] - fields[4]
            break
    meminfo = {}
    for line in (_read(proc / "meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        value = rest.split()
        if value:
            meminfo[key] = int(value[0]) * 1024
    memory = meminfo.get("MemTotal", 0) - meminfo.get("MemAvailable", 0)
    return Counters(busy_ticks * 1_000_000_000 // _USER_HZ, max(memory, 0))


def counters_from_docker_stats(stats: dict[str, Any]) -> Counters | None:
    """Counters from one Docker stats reading (``one-shot``: no averaging by Docker)."""
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    memory_stats = stats.get("memory_stats") or {}
    if cpu is None or "usage" not in memory_stats:
        return None
    inner = memory_stats.get("stats") or {}
    inactive = inner.get("inactive_file", inner.get("total_inactive_file", 0))
    return Counters(int(cpu), max(int(memory_stats["usage"]) - int(inactive), 0))


class HostCounters:
    """Counters from this machine's cgroup files, or the runtime's stats where unreadable."""

    def __init__(
        self,
        stats: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None,
        *,
        cgroup_root: Path = CGROUP_ROOT,
        proc: Path = PROC,
    ) -> None:
        self.stats = stats
        self.cgroup_root = cgroup_root
        self.proc = proc

    async def node(self) -> Counters:
        return read_node(self.proc)

    async def containers(self, records: list[ContainerRecord]) -> dict[str, Counters]:
        found: dict[str, Counters] = {}
        for record in records:
            counters = read_cgroup(record.pid, self.cgroup_root, self.proc) if record.pid else None
            if counters is None and self.stats is not None:
                counters = await self._from_stats(record.id)
            if counters is not None:
                found[record.id] = counters
        return found

    async def _from_stats(self, container_id: str) -> Counters | None:
        assert self.stats is not None
        try:
            reading = await self.stats(container_id)
        except Exception as error:  # the container may be gone; the next round retries
            log.debug("no stats for %s: %s", container_id, error)
            return None
        return counters_from_docker_stats(reading) if reading else None


def counter_source(runtime: Any) -> CounterSource:
    """The runtime's own counters if it has them (hollow), else the host's."""
    if hasattr(runtime, "usage_counters"):
        source: CounterSource = runtime.usage_counters()
        return source
    return HostCounters(getattr(runtime, "container_stats", None))


# --- rates ------------------------------------------------------------------------------------


def cpu_rate(before: Counters, after: Counters, seconds: float) -> int:
    """Nanocores over the window; a counter that went backwards (a restart) reads 0."""
    if seconds <= 0 or after.cpu_ns < before.cpu_ns:
        return 0
    return int((after.cpu_ns - before.cpu_ns) / seconds)


@dataclass
class _Reading:
    at: float  # monotonic seconds
    node: Counters
    containers: dict[str, Counters]


def build_report(
    node_name: str,
    wall_time: float,
    previous: _Reading,
    current: _Reading,
    records: dict[str, ContainerRecord],
) -> Any:
    """A UsageReport of the rates between two readings (containers seen in both only)."""
    window = current.at - previous.at
    pods: dict[tuple[str, str], Any] = {}
    for container_id, after in sorted(current.containers.items()):
        before = previous.containers.get(container_id)
        record = records.get(container_id)
        if before is None or record is None or not record.pod_name:
            continue
        key = (record.pod_namespace, record.pod_name)
        pod = pods.get(key)
        if pod is None:
            pod = pods[key] = pb.PodUsage(namespace=key[0], name=key[1])
        pod.containers.append(
            pb.ContainerUsage(
                name=record.name,
                cpu_nanocores=cpu_rate(before, after, window),
                memory_bytes=after.memory_bytes,
            )
        )
    return pb.UsageReport(
        node_name=node_name,
        timestamp=wall_time,
        window_seconds=window,
        cpu_nanocores=cpu_rate(previous.node, current.node, window),
        memory_bytes=current.node.memory_bytes,
        pods=list(pods.values()),
    )


class UsageSampler:
    """Samples every ``interval`` seconds and sends each window's rates with ``send``."""

    def __init__(
        self,
        node_name: str,
        list_containers: Callable[[], Awaitable[list[ContainerRecord]]],
        source: CounterSource,
        send: Callable[[Any], Awaitable[None]],
        clock: Clock,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.node_name = node_name
        self.list_containers = list_containers
        self.source = source
        self.send = send
        self.clock = clock
        self.interval = interval
        self._previous: _Reading | None = None

    async def sample_once(self) -> Any | None:
        """Read the counters; the report for the window since the last reading, if any."""
        records = {
            r.id: r
            for r in await self.list_containers()
            if r.state == "running" and r.role != "sandbox"
        }
        containers = await self.source.containers(list(records.values()))
        current = _Reading(self.clock.monotonic(), await self.source.node(), containers)
        previous, self._previous = self._previous, current
        if previous is None or current.at <= previous.at:
            return None
        return build_report(
            self.node_name, self.clock.now().timestamp(), previous, current, records
        )

    async def run(self) -> None:
        """Until cancelled: a failed round is logged and the next one starts afresh."""
        while True:
            try:
                report = await self.sample_once()
                if report is not None:
                    await self.send(report)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("resource usage not reported: %s", error)
            # Jitter keeps a fleet of agents from reporting in lockstep.
            await self.clock.sleep(self.interval * random.uniform(0.9, 1.1))


def sampler_for(
    node_name: str, runtime: Any, control: Any, clock: Clock, interval: float = DEFAULT_INTERVAL
) -> UsageSampler:
    """The agent's sampler: its runtime's containers, reported over its NodeControl stub."""

    async def send(report: Any) -> None:
        await control.ReportUsage(report, timeout=10)

    async def containers() -> list[ContainerRecord]:
        records: list[ContainerRecord] = await runtime.list_containers(node_name)
        return records

    return UsageSampler(node_name, containers, counter_source(runtime), send, clock, interval)
