"""The hollow runtime: containers that exist only in memory, for scale tests.

Named after Kubernetes' kubemark "hollow" nodes: an agent on this runtime
registers, heartbeats, follows its pods and reports them Running and Ready
exactly as a real one does, but starts nothing, so hundreds of agents fit in
one process for scheduler and controller benchmarks. Nothing else uses it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from nodeagent.runtime.base import (
    LABEL_CONTAINER,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerRecord,
    ImageAuth,
)
from nodeagent.usage import Counters

_ids = itertools.count(1)


class HollowRuntime:
    name = "hollow"

    def __init__(self, node: str) -> None:
        self.node = node
        self.containers: dict[str, ContainerRecord] = {}
        # Each container's CPU request and memory limit, which its synthetic usage follows.
        self._shapes: dict[str, tuple[int | None, int | None]] = {}
        self._closed = asyncio.Event()
        self.started = time.monotonic()

    async def version(self) -> str:
        return "hollow://0"

    async def ping(self) -> None:
        return None

    async def image_present(self, image: str) -> bool:
        return True

    async def image_user(self, image: str) -> str:
        return ""

    async def pull(self, image: str, auth: ImageAuth | None) -> str:
        return f"sha256:hollow-{image}"

    def _new(self, config: ContainerConfig, state: str) -> ContainerRecord:
        now = datetime.now(UTC)
        record = ContainerRecord(
            id=f"hollow-{next(_ids):012d}",
            name=config.name,
            role=config.role,
            pod_uid=config.pod_uid,
            pod_name=config.pod_name,
            pod_namespace=config.pod_namespace,
            state=state,  # type: ignore[arg-type]
            image=config.image,
            image_id=f"sha256:hollow-{config.image}",
            created_at=now,
            started_at=now if state == "running" else None,
            restart_count=config.restart_count,
            spec_hash=config.spec_hash,
            labels={LABEL_POD_UID: config.pod_uid, LABEL_CONTAINER: config.name},
        )
        self.containers[record.id] = record
        self._shapes[record.id] = (config.cpu_request_milli, config.memory_limit_bytes)
        return record

    async def run_sandbox(self, config: ContainerConfig) -> ContainerRecord:
        return self._new(config, "running")

    async def create(self, config: ContainerConfig, sandbox: ContainerRecord) -> ContainerRecord:
        return self._new(config, "created")

    async def start(self, container_id: str) -> None:
        record = self.containers[container_id]
        record.state = "running"
        record.started_at = datetime.now(UTC)

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        record = self.containers.get(container_id)
        if record is not None and record.state == "running":
            record.state = "exited"
            record.exit_code = 0
            record.finished_at = datetime.now(UTC)

    async def remove(self, container_id: str) -> None:
        self.containers.pop(container_id, None)
        self._shapes.pop(container_id, None)

    def usage_counters(self) -> HollowCounters:
        """Synthetic resource usage (nodeagent.usage): hollow containers use nothing real."""
        return HollowCounters(self)

    async def inspect(self, container_id: str) -> ContainerRecord | None:
        return self.containers.get(container_id)

    async def list_containers(self, node: str) -> list[ContainerRecord]:
        return list(self.containers.values())

    async def netns_path(self, sandbox: ContainerRecord) -> str:
        return ""

    async def logs(
        self,
        container_id: str,
        *,
        follow: bool,
        tail: int | None,
        since: datetime | None,
        timestamps: bool,
    ) -> AsyncIterator[bytes]:
        if False:  # pragma: no cover - an async generator that yields nothing
            yield b""

    async def exec(
        self, container_id: str, command: list[str], *, timeout: float
    ) -> tuple[int, bytes]:
        return 0, b""

    async def exec_stream(
        self, container_id: str, command: list[str], *, tty: bool, stdin: bool
    ) -> Any:
        raise NotImplementedError("hollow containers cannot be exec'd into")

    async def events(self) -> AsyncIterator[str]:
        await self._closed.wait()
        if False:  # pragma: no cover
            yield ""

    async def close(self) -> None:
        self._closed.set()


# A hollow node's own overhead, beside its pods: a small agent-sized machine.
_NODE_BASE_MILLI = 50
_NODE_BASE_BYTES = 256 * 1024 * 1024
_DEFAULT_MEMORY = 16 * 1024 * 1024


class HollowCounters:
    """Counters that grow as if each container used a steady share of a core.

    A container uses its CPU request (10m without one, plus up to 9m that
    differs per container so pods do not all look alike) and a quarter of its
    memory limit (16 MiB without one); the node uses the sum plus a base.
    """

    def __init__(self, runtime: HollowRuntime) -> None:
        self.runtime = runtime

    def _rates(self, record: ContainerRecord) -> tuple[int, int]:
        request, limit = self.runtime._shapes.get(record.id, (None, None))
        milli = request if request else 10 + int(record.id[-3:]) % 10
        memory = limit // 4 if limit else _DEFAULT_MEMORY
        return milli, memory

    def _cpu_ns(self, record: ContainerRecord, milli: int) -> int:
        if record.started_at is None:
            return 0
        seconds = (datetime.now(UTC) - record.started_at).total_seconds()
        return int(seconds * milli * 1_000_000)

    async def containers(self, records: list[ContainerRecord]) -> dict[str, Counters]:
        found = {}
        for record in records:
            milli, memory = self._rates(record)
            found[record.id] = Counters(self._cpu_ns(record, milli), memory)
        return found

    async def node(self) -> Counters:
        running = [r for r in self.runtime.containers.values() if r.state == "running"]
        cpu_ns = memory = 0
        for record in running:
            milli, used = self._rates(record)
            cpu_ns += self._cpu_ns(record, milli)
            memory += used
        uptime = time.monotonic() - self.runtime.started
        return Counters(
            cpu_ns + int(uptime * _NODE_BASE_MILLI * 1_000_000), memory + _NODE_BASE_BYTES
        )
