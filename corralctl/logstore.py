"""The cluster log store: systemd-journal-remote writing journal files, read with journalctl.

The agents POST their containers' lines to journal-remote (nodeagent.logshipping);
it writes them into journal files in one directory, which ``journalctl
--directory`` reads with exact field matches. Reading needs no corral process:
the store outlives any node, so a pod's log is still there after its node went.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from corral.api.labels import parse_label_selector

JOURNAL_REMOTE_PATHS = (
    "/lib/systemd/systemd-journal-remote",
    "/usr/lib/systemd/systemd-journal-remote",
)
DEFAULT_PORT = 19532  # journal-remote's own default port
_EQUALITY = re.compile(r"^\s*([^=!,\s]+)\s*==?\s*([^=!,\s]*)\s*$")


class LogStoreError(Exception):
    pass


def journal_remote_binary() -> str:
    for path in JOURNAL_REMOTE_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise LogStoreError(
        "systemd-journal-remote is not installed: apt-get install systemd-journal-remote"
    )


@dataclass(frozen=True)
class StoreTLS:
    """journal-remote's serving pair (a certificate of the cluster CA)."""

    cert: Path
    key: Path


def journal_remote_argv(directory: Path, listen: str, tls: StoreTLS | None = None) -> list[str]:
    """journal-remote taking uploads at ``listen`` (host:port) into ``directory``.

    With ``tls``, over HTTPS. Debian's build has no ``--trust`` (client
    certificates are not checked), so who may write is the listening
    address's business: corral up binds the loopback.
    """
    # split-mode=host: one journal file per sending node, each written by one
    # connection at a time, as journal-remote wants for a directory output.
    argv = [journal_remote_binary(), f"--output={directory}/", "--split-mode=host"]
    if tls is None:
        return [*argv, f"--listen-http={listen}"]
    return [
        *argv,
        f"--listen-https={listen}",
        f"--cert={tls.cert}",
        f"--key={tls.key}",
    ]


@dataclass(frozen=True)
class StoreQuery:
    namespace: str | None = None  # None: every namespace
    pod: str | None = None
    container: str | None = None
    selector: str = ""
    since_seconds: int | None = None
    grep: str = ""
    tail: int = -1


@dataclass(frozen=True)
class StoredLine:
    ts_us: int
    namespace: str
    pod: str
    container: str
    node: str
    text: str

    def timestamp(self) -> str:
        seconds, micros = divmod(self.ts_us, 1_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def _matches(query: StoreQuery) -> list[str]:
    """Exact journal matches; each is a different field, so journalctl ANDs them."""
    matches = []
    if query.namespace is not None:
        matches.append(f"CORRAL_NAMESPACE={query.namespace}")
    if query.pod:
        matches.append(f"CORRAL_POD={query.pod}")
    if query.container:
        matches.append(f"CORRAL_CONTAINER={query.container}")
    # One label equality narrows the read; the whole selector is checked below
    # (journalctl ORs matches of one field, where a selector ANDs them).
    for term in query.selector.split(","):
        equality = _EQUALITY.match(term)
        if equality is not None and equality.group(2):
            matches.append(f"CORRAL_LABEL={equality.group(1)}={equality.group(2)}")
            break
    return matches


def _text(value: Any) -> str:
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return bytes(value).decode(errors="replace")  # a binary field
        return _text(value[-1]) if value else ""
    return "" if value is None else str(value)


def _labels(value: Any) -> dict[str, str]:
    values = (
        value if isinstance(value, list) and not all(isinstance(v, int) for v in value) else [value]
    )
    pairs = (_text(v).partition("=") for v in values if v is not None)
    return {key: label for key, _, label in pairs if key}


def _lines(output: bytes, query: StoreQuery) -> list[StoredLine]:
    selector = parse_label_selector(query.selector) if query.selector else None
    pattern = re.compile(query.grep) if query.grep else None
    found = []
    for raw in output.splitlines():
        if not raw.strip():
            continue
        entry = orjson.loads(raw)
        if selector is not None and not selector.matches(_labels(entry.get("CORRAL_LABEL"))):
            continue
        text = _text(entry.get("MESSAGE"))
        if pattern is not None and not pattern.search(text):
            continue
        found.append(
            StoredLine(
                ts_us=int(entry.get("__REALTIME_TIMESTAMP") or 0),
                namespace=_text(entry.get("CORRAL_NAMESPACE")),
                pod=_text(entry.get("CORRAL_POD")),
                container=_text(entry.get("CORRAL_CONTAINER")),
                node=_text(entry.get("CORRAL_NODE")),
                text=text,
            )
        )
    found.sort(key=lambda line: line.ts_us)
    return found[-query.tail :] if query.tail >= 0 else found


async def read(directory: Path, query: StoreQuery, *, timeout: float = 60.0) -> list[StoredLine]:
    """The stored lines that answer ``query``, oldest first."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        raise LogStoreError("journalctl is not installed (it comes with systemd)")
    if not directory.is_dir():
        raise LogStoreError(f"no log store at {directory}")
    if query.tail == 0:
        return []
    argv = [journalctl, f"--directory={directory}", "--output=json", "--no-pager", "--quiet"]
    if query.since_seconds is not None:
        argv.append(f"--since=@{int(time.time()) - query.since_seconds}")
    argv += _matches(query)
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise LogStoreError(f"journalctl took longer than {timeout:.0f}s") from None
    # journalctl exits 1 with "-- No entries --" on stderr when nothing matches.
    if process.returncode not in (0, 1) or (process.returncode == 1 and out.strip()):
        raise LogStoreError(f"journalctl failed: {err.decode(errors='replace').strip()}")
    return _lines(out, query)


def render(lines: Iterable[StoredLine], *, prefix: bool, timestamps: bool) -> str:
    parts = []
    for line in lines:
        head = f"[pod/{line.pod}/{line.container}] " if prefix else ""
        stamp = f"{line.timestamp()} " if timestamps else ""
        parts.append(f"{head}{stamp}{line.text}\n")
    return "".join(parts)
