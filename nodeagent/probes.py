"""Liveness, readiness and startup probes: exec, httpGet and tcpSocket.

A probe's result changes only after ``successThreshold`` successes or
``failureThreshold`` failures in a row, as in Kubernetes. Network probes
connect from inside the pod's network namespace, to the pod's IP (or
``host``), so they need no route from the host and see what a peer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import Any

from corral.objects import Obj
from nodeagent.netns import socket_in
from nodeagent.runtime.base import Runtime, RuntimeFailure


@dataclass
class ProbeResult:
    ok: bool
    message: str = ""


def resolve_port(port: Any, container: Obj) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f'container has no port named "{port}"')


async def _connect(
    netns: str, host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = await asyncio.to_thread(socket_in, netns, family)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


async def tcp_probe(netns: str, host: str, port: int, timeout: float) -> ProbeResult:
    try:
        _, writer = await _connect(netns, host, port, timeout)
    except (OSError, TimeoutError) as error:
        return ProbeResult(False, f"dial tcp {host}:{port}: {_reason(error)}")
    writer.close()
    # The connection was made, which is all this probe asks; a reset while
    # closing changes nothing.
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True)


async def http_probe(
    netns: str,
    host: str,
    port: int,
    path: str,
    headers: list[Obj],
    timeout: float,
    scheme: str = "HTTP",
) -> ProbeResult:
    url = f"{scheme.lower()}://{host}:{port}{path}"
    try:
        reader, writer = await _connect(netns, host, port, timeout)
    except (OSError, TimeoutError) as error:
        return ProbeResult(False, f'Get "{url}": dial tcp {host}:{port}: {_reason(error)}')
    try:
        async with asyncio.timeout(timeout):
            if scheme == "HTTPS":
                # Kubernetes does not verify a probed pod's certificate either.
                import ssl

                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                await writer.start_tls(context)
            lines = [
                f"GET {path or '/'} HTTP/1.1",
                f"Host: {host}:{port}",
                "User-Agent: corral-probe/1.0",
                "Accept: */*",
                "Connection: close",
            ]
            lines += [f"{h.get('name')}: {h.get('value')}" for h in headers]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            status_line = await reader.readline()
    except (OSError, TimeoutError) as error:
        return ProbeResult(False, f'Get "{url}": {_reason(error)}')
    finally:
        writer.close()
        # The status line is read (or the failure recorded); closing cannot change it.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.decode(errors="replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return ProbeResult(False, f'Get "{url}": malformed HTTP response')
    code = int(parts[1])
    if 200 <= code < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "i/o timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connect: connection refused"
    return str(error) or type(error).__name__


async def run_probe(
    probe: Obj, container: Obj, container_id: str, runtime: Runtime, netns: str, pod_ip: str
) -> ProbeResult:
    timeout = float(probe.get("timeoutSeconds") or 1)
    if probe.get("exec") is not None:
        command = list((probe["exec"] or {}).get("command") or [])
        try:
            code, output = await runtime.exec(container_id, command, timeout=timeout)
        except TimeoutError:
            return ProbeResult(False, f"command timed out after {timeout:g}s")
        except RuntimeFailure as error:
            return ProbeResult(False, error.message)
        if code == 0:
            return ProbeResult(True)
        text = output.decode(errors="replace").strip()
        return ProbeResult(False, f"command {command!r} exited with {code}: {text}"[:1024])
    action = probe.get("httpGet") or probe.get("tcpSocket")
    if action is None:
        return ProbeResult(True)
    try:
        port = resolve_port(action.get("port"), container)
    except ValueError as error:
        return ProbeResult(False, str(error))
    host = action.get("host") or pod_ip or "127.0.0.1"
    if probe.get("httpGet") is not None:
        return await http_probe(
            netns,
            host,
            port,
            action.get("path") or "/",
            action.get("httpHeaders") or [],
            timeout,
            action.get("scheme") or "HTTP",
        )
    return await tcp_probe(netns, host, port, timeout)


@dataclass
class ProbeState:
    """One probe of one container instance, counting toward its thresholds."""

    kind: str  # liveness, readiness or startup
    spec: Obj
    started_at: float  # monotonic time the container started
    result: bool | None = None
    successes: int = 0
    failures: int = 0
    last_run: float | None = None
    message: str = ""
    history: list[bool] = field(default_factory=list)

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds") or 10)

    def due(self, now: float) -> bool:
        delay = float(self.spec.get("initialDelaySeconds") or 0)
        if now < self.started_at + delay:
            return False
        return self.last_run is None or now >= self.last_run + self.period

    def next_due(self, now: float) -> float:
        delay = float(self.spec.get("initialDelaySeconds") or 0)
        first = self.started_at + delay
        if self.last_run is None:
            return max(first - now, 0.0)
        return max(self.last_run + self.period - now, 0.0)

    def record(self, outcome: ProbeResult, now: float) -> bool:
        """Count one outcome; True when the probe's overall result changed."""
        self.last_run = now
        self.message = outcome.message
        if outcome.ok:
            self.successes += 1
            self.failures = 0
            threshold = int(self.spec.get("successThreshold") or 1)
            flipped = self.result is not True and self.successes >= threshold
            if flipped:
                self.result = True
            return flipped
        self.failures += 1
        self.successes = 0
        threshold = int(self.spec.get("failureThreshold") or 3)
        flipped = self.result is not False and self.failures >= threshold
        if flipped:
            self.result = False
        return flipped
