"""Small helpers for tests that watch real processes converge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``.

    For state that other processes change, where there is no event to wait
    on; the bound keeps a broken system from hanging the suite.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while True:
        result = check()
        last = await result if asyncio.iscoroutine(result) else result  # type: ignore[assignment]
        if last:
            return last  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)
