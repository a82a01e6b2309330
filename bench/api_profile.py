"""Where the API server's CPU goes per create: py-spy's stacks sorted into layers.

``api_bench.py --profile`` attaches py-spy (an external sampling profiler:
the server runs unmodified) to the API server while load generators create
pods, then charges each sampled stack to the innermost frame that belongs to
a known layer: authentication, authorization, admission, validation,
encoding, etcd (client side) and audit, or "other" with a breakdown. The
samples only give proportions; the microseconds come from the CPU that the
server's Python threads spent over the same interval (``/proc/PID/task``),
so a sampler that falls behind on a loaded machine skews no total. CPU in
native threads (gRPC's C++ event engine) has no Python stack and is shown
on a line of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PY_SPY_HINT = (
    "--profile needs py-spy, an external sampling profiler: "
    f"{Path(sys.executable).parent / 'pip'} install py-spy (docs/benchmarks.md)"
)
SAMPLE_RATE = 250

BUCKETS = (
    "authentication",
    "authorization",
    "admission",
    "validation",
    "encoding",
    "etcd (client side)",
    "audit",
)
OTHER = "other"


@dataclass(frozen=True)
class Rule:
    """A frame whose file path contains ``path`` (and name contains ``function``) is ``bucket``."""

    bucket: str
    path: str
    function: str = ""
    # Within "other": which part, for the breakdown under the table.
    part: str = ""


def _rules() -> tuple[Rule, ...]:
    # Checked in order for each frame: a file split between layers (gate,
    # store, http) lists its specific functions before its general rule.
    api, auth, storage = "/controlplane/apiserver/", "/controlplane/auth/", "/controlplane/storage/"
    return (
        Rule("audit", "/controlplane/audit.py"),
        Rule("audit", f"{api}gate.py", "Gate._record"),
        Rule("authentication", f"{api}authn.py"),
        Rule("authentication", f"{api}tlsserving.py"),
        Rule("authentication", f"{auth}serviceaccounttokens.py"),
        Rule("authentication", "/corral/pki.py"),
        Rule("admission", f"{auth}escalation.py"),
        Rule("authorization", auth),
        Rule("admission", f"{api}admission.py"),
        Rule("admission", "/controlplane/admission/"),
        Rule("validation", "/corral/api/validate/"),
        Rule("validation", "/corral/api/validation.py"),
        Rule("validation", f"{api}objects.py", "Objects._validate"),
        Rule("validation", "/controlplane/registry/", "validate"),
        Rule("encoding", "/corral/api/decode.py"),
        Rule("encoding", "/corral/api/base.py", "to_dict"),
        Rule("encoding", "/corral/api/protobuf"),
        Rule("encoding", f"{api}negotiation.py"),
        Rule("encoding", f"{api}objects.py", "check_type_meta"),
        *(Rule("encoding", f"{api}http.py", name) for name in _HTTP_CODEC),
        *(Rule("encoding", f"{storage}store.py", name) for name in ("encode", "decode", "_value")),
        Rule("encoding", f"{storage}encryption.py"),
        Rule("etcd (client side)", f"{storage}etcd.py"),
        Rule("etcd (client side)", f"{storage}store.py"),
        Rule("etcd (client side)", "/grpc/"),
        Rule("etcd (client side)", "/aetcd/"),
        Rule("etcd (client side)", "/google/protobuf/"),
        # The one Python thread of the server whose target is native code:
        # grpc.aio's completion-queue poller (its target is Cython, unseen).
        Rule("etcd (client side)", "/threading.py", "Thread.run"),
        # uvloop drives the stdlib's SSLObject, so TLS work has Python frames.
        Rule(OTHER, "/ssl.py", part="TLS (handshakes, records)"),
        # The frames every stack starts with: alone, the loop is in native code.
        *(Rule(OTHER, root, part=NATIVE_PART) for root in _ROOTS),
        Rule(OTHER, f"{storage}watchcache.py", part="watch cache"),
        Rule(OTHER, f"{api}metrics.py", part="request metrics"),
        Rule(OTHER, "/prometheus_client/", part="request metrics"),
        Rule(OTHER, api, part="handler (routing, limiter, objects)"),
        Rule(OTHER, "/controlplane/", part="handler (routing, limiter, objects)"),
        Rule(OTHER, "/uvicorn/", part="HTTP server (uvicorn, starlette)"),
        Rule(OTHER, "/starlette/", part="HTTP server (uvicorn, starlette)"),
        Rule(OTHER, "/fastapi/", part="HTTP server (uvicorn, starlette)"),
    )


_HTTP_CODEC = (
    "json_response",
    "parse_document",
    "_protobuf_document",
    "check_decoded_size",
    "decode_document",
)
_ROOTS = (
    "/controlplane/__main__.py",
    "/controlplane/apiserver/main.py",
    "/uvicorn/server.py",
    "/uvicorn/main.py",
    "/asyncio/runners.py",
    "/asyncio/base_events.py",
    "/asyncio/events.py",
)
# A stack with no known frame at all is the event loop running native code:
# uvloop's sockets and callbacks, which py-spy cannot see into.
NATIVE_PART = "event loop & native (uvloop, sockets)"


def parse_frame(frame: str) -> tuple[str, str]:
    """``function (path:line)`` as (function, path)."""
    function, _, rest = frame.partition(" (")
    return function, rest.rpartition(":")[0]


def classify(frames: list[str], rules: tuple[Rule, ...]) -> tuple[str, str]:
    """The bucket (and part of "other") of the innermost frame that a rule knows."""
    for frame in reversed(frames):
        function, path = parse_frame(frame)
        for rule in rules:
            if rule.path in path and rule.function in function:
                return rule.bucket, rule.part
    return OTHER, NATIVE_PART


def raw_stacks(text: str) -> Iterator[tuple[list[str], int]]:
    """py-spy's ``--format raw`` (collapsed stacks): ``frame;frame;... COUNT`` per line."""
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def tally(text: str) -> tuple[Counter[str], Counter[str]]:
    """Samples per bucket, and per part of "other"."""
    rules = _rules()
    buckets: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    for frames, count in raw_stacks(text):
        bucket, part = classify(frames, rules)
        buckets[bucket] += count
        if bucket == OTHER:
            parts[part] += count
    return buckets, parts


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds per thread of ``pid``, with the thread's name."""
    tick = os.sysconf("SC_CLK_TCK")
    threads: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        threads[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return threads


def split_cpu(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> tuple[float, float]:
    """CPU seconds spent in between by Python threads and by native ones (gRPC's).

    CPython names its threads after the executable; gRPC's C++ threads name
    themselves (``default-executo``, ``event_engine``...).
    """
    python = native = 0.0
    for tid, (name, spent) in after.items():
        delta = spent - before.get(tid, (name, 0.0))[1]
        if name.startswith("python"):
            python += delta
        else:
            native += delta
    return python, native


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Sampler:
    """py-spy recording ``pid`` until ``stop``, without pausing it (``--nonblocking``)."""

    def __init__(self, py_spy: str, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output
        self.log = output.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None
        self.argv = [
            py_spy, "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE),
            "--format", "raw", "--output", str(output), "--nonblocking", "--full-filenames",
        ]  # fmt: skip

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def stop(self) -> str:
        """The collapsed stacks; py-spy writes them when interrupted, as on Ctrl-C."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {self.log.read_text(errors='replace')}")
        return self.output.read_text()


def table(
    buckets: Counter[str], parts: Counter[str], python_cpu: float, native_cpu: float, creates: int
) -> list[str]:
    """The per-create table: samples scaled to the Python threads' measured CPU."""
    samples = sum(buckets.values()) or 1

    def us(count: int) -> float:
        return count / samples * python_cpu / creates * 1e6

    lines = [f"  {'layer':<46} {'CPU µs/create':>13} {'share':>6}"]
    for bucket in (*BUCKETS, OTHER):
        lines.append(
            f"  {bucket:<46} {us(buckets[bucket]):>13.0f} {buckets[bucket] / samples:>6.0%}"
        )
        if bucket == OTHER:
            for part, count in parts.most_common():
                lines.append(f"    {part:<44} {us(count):>13.0f} {count / samples:>6.0%}")
    lines.append(
        f"  {'sum (Python threads, measured CPU)':<46} {python_cpu / creates * 1e6:>13.0f}"
    )
    lines.append(
        f"  {'native threads (gRPC C++), not sampled':<46} {native_cpu / creates * 1e6:>13.0f}"
    )
    lines.append(f"  ({samples} samples at {SAMPLE_RATE} Hz)")
    return lines
