"""The agent gives freed heap pages back to the system, and keeps doing so."""

from __future__ import annotations

import asyncio

import pytest

from corral.clock import ManualClock
from nodeagent import memory


def test_trim_returns_the_pages_of_a_freed_burst() -> None:
    if not memory.trim():
        pytest.skip("no glibc malloc_trim on this system")

    def rss_kib() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    # 64 MiB in blocks below glibc's mmap threshold: they come from the heap and,
    # once freed, stay resident until trimmed.
    blocks = [bytearray(64 * 1024) for _ in range(1024)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])
    peak = rss_kib()
    del blocks
    memory.trim()
    assert rss_kib() < peak - 32 * 1024


async def test_the_loop_trims_every_interval_until_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_trim", lambda pad: calls.append(pad) or 1)
    clock = ManualClock()
    task = asyncio.create_task(memory.trim_loop(clock, interval=60))
    for _ in range(3):
        await asyncio.sleep(0)
    assert calls == [0]
    clock.advance(60)
    for _ in range(3):
        await asyncio.sleep(0)
    assert calls == [0, 0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
