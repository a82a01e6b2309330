"""A small HTTP endpoint: ``/healthz``, ``/readyz``, ``/leader`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from scheduler.metrics import Metrics


def _app(
    metrics: Metrics, is_leader: Callable[[], bool], is_ready: Callable[[], bool]
) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        # Ready once the caches hold the cluster, leading or standing by.
        if is_ready():
            return web.Response(text="ok")
        return web.Response(text="caches not synced", status=503)

    async def leader(request: web.Request) -> web.Response:
        return web.Response(text="true" if is_leader() else "false")

    async def render(request: web.Request) -> web.Response:
        return web.Response(
            text=metrics.render(), content_type="text/plain", headers={"X-Version": "0.0.4"}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/leader", leader)
    app.router.add_get("/metrics", render)
    return app


async def start(
    metrics: Metrics, address: str, is_leader: Callable[[], bool], is_ready: Callable[[], bool]
) -> tuple[web.AppRunner, int]:
    """Serve on ``HOST:PORT`` (port 0 picks one); the runner to clean up, and the port."""
    host, _, port = address.rpartition(":")
    runner = web.AppRunner(_app(metrics, is_leader, is_ready), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else int(port)
