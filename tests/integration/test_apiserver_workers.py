"""``corral apiserver --workers 2``: two processes on one port, one etcd, one truth.

Each worker has its own watch cache, so what one worker acknowledged must be
what the other reads (an unset resourceVersion is a fresh read) and what a
watch on the other sends. Every response names its worker in
``X-Corral-Worker``, which is how these tests know which process answered.
The supervisor restarts a worker killed with SIGKILL while the other keeps
serving, stops both on SIGTERM, and takes them with it when it is killed.
``--metrics-port`` counts every worker's requests, each under its worker.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from corralctl.processes import ManagedProcess, free_port
from tests.conftest import LocalCluster, start_cluster, unique_name

HEADER = "X-Corral-Worker"
NAMESPACE = "default"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
WAIT_SECONDS = 60.0


class Api:
    """Raw HTTPS to the cluster, one new connection per request: each may land on either worker."""

    def __init__(self, local: LocalCluster) -> None:
        self.local = local
        split = urlsplit(local.url)
        assert split.hostname is not None and split.port is not None
        self.host, self.port = split.hostname, split.port
        self.context: ssl.SSLContext = local.ssl_context()

    def connect(self, timeout: float = 30.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout
        )

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any], str]:
        """(status, JSON body, worker) of one request on a connection of its own."""
        connection = self.connect()
        try:
            payload = orjson.dumps(body) if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            worker = response.getheader(HEADER) or ""
            if response.getheader("Content-Type", "").startswith("application/json"):
                return response.status, orjson.loads(data), worker
            return response.status, {"text": data.decode()}, worker
        finally:
            connection.close()

    def create(self, name: str) -> tuple[dict[str, Any], str]:
        status, body, worker = self.request(
            "POST",
            CONFIGMAPS,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}},
        )
        assert status == 201, body
        return body, worker


def workers_of(pid: int) -> list[int]:
    """The supervisor's child processes."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in children.read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = start_cluster(
        tmp_path_factory.mktemp("workers") / "cluster", apiserver_args=("--workers", "2")
    )
    try:
        yield local
    finally:
        local.stop()


def test_requests_through_many_connections_are_served_by_both_workers(
    two_workers: LocalCluster,
) -> None:
    api = Api(two_workers)
    assert two_workers.apiserver.pid is not None
    assert len(workers_of(two_workers.apiserver.pid)) == 2

    def create(i: int) -> str:
        return api.create(f"spread-{i}")[1]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        served = list(pool.map(create, range(64)))
    counts = {worker: served.count(worker) for worker in sorted(set(served))}
    print(f"creates per worker: {counts}")
    assert set(counts) == {"0", "1"}


def test_a_write_through_one_worker_is_read_by_the_other(two_workers: LocalCluster) -> None:
    api = Api(two_workers)
    crossed = 0
    for i in range(40):
        created, writer = api.create(f"consistent-{i}")
        status, listed, lister = api.request("GET", CONFIGMAPS)
        assert status == 200, listed
        names = {item["metadata"]["name"] for item in listed["items"]}
        assert f"consistent-{i}" in names, f"worker {lister} missed worker {writer}'s write"
        assert int(listed["metadata"]["resourceVersion"]) >= int(
            created["metadata"]["resourceVersion"]
        )
        status, got, getter = api.request("GET", f"{CONFIGMAPS}/consistent-{i}")
        assert status == 200, got
        assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        crossed += (lister != writer) + (getter != writer)
    print(f"reads served by the other worker than the write: {crossed} of 80")
    assert crossed > 0, "every read landed on the writing worker: nothing was shown"


def test_a_watch_on_one_worker_sees_a_change_made_through_the_other(
    two_workers: LocalCluster,
) -> None:
    api = Api(two_workers)
    created, _ = api.create("watched")
    since = created["metadata"]["resourceVersion"]
    watch = api.connect(timeout=WAIT_SECONDS)
    try:
        watch.request("GET", f"{CONFIGMAPS}?watch=1&resourceVersion={since}&timeoutSeconds=60")
        stream = watch.getresponse()
        assert stream.status == 200
        watcher = stream.getheader(HEADER)
        # Update through new connections until one lands on the other worker.
        for attempt in range(100):
            status, updated, writer = api.request(
                "PUT",
                f"{CONFIGMAPS}/watched",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "watched"},
                    "data": {"attempt": str(attempt)},
                },
            )
            assert status == 200, updated
            if writer != watcher:
                break
        else:
            pytest.fail(f"100 updates all landed on the watching worker {watcher}")
        wanted = updated["metadata"]["resourceVersion"]
        while True:
            line = stream.readline()
            assert line, "the watch ended before the other worker's change arrived"
            event = orjson.loads(line)
            if event["object"]["metadata"]["resourceVersion"] == wanted:
                assert event["type"] == "MODIFIED"
                assert event["object"]["data"] == {"attempt": str(attempt)}
                break
    finally:
        watch.close()


def test_every_worker_serves_the_usage_only_worker_0_hears_from_agents(
    two_workers: LocalCluster, tmp_path: Path
) -> None:
    """Agents report usage on the gRPC port, which worker 0 alone serves; both must answer top."""
    api = Api(two_workers)
    node = unique_name("usage-node")
    agent = ManagedProcess(
        node,
        [
            sys.executable, "-m", "nodeagent", *two_workers.agent_args(node),
            "--runtime", "hollow",
            "--data-dir", str(tmp_path / "agent"),
            "--listen-port", str(free_port()),
            "--usage-interval", "1",
        ],
        tmp_path / "agent.log",
    )  # fmt: skip
    agent.start()
    try:
        answered: dict[str, dict[str, Any]] = {}

        def both_workers_know_the_node() -> bool:
            status, body, worker = api.request("GET", f"/apis/metrics.k8s.io/v1beta1/nodes/{node}")
            if status == 200:
                answered[worker] = body
            return set(answered) == {"0", "1"}

        wait_for(both_workers_know_the_node, "both workers to serve the node's usage")
        for body in answered.values():
            assert body["metadata"]["name"] == node
            assert body["usage"]["cpu"].endswith("n")
    finally:
        agent.stop()
        api.request("DELETE", f"/api/v1/nodes/{node}")


def test_a_killed_worker_is_restarted_and_the_port_keeps_serving(
    two_workers: LocalCluster,
) -> None:
    api = Api(two_workers)
    supervisor = two_workers.apiserver.pid
    assert supervisor is not None
    before = workers_of(supervisor)
    assert len(before) == 2
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    served = 0
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        # Every request meanwhile must be answered, by the survivor or the newcomer.
        status, body, _ = api.request("GET", "/readyz")
        assert status == 200, body
        served += 1
        now = workers_of(supervisor)
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, f"the worker was not restarted: {now}"
        time.sleep(0.05)
    print(f"requests served while worker {victim} was replaced: {served}")
    # The newcomer serves too, once its watch cache is filled: on a busy
    # machine that takes longer than any fixed number of requests.
    seen: set[str] = set()
    deadline = time.monotonic() + WAIT_SECONDS
    i = 0
    while seen != {"0", "1"} and time.monotonic() < deadline:
        _, worker = api.create(f"after-restart-{i}")
        seen.add(worker)
        i += 1
    assert seen == {"0", "1"}


def test_sigterm_stops_every_worker_and_a_killed_supervisor_takes_them_along(
    tmp_path: Path,
) -> None:
    local = start_cluster(tmp_path / "cluster", apiserver_args=("--workers", "2"))
    try:
        supervisor = local.apiserver.pid
        assert supervisor is not None
        workers = workers_of(supervisor)
        assert len(workers) == 2
        assert local.apiserver.stop() == 0
        wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to exit")

        local.apiserver.start()
        local.apiserver.wait_ready()
        supervisor = local.apiserver.pid
        assert supervisor is not None
        workers = workers_of(supervisor)
        assert len(workers) == 2
        local.apiserver.kill()
        wait_for(lambda: not any(alive(pid) for pid in workers), "orphaned workers to exit")
    finally:
        local.stop()


def worker_index(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[argv.index(b"--worker-index") + 1].decode()


def scrape(local: LocalCluster, port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=local.ssl_context(), timeout=30
    )
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
    finally:
        connection.close()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_every_workers_requests_under_its_worker_label(tmp_path: Path) -> None:
    port = free_port()
    local = start_cluster(
        tmp_path / "cluster", apiserver_args=("--workers", "2", "--metrics-port", str(port))
    )
    try:
        api = Api(local)
        # A 404 for a made-up name: a series nothing else in the cluster adds to.
        missing = f"{CONFIGMAPS}/{unique_name('nothing')}"
        served: dict[str, int] = {}
        for _ in range(400):
            status, body, worker = api.request("GET", missing)
            assert status == 404, body
            served[worker] = served.get(worker, 0) + 1
            if len(served) == 2 and min(served.values()) >= 5:
                break
        assert set(served) == {"0", "1"}, served
        figures = scrape(local, port)
        for worker, count in served.items():
            labels = frozenset(
                {
                    "verb": "GET",
                    "group": "",
                    "version": "v1",
                    "resource": "configmaps",
                    "subresource": "",
                    "scope": "resource",
                    "component": "apiserver",
                    "code": "404",
                    "worker": worker,
                }.items()
            )
            assert figures.get(("apiserver_request_total", labels)) == count, worker
        for worker in ("0", "1"):
            up = ("apiserver_worker_up", frozenset({"worker": worker}.items()))
            assert figures[up] == 1

        # A frozen worker costs the scrape its figures, not the scrape itself.
        supervisor = local.apiserver.pid
        assert supervisor is not None
        frozen = next(pid for pid in workers_of(supervisor) if worker_index(pid) == "1")
        os.kill(frozen, signal.SIGSTOP)
        try:
            figures = scrape(local, port)
        finally:
            os.kill(frozen, signal.SIGCONT)
        assert figures[("apiserver_worker_up", frozenset({"worker": "1"}.items()))] == 0
        assert figures[("apiserver_worker_up", frozenset({"worker": "0"}.items()))] == 1
    finally:
        local.stop()
