"""The scheduler's own endpoints beside corral.metrics' ``/metrics`` and ``/healthz``."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from corral.metrics import Handler


def handlers(is_leader: Callable[[], bool], is_ready: Callable[[], bool]) -> dict[str, Handler]:
    """``/readyz`` (caches synced, leading or standing by) and ``/leader``."""

    async def readyz(request: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="ok")
        return web.Response(text="caches not synced", status=503)

    async def leader(request: web.Request) -> web.Response:
        return web.Response(text="true" if is_leader() else "false")

    return {"/readyz": readyz, "/leader": leader}
