"""One /metrics for N API server workers: the merge of their expositions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from controlplane.apiserver.workermetrics import (
    PeerMetricsServer,
    merge,
    peer_socket,
    read_peer,
)


def exposition(requests: int, inflight: float, latencies: list[float]) -> str:
    registry = CollectorRegistry()
    counter = Counter("apiserver_request", "Requests.", ["verb", "code"], registry=registry)
    counter.labels("GET", "200").inc(requests)
    gauge = Gauge("apiserver_current_inflight_requests", "In flight.", registry=registry)
    gauge.set(inflight)
    histogram = Histogram(
        "apiserver_request_duration_seconds", "Latency.", buckets=(0.1, 1.0), registry=registry
    )
    for latency in latencies:
        histogram.observe(latency)
    return prometheus_client.generate_latest(registry).decode()


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_each_workers_samples_keep_their_values_under_a_worker_label() -> None:
    merged = samples(merge([("0", exposition(3, 1, [0.05])), ("1", exposition(5, 2, [0.5, 2.0]))]))
    total = "apiserver_request_total"
    assert merged[(total, (("code", "200"), ("verb", "GET"), ("worker", "0")))] == 3
    assert merged[(total, (("code", "200"), ("verb", "GET"), ("worker", "1")))] == 5
    gauge = "apiserver_current_inflight_requests"
    assert merged[(gauge, (("worker", "0"),))] == 1
    assert merged[(gauge, (("worker", "1"),))] == 2
    count = "apiserver_request_duration_seconds_count"
    assert merged[(count, (("worker", "1"),))] == 2
    bucket = "apiserver_request_duration_seconds_bucket"
    assert merged[(bucket, (("le", "1.0"), ("worker", "1")))] == 1
    assert merged[(bucket, (("le", "+Inf"), ("worker", "1")))] == 2
    assert merged[("apiserver_worker_up", (("worker", "0"),))] == 1
    assert merged[("apiserver_worker_up", (("worker", "1"),))] == 1


def test_one_family_per_name_with_its_type() -> None:
    text = merge([("0", exposition(1, 0, [])), ("1", exposition(1, 0, []))]).decode()
    assert text.count("# TYPE apiserver_request_total counter") == 1
    assert text.count("# TYPE apiserver_request_duration_seconds histogram") == 1


def test_a_worker_that_did_not_answer_is_down_and_adds_no_series() -> None:
    merged = samples(merge([("0", exposition(3, 0, [])), ("1", None)]))
    assert merged[("apiserver_worker_up", (("worker", "1"),))] == 0
    assert not any(
        ("worker", "1") in labels for name, labels in merged if name != "apiserver_worker_up"
    )


def test_a_peer_serves_its_exposition_on_its_socket(tmp_path: Path) -> None:
    path = peer_socket(str(tmp_path), 1)

    async def scenario() -> tuple[str | None, str | None]:
        server = PeerMetricsServer(path)
        await server.start()
        try:
            served = await read_peer(path, timeout=5.0)
        finally:
            await server.stop()
        return served, await read_peer(path, timeout=5.0)

    served, after_stop = asyncio.run(scenario())
    assert served is not None and "# TYPE" in served
    assert after_stop is None
    assert not Path(path).exists()


def test_a_stale_socket_file_from_a_crashed_worker_is_replaced(tmp_path: Path) -> None:
    path = peer_socket(str(tmp_path), 2)
    Path(path).write_text("left by a worker killed with SIGKILL")

    async def scenario() -> str | None:
        server = PeerMetricsServer(path)
        await server.start()
        try:
            return await read_peer(path, timeout=5.0)
        finally:
            await server.stop()

    assert asyncio.run(scenario()) is not None


def test_a_large_exposition_is_read_whole_and_garbage_counts_as_down(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    counter = Counter("many", "Many series.", ["n"], registry=registry)
    for n in range(20_000):
        counter.labels(str(n)).inc()
    big = prometheus_client.generate_latest(registry)
    path = str(tmp_path / "big.sock")

    async def serve_and_read() -> str | None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for start in range(0, len(big), 4096):
                writer.write(big[start : start + 4096])
                await writer.drain()
                await asyncio.sleep(0)
            writer.close()

        server = await asyncio.start_unix_server(answer, path=path)
        try:
            return await read_peer(path, timeout=10.0)
        finally:
            server.close()
            await server.wait_closed()

    text = asyncio.run(serve_and_read())
    assert text is not None and len(text) == len(big)
    merged = samples(merge([("0", text), ("1", "this is not { an exposition")]))
    assert merged[("many_total", (("n", "19999"), ("worker", "0")))] == 1
    assert merged[("apiserver_worker_up", (("worker", "1"),))] == 0
