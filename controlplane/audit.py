"""The audit log: one JSON line per mutating or refused request, never a body.

Reads are logged too when they are of Secrets (as in Kubernetes' default
policy, which records every Secret request at ``Metadata``): who read which
Secret, or listed or watched them all, is the first question after a leak.

Each line is a Kubernetes ``audit.k8s.io/v1`` Event at level ``Metadata``
(who, what, where from, and the answer's code), so tools that read
Kubernetes audit logs read corral's. Request and response bodies are never
recorded: they carry Secrets.

Writing costs the request almost nothing: ``record`` serialises the line
and appends it to an in-memory buffer, with no I/O and no await; a
background task writes the buffer out every ``flush_interval`` seconds in a
worker thread, rotating the file by size (``path``, ``path.1`` ...
``path.<backups>``). Lines are never lost to rotation; if the disk stalls
for so long that ``max_buffered`` lines pile up, further lines are dropped
and counted rather than growing memory without bound, and so are lines a
write fails on. Both show on the metrics port as Kubernetes names them,
``apiserver_audit_error_total{plugin="buffered"}``. Kubernetes' batch
backend blocks the request instead when its buffer is full; here one event
loop serves every request, so blocking it on a stalled disk would stop
reads and health checks too (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import Counter

from controlplane.auth.attributes import READ_VERBS, RequestAttributes
from corral.uids import new_uid

log = logging.getLogger(__name__)

# Streams that act inside a container: audited even though their verb reads.
_ACTING_SUBRESOURCES = frozenset(("exec", "attach", "portforward"))
# (API group, resource) whose every request is audited, reads included.
_SENSITIVE_RESOURCES = frozenset((("", "secrets"),))
_REFUSED_CODES = frozenset((401, 403))


AUDIT_ERRORS = Counter(
    "apiserver_audit_error",
    "Counter of audit events that failed to be audited properly. Plugin identifies the "
    "plugin affected by the error.",
    ["plugin"],
)
_LOST = AUDIT_ERRORS.labels("buffered")


def should_audit(
    verb: str, code: int, subresource: str = "", *, resource: str = "", api_group: str = ""
) -> bool:
    """Mutations, refusals, exec-like streams, and anything touching Secrets.

    Other reads that succeed are not logged: they are most of the traffic
    and say nothing an investigation needs.
    """
    return (
        verb not in READ_VERBS
        or code in _REFUSED_CODES
        or subresource in _ACTING_SUBRESOURCES
        or (api_group, resource) in _SENSITIVE_RESOURCES
    )


def new_request_id() -> str:
    return new_uid()


def _timestamp(moment: datetime) -> str:
    """RFC 3339 with microseconds, as Kubernetes writes it (isoformat is 5x strftime's speed)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def audit_event(
    attrs: RequestAttributes,
    *,
    request_uri: str,
    source_ip: str,
    code: int,
    request_id: str,
    user_agent: str = "",
    received: datetime | None = None,
    completed: datetime | None = None,
    decision: str = "",
    reason: str = "",
) -> dict[str, Any]:
    """The Event for one request, from its attributes and its outcome."""
    now = completed or datetime.now(UTC)
    stamp = _timestamp(now)
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": request_id,
        "stage": "ResponseComplete",
        "requestURI": request_uri,
        "verb": attrs.verb,
        "user": {"username": attrs.user.name, "groups": list(attrs.user.groups)},
        "sourceIPs": [source_ip] if source_ip else [],
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp if received is None else _timestamp(received),
        "stageTimestamp": stamp,
    }
    if user_agent:
        event["userAgent"] = user_agent
    if attrs.resource_request:
        ref = {
            "resource": attrs.resource,
            "namespace": attrs.namespace,
            "name": attrs.name,
            "apiGroup": attrs.api_group,
            "apiVersion": attrs.api_version,
            "subresource": attrs.subresource,
        }
        event["objectRef"] = {k: v for k, v in ref.items() if v}
    annotations = {}
    if decision:
        annotations["authorization.k8s.io/decision"] = decision
    if reason:
        annotations["authorization.k8s.io/reason"] = reason
    if annotations:
        event["annotations"] = annotations
    return event


class AuditLog:
    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
        *,
        flush_interval: float = 0.2,
        max_buffered: int = 100_000,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        if max_bytes <= 0 or backups < 0:
            raise ValueError("max_bytes must be positive and backups not negative")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.flush_interval = flush_interval
        self.max_buffered = max_buffered
        self.dropped = 0
        self._sleep = sleep
        self._buffer: list[bytes] = []
        self._lock = threading.Lock()  # the buffer is swapped from the writer thread
        self._write_lock = threading.Lock()  # one writer (and rotation) at a time
        self._fd: int | None = None
        self._size = 0
        self._task: asyncio.Task[None] | None = None

    # --- the request side: no I/O ------------------------------------------------------

    def record(self, event: dict[str, Any]) -> None:
        line = orjson.dumps(event) + b"\n"
        with self._lock:
            if len(self._buffer) >= self.max_buffered:
                self.dropped += 1
                _LOST.inc()
                return
            self._buffer.append(line)

    def record_request(
        self,
        attrs: RequestAttributes,
        *,
        request_uri: str,
        source_ip: str,
        code: int,
        request_id: str,
        user_agent: str = "",
        received: datetime | None = None,
        reason: str = "",
    ) -> bool:
        """Record the request if it is one to audit; whether it was."""
        if not should_audit(
            attrs.verb,
            code,
            attrs.subresource,
            resource=attrs.resource if attrs.resource_request else "",
            api_group=attrs.api_group,
        ):
            return False
        decision = "forbid" if code == 403 else "allow" if code != 401 else ""
        self.record(
            audit_event(
                attrs,
                request_uri=request_uri,
                source_ip=source_ip,
                code=code,
                request_id=request_id,
                user_agent=user_agent,
                received=received,
                decision=decision,
                reason=reason,
            )
        )
        return True

    # --- the writer side ------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Owner-only: the log names users and what they touched.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rotate(self) -> None:
        self._close_file()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def _write(self, lines: Sequence[bytes]) -> None:
        chunk: list[bytes] = []
        chunk_size = 0
        fd = self._open()
        for line in lines:
            if self._size + chunk_size + len(line) > self.max_bytes and self._size + chunk_size:
                if chunk:
                    os.write(fd, b"".join(chunk))
                    chunk, chunk_size = [], 0
                self._rotate()
                fd = self._open()
            chunk.append(line)
            chunk_size += len(line)
        if chunk:
            os.write(fd, b"".join(chunk))
        self._size += chunk_size

    def flush(self) -> None:
        """Write out everything recorded so far (blocking; the flush task runs it in a thread)."""
        with self._write_lock:
            with self._lock:
                lines, self._buffer = self._buffer, []
            if lines:
                try:
                    self._write(lines)
                except OSError:
                    # Some may be in the file: the batch counts whole, as in Kubernetes.
                    _LOST.inc(len(lines))
                    raise

    async def run(self) -> None:
        """Flush every ``flush_interval`` seconds until cancelled, then flush the rest."""
        try:
            while True:
                await self._sleep(self.flush_interval)
                if self._buffer:
                    try:
                        await asyncio.to_thread(self.flush)
                    except OSError as error:
                        log.error("audit log %s: cannot write: %s", self.path, error.strerror)
        finally:
            try:
                self.flush()
            except OSError as error:
                log.error(
                    "audit log %s: the last events were not written: %s", self.path, error.strerror
                )

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="audit-log")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # The cancel just made ends it this way; anything else goes on up.
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        else:
            self.flush()
        self._close_file()
