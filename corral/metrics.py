"""Prometheus metrics plumbing shared by every corral component.

Metrics are prometheus_client objects in its default registry, which also
carries the standard ``process_*`` and ``python_*`` collectors. Latencies
are histograms (aggregatable across processes), never client-side
summaries. Label values are bounded by construction: verbs, resources,
controller names, operation types; never an object's name.

``serve`` starts a small aiohttp server with ``/metrics`` and ``/healthz``
(and any extra GET handlers a component adds, such as the scheduler's
``/readyz``), over TLS when the component has a certificate.
"""

from __future__ import annotations

import argparse
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping

import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from corral import tlspolicy

log = logging.getLogger(__name__)

# Kubernetes' workqueue metrics (k8s.io/component-base/metrics/prometheus/workqueue):
# exponential buckets from 10 ns to 10 s, by factors of ten.
WORKQUEUE_BUCKETS = tuple(10.0**exponent for exponent in range(-8, 2))

WORKQUEUE_DEPTH = Gauge("workqueue_depth", "Current depth of workqueue", ["name"])
WORKQUEUE_ADDS = Counter("workqueue_adds", "Total number of adds handled by workqueue", ["name"])
WORKQUEUE_RETRIES = Counter(
    "workqueue_retries", "Total number of retries handled by workqueue", ["name"]
)
WORKQUEUE_QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.",
    ["name"],
    buckets=WORKQUEUE_BUCKETS,
)
WORKQUEUE_WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.",
    ["name"],
    buckets=WORKQUEUE_BUCKETS,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server-side context under corral's TLS policy."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return tlspolicy.apply(context)


def render(registry: CollectorRegistry = prometheus_client.REGISTRY) -> bytes:
    """The registry in Prometheus' text exposition format."""
    return prometheus_client.generate_latest(registry)


def metrics_response(registry: CollectorRegistry = prometheus_client.REGISTRY) -> web.Response:
    return web.Response(
        body=render(registry), headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
    )


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, meaning loopback) as a host and a port."""
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"expected HOST:PORT, got {address!r}") from None
    return host.strip("[]") or "127.0.0.1", number


async def serve(
    address: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    healthy: Callable[[], bool] = lambda: True,
    extra: Mapping[str, Handler] | None = None,
    registry: CollectorRegistry = prometheus_client.REGISTRY,
) -> tuple[web.AppRunner, int]:
    """Serve ``/metrics`` and ``/healthz`` on ``HOST:PORT`` (port 0 picks one).

    The runner (call ``cleanup()`` to stop) and the port actually bound.
    """

    async def metrics(request: web.Request) -> web.Response:
        return metrics_response(registry)

    async def healthz(request: web.Request) -> web.Response:
        if healthy():
            return web.Response(text="ok")
        return web.Response(text="unhealthy", status=503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    for path, handler in (extra or {}).items():
        app.router.add_get(path, handler)
    host, port = split_address(address)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port


def add_flags(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """The serving flags of a component's /metrics and /healthz, as Kubernetes names them."""
    group = parser.add_argument_group("metrics")
    group.add_argument(
        "--metrics-bind-address",
        *aliases,
        dest="metrics_bind_address",
        default="",
        metavar="HOST:PORT",
        help="serve /metrics and /healthz here (port 0: any free port; default: off)",
    )
    group.add_argument(
        "--tls-cert-file", help="serve /metrics over HTTPS with this certificate (PEM)"
    )
    group.add_argument("--tls-private-key-file", help="the key of --tls-cert-file (PEM)")


async def serve_from_flags(
    args: argparse.Namespace,
    component: str,
    *,
    healthy: Callable[[], bool] = lambda: True,
    extra: Mapping[str, Handler] | None = None,
) -> web.AppRunner | None:
    """Start the server ``add_flags`` configured, or None when it is off."""
    address: str = args.metrics_bind_address
    if not address:
        return None
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        raise SystemExit("--tls-cert-file and --tls-private-key-file go together")
    context = (
        server_ssl_context(args.tls_cert_file, args.tls_private_key_file)
        if args.tls_cert_file
        else None
    )
    runner, port = await serve(address, ssl_context=context, healthy=healthy, extra=extra)
    scheme = "https" if context else "http"
    host, _ = split_address(address)
    log.info("%s: serving /metrics and /healthz at %s://%s:%d", component, scheme, host, port)
    return runner


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs.

    Linear interpolation inside the bucket the rank falls in; NaN when empty.
    For benchmarks and tests reading a scrape, not for the serving path.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] == 0:
        return float("nan")
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound
