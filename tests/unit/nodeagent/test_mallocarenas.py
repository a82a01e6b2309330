"""The agent caps glibc's malloc arenas; checked in a child, which it changes for good."""

from __future__ import annotations

import subprocess
import sys


def test_the_cap_is_taken_on_glibc() -> None:
    # A fresh interpreter: mallopt changes the process it runs in for good.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from nodeagent.mallocarenas import limit_malloc_arenas; print(limit_malloc_arenas())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "True"
