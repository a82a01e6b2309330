"""The agent's metrics, under the kubelet's names.

- ``kubelet_pod_start_duration_seconds``: from the agent first seeing a pod
  to all of its containers running (observed once per pod).
- ``kubelet_runtime_operations_duration_seconds{operation_type}``,
  ``kubelet_runtime_operations_total`` and ``..._errors_total``: every call
  the agent makes into its container runtime, timed by ``TimedRuntime``.
  The operation types are the runtime interface's method names, so they are
  bounded.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from prometheus_client import Counter, Histogram

from corral import metrics
from nodeagent.runtime.base import Runtime

log = logging.getLogger(__name__)

CERT_POLL_SECONDS = 0.5

# The kubelet's buckets for both (seconds).
POD_START_BUCKETS = (
    0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600,
    900, 1200, 1800, 2700, 3600,
)  # fmt: skip
RUNTIME_BUCKETS = tuple(0.005 * 2.5**i for i in range(14))

POD_START = Histogram(
    "kubelet_pod_start_duration_seconds",
    "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
    buckets=POD_START_BUCKETS,
)
RUNTIME_DURATION = Histogram(
    "kubelet_runtime_operations_duration_seconds",
    "Duration in seconds of runtime operations. Broken down by operation type.",
    ["operation_type"],
    buckets=RUNTIME_BUCKETS,
)
RUNTIME_OPERATIONS = Counter(
    "kubelet_runtime_operations",
    "Cumulative number of runtime operations by operation type.",
    ["operation_type"],
)
RUNTIME_ERRORS = Counter(
    "kubelet_runtime_operations_errors",
    "Cumulative number of runtime operation errors by operation type.",
    ["operation_type"],
)

# Calls that wait on something else by design (a stream, the events feed):
# timing them would measure the wait, not the runtime.
_UNTIMED = frozenset(("logs", "events", "exec_stream", "close"))


def _timed(
    operation: str, call: Callable[..., Coroutine[Any, Any, Any]]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    duration = RUNTIME_DURATION.labels(operation)
    total = RUNTIME_OPERATIONS.labels(operation)
    errors = RUNTIME_ERRORS.labels(operation)

    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        total.inc()
        try:
            return await call(*args, **kwargs)
        except Exception:
            errors.inc()
            raise
        finally:
            duration.observe(time.perf_counter() - started)

    return timed


class TimedRuntime:
    """A runtime whose coroutine methods are timed; everything else passes through."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._runtime, name)
        if name.startswith("_") or name in _UNTIMED or not _is_coroutine_method(attribute):
            return attribute
        timed = _timed(name, attribute)
        setattr(self, name, timed)  # wrapped once; later lookups skip __getattr__
        return timed


def _is_coroutine_method(attribute: object) -> bool:
    return inspect.iscoroutinefunction(attribute)


def timed_runtime(runtime: Runtime) -> Runtime:
    return cast(Runtime, TimedRuntime(runtime))


class PodStartClock:
    """Observes one pod's start latency, once: from first seen to all containers running.

    Along the way the worker marks its steps; the time since the previous
    mark goes to the step named, and the breakdown is logged (at debug) with
    the total, which is how the agent is profiled: where a start's time goes
    between the binding seen and the containers running.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.seen_at = clock()
        self._last = self.seen_at
        self.steps: dict[str, float] = {}
        self.observed = False

    def mark(self, step: str) -> None:
        """The time since the last mark was spent on ``step`` (summed if it recurs)."""
        if self.observed:
            return
        now = self.clock()
        self.steps[step] = self.steps.get(step, 0.0) + now - self._last
        self._last = now

    def running(self, pod: str = "") -> None:
        if not self.observed:
            self.mark("other")
            self.observed = True
            total = self.clock() - self.seen_at
            POD_START.observe(total)
            # As the kubelet logs its "Observed pod startup duration", with the steps.
            steps = ", ".join(f"{step} {seconds:.3f}" for step, seconds in self.steps.items())
            log.info("pod %s running %.3fs after it was seen: %s", pod, total, steps)


class MetricsServer:
    """/metrics and /healthz on the agent's own port.

    Over TLS with ``--tls-cert-file`` if given; otherwise, on a secure agent,
    with the node's serving certificate (the one logs and exec use), which
    the control plane signs only after registration, so serving starts once
    its files are there. An agent without certificates serves plain HTTP.
    """

    def __init__(
        self,
        address: str,
        *,
        cert: tuple[Path, Path] | None,
        wait_for_cert: bool,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self.address = address
        self.cert = cert
        self.wait_for_cert = wait_for_cert
        self.healthy = healthy
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="metrics-server")

    async def _serve(self) -> None:
        if self.cert is not None and self.wait_for_cert:
            # Files another task writes: nothing to wait on but their appearance.
            while not all(path.exists() for path in self.cert):  # noqa: ASYNC110
                await asyncio.sleep(CERT_POLL_SECONDS)
        context = (
            metrics.server_ssl_context(str(self.cert[0]), str(self.cert[1])) if self.cert else None
        )
        self._runner, port = await metrics.serve(
            self.address, ssl_context=context, healthy=self.healthy
        )
        scheme = "https" if context else "http"
        log.info(
            "serving /metrics and /healthz at %s://%s:%d",
            scheme,
            metrics.split_address(self.address)[0],
            port,
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
