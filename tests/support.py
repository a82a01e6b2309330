"""Small helpers for tests that watch real processes converge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from corral.api.resources import REGISTRY, ResourceType
from corralctl.units import Layout

T = TypeVar("T")


def resource(name: str) -> ResourceType:
    """A registered resource by plural, singular or short name; there must be one."""
    found = REGISTRY.resolve(name)
    assert found is not None, name
    return found


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``.

    For state that other processes change, where there is no event to wait
    on; the bound keeps a broken system from hanging the suite.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        result = check()
        last = await result if asyncio.iscoroutine(result) else result
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


def installed_layout(tmp_path: Path) -> Layout:
    """A Layout under ``tmp_path`` whose ``corral`` exists, as systemd-analyze verify needs."""
    layout = Layout(
        etc_dir=tmp_path / "etc",
        state_dir=tmp_path / "state",
        log_dir=tmp_path / "log",
        unit_dir=tmp_path / "units",
    )
    # systemd-analyze checks that ExecStart names an executable.
    layout.corral.parent.mkdir(parents=True)
    layout.corral.write_text("#!/bin/sh\n")
    layout.corral.chmod(0o755)
    layout.unit_dir.mkdir()
    return layout
