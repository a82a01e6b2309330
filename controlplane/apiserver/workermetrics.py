"""One /metrics for an API server of N workers, each series labelled by its worker.

Only worker 0 listens on ``--metrics-port`` (a port cannot be served by
several processes that each hold different figures). Each other worker
serves its own exposition on a Unix socket in a directory only the
supervisor's user can enter; when scraped, worker 0 reads every worker's
exposition, adds a ``worker`` label to each sample (its own as "0") and
serves the union, so ``sum by (code) (rate(apiserver_request_total[5m]))``
counts every request once, as it would across kube-apiserver replicas
labelled by ``instance``. ``apiserver_worker_up`` says which workers
answered the scrape: a worker that is down or restarting is missing for
that scrape, never blocking it.

prometheus_client's multiprocess mode was the library's answer, and was
weighed against this (docs/decisions.md): it cannot carry the gauges read
at scrape time (in-flight requests, watch-cache sizes), drops the process
and Python collectors, and takes a lock and an mmap write per observation
on the request path. Here the request path is unchanged, and the cost is
paid per scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import prometheus_client
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger(__name__)

WORKER_LABEL = "worker"
# A worker's exposition is tens of KB; one of many CRDs and verbs, a few MB.
MAX_EXPOSITION_BYTES = 32 * 1024 * 1024
PEER_TIMEOUT_SECONDS = 2.0


def peer_socket(directory: str, index: int) -> str:
    return str(Path(directory) / f"worker-{index}.sock")


class PeerMetricsServer:
    """A worker's own exposition on a Unix socket, for worker 0 to read when scraped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        # A worker restarted after a crash finds its predecessor's socket file.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._answer, path=self.path)
        os.chmod(self.path, 0o600)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(prometheus_client.generate_latest())
            await writer.drain()
        except OSError as error:
            log.debug("metrics peer went away: %s", error)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def read_peer(path: str, timeout: float = PEER_TIMEOUT_SECONDS) -> str | None:
    """A worker's exposition, or None when it does not answer in time."""

    async def read() -> bytes:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            # read(n) returns what has arrived, not the whole answer: read to EOF.
            chunks: list[bytes] = []
            size = 0
            while chunk := await reader.read(1 << 16):
                size += len(chunk)
                if size > MAX_EXPOSITION_BYTES:
                    raise OSError(f"over {MAX_EXPOSITION_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        data = await asyncio.wait_for(read(), timeout)
    except (OSError, TimeoutError) as error:
        log.debug("metrics of the worker at %s: %s", path, error)
        return None
    return data.decode("utf-8", errors="replace")


def _parse(worker: str, text: str | None) -> list[Metric] | None:
    """A worker's families, or None when it did not answer or answered garbage."""
    if text is None:
        return None
    try:
        return list(text_string_to_metric_families(text))
    except ValueError as error:
        log.warning("metrics of worker %s could not be parsed: %s", worker, error)
        return None


class _Merged(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge(expositions: Sequence[tuple[str, str | None]]) -> bytes:
    """The union of ``(worker, exposition or None)``, each sample labelled by its worker."""
    families: dict[str, Metric] = {}
    up = GaugeMetricFamily(
        "apiserver_worker_up",
        "Whether this API server worker answered the scrape (1) or not (0).",
        labels=[WORKER_LABEL],
    )
    for worker, text in expositions:
        parsed = _parse(worker, text)
        up.add_metric([worker], 0.0 if parsed is None else 1.0)
        for family in parsed or ():
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                merged.samples.append(
                    sample._replace(labels={**sample.labels, WORKER_LABEL: worker})
                )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged([*families.values(), up]))
    return prometheus_client.generate_latest(registry)


async def gather(peers: Sequence[str], timeout: float = PEER_TIMEOUT_SECONDS) -> bytes:
    """Worker 0's exposition and every other worker's (``peers[i]`` is worker i+1's socket)."""
    own = prometheus_client.generate_latest().decode()
    others = await asyncio.gather(*(read_peer(path, timeout) for path in peers))
    return merge([("0", own), *((str(i), text) for i, text in enumerate(others, start=1))])
