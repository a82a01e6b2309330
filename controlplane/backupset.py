"""A directory of backups: timestamped names, retention, and a listing.

``corral backup save DIR --keep N`` writes ``corral-backup-<UTC time>.tar.gz``
into DIR and then deletes all but the newest N of them, as the timer that
``corral install master`` sets up runs it. Only files of that name are ever
deleted: the directory may be a mount shared with other things. The newest
backup is written completely (under a ``.partial`` name, then renamed)
before any old one goes, so a failed run never lowers the count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PREFIX = "corral-backup-"
SUFFIX = ".tar.gz"
_NAME = re.compile(rf"^{PREFIX}(\d{{8}}T\d{{6}}\.\d{{6}}Z){re.escape(SUFFIX)}$")


@dataclass(frozen=True, slots=True)
class Entry:
    path: Path
    stamp: str


def new_name(now: datetime) -> str:
    """A name that sorts by time; microseconds keep two saves in one second apart."""
    return f"{PREFIX}{now.strftime('%Y%m%dT%H%M%S.%fZ')}{SUFFIX}"


def entries(directory: Path) -> list[Entry]:
    """The backups in ``directory``, oldest first."""
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match is not None and path.is_file():
            found.append(Entry(path, match.group(1)))
    # Fixed-width UTC stamps: their text order is their time order.
    return sorted(found, key=lambda e: e.stamp)


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups; what was deleted."""
    if keep < 1:
        raise ValueError("--keep: at least 1")
    doomed = entries(directory)[:-keep]
    for entry in doomed:
        entry.path.unlink(missing_ok=True)
    return [e.path for e in doomed]
