"""docs/architecture.md names real files: a walk through code that moved is a wrong map."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
TOP = ("corral/", "corralctl/", "controlplane/", "scheduler/", "nodeagent/", "proto/", "tools/")


def named_paths(text: str) -> list[str]:
    """Every backquoted path under one of the repository's top-level source folders."""
    quoted = re.findall(r"`([^`\s]+)`", text)
    return [q for q in quoted if q.startswith(TOP) and (q.endswith("/") or "." in q)]


def test_every_file_the_architecture_names_exists() -> None:
    named = named_paths(DOC.read_text())
    assert len(named) > 30, named
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing, f"docs/architecture.md names files that are not there: {missing}"


def test_the_check_sees_a_missing_file() -> None:
    named = named_paths("see `nodeagent/nothing.py` and `corral/api/` and `README.md`")
    assert named == ["nodeagent/nothing.py", "corral/api/"]
    assert not (ROOT / named[0]).exists()
