"""The API server's /metrics on a port of its own, behind authentication and RBAC.

kube-apiserver serves /metrics on its main port; corral gives it a port of
its own (``--metrics-port``) so scrapes can be firewalled apart from the
API, but guards it the same way: the same certificate, the same Gate
(authentication, then RBAC on the non-resource URL ``/metrics``), so an
anonymous scrape gets 401 and a user without ``get`` on ``/metrics`` gets
403. ``/healthz``, ``/livez`` and ``/readyz`` answer anyone, as on the main
port. The server runs inside the API server's event loop and lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Generator, Sequence

import prometheus_client
import uvicorn
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from controlplane.apiserver import http
from controlplane.apiserver.config import Security
from controlplane.apiserver.serving import PolicyConfig
from controlplane.apiserver.tlsserving import CertAwareHttpProtocol
from controlplane.apiserver.workermetrics import gather
from corral.api import errors

log = logging.getLogger(__name__)

HEALTH_PATHS = frozenset(("/healthz", "/livez", "/readyz"))
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0


def metrics_app(peers: Sequence[str] = ()) -> ASGIApp:
    """``/metrics`` in Prometheus' text format; the health checks; 404 for the rest.

    ``peers``: the other workers' metrics sockets, whose figures are served
    too, each labelled by its worker (workermetrics.py).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        response: Response
        if scope["method"] not in ("GET", "HEAD"):
            response = http.status_response(
                errors.ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            )
        elif path == "/metrics":
            body = await gather(peers) if peers else prometheus_client.generate_latest()
            response = Response(body, media_type=prometheus_client.CONTENT_TYPE_LATEST)
        elif path in HEALTH_PATHS:
            response = Response("ok", media_type="text/plain")
        else:
            response = http.status_response(
                errors.ApiError(404, "NotFound", "the server could not find the requested resource")
            )
        await response(scope, receive, send)

    return app


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the API server it runs beside."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class MetricsEndpoint:
    def __init__(self, app: ASGIApp, host: str, port: int, security: Security | None) -> None:
        tls: dict[str, object] = {}
        if security is not None:
            tls = {
                "ssl_certfile": security.cert_file,
                "ssl_keyfile": security.key_file,
                "ssl_ca_certs": security.client_ca_file,
                "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            }
        self.scheme = "https" if security is not None else "http"
        self.host = host
        self._config = PolicyConfig(
            app,
            host=host,
            port=port,
            http=CertAwareHttpProtocol,
            ws="none",
            lifespan="off",
            access_log=False,
            log_level="warning",
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=1,
            **tls,  # type: ignore[arg-type]
        )
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = port

    async def start(self) -> None:
        server = self._server = _EmbeddedServer(self._config)
        self._task = asyncio.create_task(server.serve(), name="metrics-server")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_SECONDS
        while not server.started:
            if self._task.done():
                self._task.result()  # raises why it could not listen
                raise RuntimeError(f"the metrics server on port {self.port} stopped at start")
            if loop.time() > deadline:
                raise TimeoutError(f"the metrics server on port {self.port} did not start")
            await asyncio.sleep(0.01)
        for listener in server.servers:
            for sock in listener.sockets:
                self.port = int(sock.getsockname()[1])
        log.info("serving /metrics at %s://%s:%d/metrics", self.scheme, self.host, self.port)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("the metrics server did not stop in time")
