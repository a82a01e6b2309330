"""The hollow runtime: containers that exist only in memory, for scale tests.

Named after Kubernetes' kubemark "hollow" nodes: an agent on this runtime
registers, heartbeats, follows its pods and reports them Running and Ready
exactly as a real one does, but starts nothing, so hundreds of agents fit in
one process for scheduler and controller benchmarks. Nothing else uses it.
"""

from __future__ import annotations

import asyncio
import itertools
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

_ids = itertools.count(1)


class HollowRuntime:
    name = "hollow"

    def __init__(self, node: str) -> None:
        self.node = node
        self.containers: dict[str, ContainerRecord] = {}
        self._closed = asyncio.Event()

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
