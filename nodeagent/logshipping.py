"""Ship every container's log lines to the cluster log store (systemd-journal-remote).

Each container's Docker log is followed from where the last shipment ended
and sent, in batches, as the journal export format over HTTP to the store's
``/upload``. Every line becomes one journal entry with its Docker timestamp
and the fields a search needs: ``CORRAL_NAMESPACE``, ``CORRAL_POD``,
``CORRAL_CONTAINER``, ``CORRAL_NODE``, ``CORRAL_POD_UID``,
``CORRAL_RESTART_COUNT`` and one ``CORRAL_LABEL=key=value`` per pod label
(the journal keeps repeated fields, so a label is one exact match).

Where a container's shipment got to is kept on disk (one small file per
container), so a restarted agent neither re-sends nor skips lines. Docker
keeps the lines on the node while the store is unreachable (within its
rotation limits); the shipper retries with jittered back-off meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import aiohttp

from nodeagent.runtime.base import ContainerRecord

log = logging.getLogger(__name__)

EXPORT_CONTENT_TYPE = "application/vnd.fdo.journal"
_TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


class LogSource(Protocol):
    async def list_containers(self, node: str) -> list[ContainerRecord]: ...

    def logs(
        self,
        container_id: str,
        *,
        follow: bool,
        tail: int | None,
        since: datetime | None,
        timestamps: bool,
    ) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True)
class ShippingOptions:
    scan_seconds: float = 2.0  # how often new containers are looked for
    batch_seconds: float = 0.5  # the longest a line waits to be sent
    batch_bytes: int = 256 * 1024
    retry_cap_seconds: float = 10.0
    request_timeout_seconds: float = 10.0


def parse_docker_line(line: bytes) -> tuple[int, bytes] | None:
    """``2026-12-07T06:31:40.123456789Z text`` -> (ns since the epoch, text)."""
    stamp, _, text = line.partition(b" ")
    match = _TIMESTAMP.match(stamp)
    if match is None:
        return None
    whole = datetime.strptime(match.group(1).decode(), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    fraction = (match.group(2) or b"").ljust(9, b"0")
    return int(whole.timestamp()) * 1_000_000_000 + int(fraction), text


def export_field(name: str, value: bytes) -> bytes:
    """One field in the journal export format; binary-safe when the value has a newline."""
    if b"\n" in value:
        return name.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return name.encode() + b"=" + value + b"\n"


def entry_fields(record: ContainerRecord, node: str, labels: Mapping[str, str]) -> bytes:
    """The fields every line of this container carries, encoded once."""
    fields = [
        export_field("_HOSTNAME", node.encode()),
        export_field("SYSLOG_IDENTIFIER", record.name.encode()),
        export_field("CORRAL_NODE", node.encode()),
        export_field("CORRAL_NAMESPACE", record.pod_namespace.encode()),
        export_field("CORRAL_POD", record.pod_name.encode()),
        export_field("CORRAL_POD_UID", record.pod_uid.encode()),
        export_field("CORRAL_CONTAINER", record.name.encode()),
        export_field("CORRAL_CONTAINER_ID", record.id.encode()),
        export_field("CORRAL_RESTART_COUNT", str(record.restart_count).encode()),
    ]
    fields += [export_field("CORRAL_LABEL", f"{k}={v}".encode()) for k, v in labels.items()]
    return b"".join(fields)


def export_entry(common: bytes, ns: int, text: bytes) -> bytes:
    return (
        export_field("__REALTIME_TIMESTAMP", str(ns // 1000).encode())
        + common
        + export_field("MESSAGE", text)
        + b"\n"
    )


class Cursors:
    """The last shipped timestamp (ns) per container, one file each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, container_id: str) -> int:
        try:
            return int((self.directory / container_id).read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def save(self, container_id: str, ns: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{container_id}.tmp"
        temporary.write_text(str(ns))
        temporary.replace(self.directory / container_id)

    def forget_all_but(self, kept: set[str]) -> None:
        with contextlib.suppress(OSError):
            for path in self.directory.iterdir():
                if not path.name.startswith(".") and path.name not in kept:
                    path.unlink(missing_ok=True)


class ClientTLS:
    """The node's client certificate for the store, reloaded when the agent renews it."""

    def __init__(self, ca_file: Path | None, cert: Path, key: Path) -> None:
        self.ca_file, self.cert, self.key = ca_file, cert, key
        self._loaded: tuple[float, ssl.SSLContext] | None = None

    def __call__(self) -> ssl.SSLContext:
        changed = self.cert.stat().st_mtime
        if self._loaded is None or self._loaded[0] != changed:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            context.load_cert_chain(self.cert, self.key)
            self._loaded = (changed, context)
        return self._loaded[1]


class LogShipper:
    def __init__(
        self,
        store_url: str,
        source: LogSource,
        node: str,
        labels_of: Callable[[str], Mapping[str, str]],
        state_dir: Path,
        options: ShippingOptions | None = None,
        tls: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.upload_url = store_url.rstrip("/") + "/upload"
        self.source = source
        self.node = node
        self.labels_of = labels_of
        self.cursors = Cursors(state_dir)
        self.options = options or ShippingOptions()
        self.tls = tls
        self._following: dict[str, asyncio.Task[None]] = {}
        self._finished: set[str] = set()
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Ship until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.options.request_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            try:
                while True:
                    await self._scan()
                    await asyncio.sleep(self.options.scan_seconds)
            finally:
                tasks = list(self._following.values())
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _scan(self) -> None:
        try:
            records = await self.source.list_containers(self.node)
        except Exception as error:
            log.info("log shipping: cannot list containers: %s", error)
            return
        present = {r.id for r in records if r.role != "sandbox"}
        for record in records:
            if record.role == "sandbox" or record.id in self._following:
                continue
            if record.id in self._finished:
                continue
            task = asyncio.create_task(self._follow(record), name=f"ship-{record.id[:12]}")
            self._following[record.id] = task
        # Removed containers: their lines were shipped (or are gone with them).
        self._finished &= present
        if records:
            self.cursors.forget_all_but(present)

    async def _follow(self, record: ContainerRecord) -> None:
        try:
            await self._ship_container(record)
            self._finished.add(record.id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # Followed again at the next scan, from its cursor.
            log.warning("log shipping of %s failed: %r", record.id[:12], error)
        finally:
            self._following.pop(record.id, None)

    async def _ship_container(self, record: ContainerRecord) -> None:
        cursor = self.cursors.load(record.id)
        # Docker's since is in whole seconds: lines of the cursor's second
        # come again and are dropped below by their full timestamp.
        since = datetime.fromtimestamp(cursor // 1_000_000_000, UTC) if cursor else None
        common = entry_fields(record, self.node, self.labels_of(record.pod_uid))
        lines: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1024)
        reader = asyncio.create_task(self._read_lines(record.id, since, lines))
        batch: list[bytes] = []
        size, last = 0, cursor
        loop = asyncio.get_running_loop()
        first_at = 0.0
        try:
            while True:
                try:
                    line = await asyncio.wait_for(lines.get(), self.options.batch_seconds)
                except TimeoutError:
                    line = b""
                if line is None:
                    break
                parsed = parse_docker_line(line) if line else None
                if parsed is not None and parsed[0] > last:
                    first_at = first_at if batch else loop.time()
                    batch.append(export_entry(common, *parsed))
                    size += len(batch[-1])
                    last = parsed[0]
                due = loop.time() - first_at >= self.options.batch_seconds
                if batch and (not line or due or size >= self.options.batch_bytes):
                    await self._send(b"".join(batch))
                    self.cursors.save(record.id, last)
                    batch, size = [], 0
            if batch:
                await self._send(b"".join(batch))
                self.cursors.save(record.id, last)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read_lines(
        self, container_id: str, since: datetime | None, out: asyncio.Queue[bytes | None]
    ) -> None:
        pending = b""
        try:
            stream = self.source.logs(
                container_id, follow=True, tail=None, since=since, timestamps=True
            )
            async for chunk in stream:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    await out.put(line)
            if pending:
                await out.put(pending)
        finally:
            await out.put(None)

    async def _send(self, body: bytes) -> None:
        """POST one batch; retried with jittered back-off until the store takes it."""
        assert self._session is not None
        delay = 0.5
        while True:
            try:
                async with self._session.post(
                    self.upload_url,
                    data=body,
                    headers={"Content-Type": EXPORT_CONTENT_TYPE},
                    ssl=self.tls() if self.tls is not None else True,
                ) as response:
                    if response.status < 300:
                        return
                    problem = f"HTTP {response.status}: {(await response.text())[:200]}"
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                problem = str(error) or type(error).__name__
            log.info("log store refused a batch (%s); retrying in %.1fs", problem, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, self.options.retry_cap_seconds)
