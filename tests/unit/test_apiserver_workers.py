"""The worker supervisor's restart policy, each worker's share, and the default count."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from controlplane.apiserver.config import ServerConfig
from controlplane.apiserver.cpus import cgroup_quota, parse_cpu_max, usable_cpus
from controlplane.apiserver.main import main
from controlplane.apiserver.usagepeers import ForwardingUsage, receiving, socket_pairs
from controlplane.apiserver.workerconfig import share, worker_audit_path, worker_config
from controlplane.apiserver.workers import RestartPolicy, Supervisor, usage_flags, worker_argv
from controlplane.usage.store import UsageStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeWorker:
    """A process that exits with ``code`` after ``lives`` polls (None: runs until signalled)."""

    def __init__(self, pid: int, lives: int | None, code: int = 1) -> None:
        self.pid = pid
        self.lives = lives
        self.code = code
        self.signals: list[int] = []
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self.lives is not None:
            self.lives -= 1
            if self.lives < 0:
                self.returncode = self.code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.returncode = 0

    def kill(self) -> None:
        self.returncode = -9


class Spawner:
    def __init__(self, lives: list[int | None]) -> None:
        self.lives = lives  # per spawn, in order; the last repeats
        self.spawned: list[tuple[int, FakeWorker]] = []

    def __call__(self, index: int) -> FakeWorker:
        lives = self.lives[min(len(self.spawned), len(self.lives) - 1)]
        worker = FakeWorker(1000 + len(self.spawned), lives)
        self.spawned.append((index, worker))
        return worker


def supervisor(spawner: Spawner, count: int, clock: FakeClock, stop_after: float) -> Supervisor:
    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= stop_after:
            sup.request_stop()

    sup = Supervisor(spawner, count, RestartPolicy(), clock=clock, sleep=sleep)
    return sup


def test_a_worker_that_dies_is_restarted_under_its_own_index_and_stop_signals_all() -> None:
    clock = FakeClock()
    # The first spawn of worker 0 dies at once; every later process runs until stopped.
    spawner = Spawner([3, None, None])
    code = supervisor(spawner, 2, clock, stop_after=30.0).run()
    assert code == 0
    indexes = [index for index, _ in spawner.spawned]
    assert indexes == [0, 1, 0]
    first = spawner.spawned[0][1]
    assert first.signals == []  # it had exited: nothing to signal
    for _, worker in spawner.spawned[1:]:
        assert worker.signals == [signal.SIGTERM]


def test_workers_crashing_in_a_loop_stop_the_supervisor_with_an_error() -> None:
    clock = FakeClock()
    spawner = Spawner([0])  # every process dies on its first poll
    code = supervisor(spawner, 2, clock, stop_after=3600.0).run()
    assert code == 1
    policy = RestartPolicy()
    # Two first starts plus one restart per tolerated crash, then no more.
    assert len(spawner.spawned) <= 2 + policy.max_restarts
    assert clock.now < policy.window_seconds


def test_restarts_back_off_with_jitter_below_the_cap() -> None:
    clock = FakeClock()
    spawner = Spawner([0, 0, 0, None])
    supervisor(spawner, 1, clock, stop_after=120.0).run()
    assert len(spawner.spawned) == 4
    assert clock.now >= 120.0


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    clock = FakeClock()

    class Stubborn(FakeWorker):
        def send_signal(self, sig: int) -> None:
            self.signals.append(sig)

    stubborn = Stubborn(7, None)
    sup = supervisor(Spawner([None]), 1, clock, stop_after=1.0)
    sup.spawn = lambda index: stubborn
    assert sup.run() == 0
    assert stubborn.returncode == -9


def test_each_worker_gets_its_share_and_only_worker_0_the_single_listeners() -> None:
    config = ServerConfig(
        agent_port=6444,
        metrics_port=6445,
        audit_log_path="/var/log/corral/audit.log",
        max_requests_inflight=400,
        max_mutating_requests_inflight=0,
    )
    first, second = worker_config(config, 0, 3), worker_config(config, 1, 3)
    assert (first.agent_port, first.metrics_port, first.run_compactor) == (6444, 6445, True)
    assert (second.agent_port, second.metrics_port, second.run_compactor) == (None, None, False)
    assert first.audit_log_path == "/var/log/corral/audit.log"
    assert second.audit_log_path == "/var/log/corral/audit.worker1.log"
    assert first.max_requests_inflight == second.max_requests_inflight == 134
    assert second.max_mutating_requests_inflight == 0  # no limit stays no limit
    assert worker_config(config, 0, 1) is config
    assert share(1, 4) == 1
    assert worker_audit_path(None, 2) is None


def test_cpu_max_quota_rounds_up_and_max_means_unlimited(tmp_path: Path) -> None:
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("150000 100000\n") == 2
    assert parse_cpu_max("50000 100000") == 1
    assert parse_cpu_max("garbage") is None
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cgroup").write_text("0::/limited.slice\n")
    (tmp_path / "cg" / "limited.slice").mkdir(parents=True)
    (tmp_path / "cg" / "limited.slice" / "cpu.max").write_text("100000 100000\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") == 1
    assert usable_cpus(tmp_path / "cg", tmp_path / "proc") == 1
    assert usable_cpus(tmp_path / "none", tmp_path / "none") >= 1


def test_the_workers_command_line_carries_the_supervisors_flags() -> None:
    argv = worker_argv(["--port", "6443", "--workers", "2"], 1, 2, 5)
    assert argv[1:4] == ["-m", "controlplane", "apiserver"]
    assert argv[4:] == [
        "--port", "6443", "--workers", "2",
        "--worker-index", "1", "--worker-count", "2", "--listen-fd", "5",
    ]  # fmt: skip


def test_workers_must_be_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--insecure-dev-http", "--workers", "0"])
    assert exited.value.code == 2
    assert "--workers: must be at least 1" in capsys.readouterr().err


def test_worker_0_copies_each_usage_report_to_the_others() -> None:
    from corral.proto import agent_pb2 as pb

    pairs = socket_pairs(3)
    try:
        assert usage_flags(0, pairs) == [
            "--usage-peer-fds",
            ",".join(str(send.fileno()) for send, _ in pairs),
        ]
        assert usage_flags(2, pairs) == ["--usage-fd", str(pairs[1][1].fileno())]
        assert usage_flags(0, []) == []
        forwarding = ForwardingUsage(lambda: 100.0, [os.dup(send.fileno()) for send, _ in pairs])
        peer = UsageStore(lambda: 100.0)

        async def deliver() -> None:
            async with receiving(peer, os.dup(pairs[1][1].fileno())):
                forwarding.record(
                    pb.UsageReport(
                        node_name="n1", window_seconds=10, cpu_nanocores=5, memory_bytes=7
                    )
                )
                for _ in range(100):
                    if peer.node_latest("n1") is not None:
                        return
                    await asyncio.sleep(0.01)

        asyncio.run(deliver())
        point = peer.node_latest("n1")
        assert point is not None and (point.cpu_nanocores, point.memory_bytes) == (5, 7)
        assert forwarding.node_latest("n1") is not None
        assert forwarding.dropped == 0
    finally:
        for pair in pairs:
            for end in pair:
                end.close()
