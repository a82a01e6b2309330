"""``corral apiserver --workers N``: N processes serving one listening socket.

One Python process runs on one core. The supervisor (the process started as
``corral apiserver``) binds the API port once and starts N worker processes
(``python -m controlplane apiserver ... --listen-fd FD``) that inherit the
socket and accept from it; the kernel hands each connection to whichever
worker accepts first, so idle workers take the new connections. Each worker
is a whole API server, with its own etcd client and watch cache, consistent
with the others the way kube-apiserver replicas are: through etcd's
resourceVersion (see docs/architecture.md, "API server workers").

The supervisor serves nothing itself. It restarts a worker that dies, after
a jittered back-off; if workers crash more than ``max_restarts`` times in
``window_seconds`` it stops them all and exits 1, so that systemd or
``corral up`` sees a failed server rather than one restarting for ever. A
SIGTERM (or SIGINT) is passed to every worker, which finish their requests
and exit; workers still running after ``stop_grace_seconds`` are killed.
Workers die with the supervisor even when it is killed: each asks the kernel
for SIGTERM on its parent's death (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from controlplane.apiserver.usagepeers import socket_pairs
from corral.backoff import Backoff

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
LISTEN_BACKLOG = 2048
BIND_TIMEOUT_SECONDS = 15.0


class Worker(Protocol):
    """What the supervisor needs of a worker process (subprocess.Popen has it)."""

    pid: int

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


@dataclass
class RestartPolicy:
    """When to restart a worker, and when to give up."""

    max_restarts: int = 5
    window_seconds: float = 60.0
    backoff_initial_seconds: float = 0.5
    backoff_cap_seconds: float = 10.0
    stop_grace_seconds: float = 10.0
    poll_seconds: float = 0.1


@dataclass
class _Slot:
    """One worker index: its process (None while waiting to restart) and its back-off."""

    backoff: Backoff
    process: Worker | None = None
    started: float = 0.0
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Keeps ``count`` workers running until told to stop, or until they keep crashing."""

    spawn: Callable[[int], Worker]
    count: int
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    stopping: bool = False
    crashes: list[float] = field(default_factory=list)

    def request_stop(self) -> None:
        self.stopping = True

    def run(self) -> int:
        """Start the workers and watch them; 0 after a requested stop, 1 after a crash loop."""
        slots = [
            _Slot(Backoff(self.policy.backoff_initial_seconds, self.policy.backoff_cap_seconds))
            for _ in range(self.count)
        ]
        for index, slot in enumerate(slots):
            self._start(index, slot)
        code = 0
        while not self.stopping:
            if not self._check(slots):
                code = 1
                break
            self.sleep(self.policy.poll_seconds)
        self._stop_all(slots)
        return code

    def _start(self, index: int, slot: _Slot) -> None:
        slot.process = self.spawn(index)
        slot.started = self.clock()
        slot.restart_at = None
        log.info("API server worker %d started (pid %d)", index, slot.process.pid)

    def _check(self, slots: list[_Slot]) -> bool:
        """Notice exits and due restarts; False when workers crash too often."""
        now = self.clock()
        for index, slot in enumerate(slots):
            if slot.process is None:
                if slot.restart_at is not None and now >= slot.restart_at and not self.stopping:
                    self._start(index, slot)
                continue
            code = slot.process.poll()
            if code is None:
                continue
            log.warning(
                "API server worker %d (pid %d) exited with %d",
                index,
                slot.process.pid,
                code,
            )
            slot.process = None
            if now - slot.started > self.policy.window_seconds:
                # It ran well for a while: this crash starts a fresh back-off.
                slot.backoff.reset()
            self.crashes = [t for t in self.crashes if now - t <= self.policy.window_seconds]
            self.crashes.append(now)
            if len(self.crashes) > self.policy.max_restarts:
                log.error(
                    "API server workers crashed %d times in %.0f s: stopping",
                    len(self.crashes),
                    self.policy.window_seconds,
                )
                return False
            delay = slot.backoff.next()
            slot.restart_at = now + delay
            log.info("restarting API server worker %d in %.1f s", index, delay)
        return True

    def _stop_all(self, slots: list[_Slot]) -> None:
        running = [slot.process for slot in slots if slot.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = self.clock() + self.policy.stop_grace_seconds
        while any(p.poll() is None for p in running) and self.clock() < deadline:
            self.sleep(self.policy.poll_seconds)
        for process in running:
            if process.poll() is None:
                log.warning("API server worker pid %d did not stop in time: killing", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()


def listening_sockets(host: str, port: int, count: int, reuse_port: bool) -> list[socket.socket]:
    """The API port's socket, or with ``reuse_port`` one SO_REUSEPORT socket per worker.

    One shared socket lets whichever worker is idle accept; SO_REUSEPORT
    spreads connections by a hash of their addresses, busy worker or not.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    address = (host.strip("[]"), port)
    first = socket.create_server(
        address, family=family, backlog=LISTEN_BACKLOG, reuse_port=reuse_port
    )
    sockets = [first]
    if reuse_port:
        address = (address[0], first.getsockname()[1])
        sockets += [
            socket.create_server(address, family=family, backlog=LISTEN_BACKLOG, reuse_port=True)
            for _ in range(count - 1)
        ]
    for sock in sockets:
        sock.set_inheritable(True)
    return sockets


def _bind(
    host: str, port: int, count: int, reuse_port: bool, *, timeout: float = BIND_TIMEOUT_SECONDS
) -> list[socket.socket] | None:
    """The listening sockets, waiting a while for the port to be free.

    After a supervisor is killed its workers keep the inherited socket open
    until they have finished their requests (up to uvicorn's graceful
    shutdown), so a supervisor started at once finds the port taken.
    """
    backoff = Backoff(0.05, 1.0)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return listening_sockets(host, port, count, reuse_port)
        except OSError as error:
            if time.monotonic() > deadline:
                log.error("cannot listen on %s:%d: %s", host, port, error)
                return None
            log.info("port %d not free yet (%s); retrying", port, error)
        time.sleep(backoff.next())


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For preexec_fn: SIGTERM when the supervisor dies, even by SIGKILL."""

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            # The supervisor died before the request took effect.
            os._exit(1)

    return setup


def worker_argv(
    argv: Sequence[str],
    index: int,
    count: int,
    fd: int,
    usage: Sequence[str] = (),
    metrics_dir: str | None = None,
) -> list[str]:
    """The worker's command line: the supervisor's flags, and which worker it is."""
    return [
        sys.executable, "-m", "controlplane", "apiserver", *argv,
        "--worker-index", str(index),
        "--worker-count", str(count),
        "--listen-fd", str(fd),
        *usage,
        *(("--worker-metrics-dir", metrics_dir) if metrics_dir is not None else ()),
    ]  # fmt: skip


def usage_flags(index: int, pairs: list[tuple[socket.socket, socket.socket]]) -> list[str]:
    """Worker 0 sends the agents' usage reports to each other worker (usagepeers.py)."""
    if not pairs:
        return []
    if index == 0:
        return ["--usage-peer-fds", ",".join(str(send.fileno()) for send, _ in pairs)]
    return ["--usage-fd", str(pairs[index - 1][1].fileno())]


def spawner(
    argv: Sequence[str],
    sockets: list[socket.socket],
    count: int,
    pairs: list[tuple[socket.socket, socket.socket]],
    metrics_dir: str | None = None,
) -> Callable[[int], Worker]:
    parent = os.getpid()

    def spawn(index: int) -> Worker:
        fd = sockets[index % len(sockets)].fileno()
        usage = usage_flags(index, pairs)
        fds = (fd, *(int(part) for flag in usage[1:] for part in flag.split(",")))
        return subprocess.Popen(
            worker_argv(argv, index, count, fd, usage, metrics_dir),
            pass_fds=fds,
            # preexec_fn is unsafe with threads; the supervisor runs none.
            preexec_fn=_die_with_parent(parent),
        )

    return spawn


@contextlib.contextmanager
def _stop_on_signals(supervisor: Supervisor) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        supervisor.request_stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def supervise(
    argv: Sequence[str], host: str, port: int, count: int, *, reuse_port: bool = False
) -> int:
    """Bind the API port, run ``count`` workers on it, and return the exit code."""
    sockets = _bind(host, port, count, reuse_port)
    if sockets is None:
        return 1
    bound = sockets[0].getsockname()[1]
    log.info(
        "API server supervisor (pid %d) listening on %s:%d with %d workers%s",
        os.getpid(),
        host,
        bound,
        count,
        " (SO_REUSEPORT)" if reuse_port else "",
    )
    pairs = socket_pairs(count)
    # Private to this user (mkdtemp makes it 0700): the sockets in it answer
    # with metrics to whoever connects, without the port's RBAC.
    metrics_dir = tempfile.mkdtemp(prefix="corral-apiserver-metrics-")
    supervisor = Supervisor(spawner(argv, sockets, count, pairs, metrics_dir), count)
    try:
        with _stop_on_signals(supervisor):
            code = supervisor.run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    for sock in [*sockets, *(end for pair in pairs for end in pair)]:
        sock.close()
    log.info("API server supervisor stopped")
    return code
