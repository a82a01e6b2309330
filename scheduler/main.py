"""``corral scheduler``: watch for pods with no node and bind each to the best node.

Several copies may run; with ``--leader-elect true`` (the default) the one
holding the Lease ``kube-system/corral-scheduler`` binds and the others
keep their caches warm, ready to take over once the Lease expires. A
scheduler that loses the Lease exits (status 1) so that its supervisor
starts it afresh, rather than carry on with a cache it no longer owns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys

from corral import metrics
from corral.client import kubeconfig
from corral.client.kubeconfig import KubeconfigError
from corral.client.rest import Client
from corral.leaderelection import ElectionConfig, LeaderElector
from corral.logformat import add_log_format_flag, configure_logging
from scheduler import status_server
from scheduler.cache import Cache
from scheduler.config import SchedulerConfig, load_config
from scheduler.framework import ConfigError
from scheduler.handle import ClusterHandle
from scheduler.pipeline import Pipeline
from scheduler.scheduler import Scheduler
from scheduler.selectors import SpreadingSelectors

log = logging.getLogger("scheduler")

# The general client's connections: five watches, events, status writes
# and the Lease. Binds have connections of their own (scheduler.binder).
CLIENT_CONNECTIONS = 16
INFORMER_STOP_SECONDS = 5.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corral scheduler", description=__doc__.split("\n")[0])
    p.add_argument(
        "--server",
        help="API server URL, or several comma separated to fail over across "
        "(default: from the kubeconfig, with its corral.io/servers extension)",
    )
    p.add_argument("--kubeconfig", help="kubeconfig to read the server and credentials from")
    p.add_argument("--config", help="scheduler config file (YAML or JSON): plugins, weights, ...")
    p.add_argument("--leader-elect", choices=("true", "false"), default="true")
    p.add_argument("--lease-name", default="corral-scheduler")
    p.add_argument("--lease-namespace", default="kube-system")
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--identity", default=f"{socket.gethostname()}_{os.getpid()}")
    metrics.add_flags(p, "--metrics-address")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    add_log_format_flag(p)
    return p


async def run(args: argparse.Namespace, config: SchedulerConfig, stop: asyncio.Event) -> int:
    """Run until ``stop``; the process's exit status."""
    client_config = kubeconfig.load(args.kubeconfig, server=args.server)
    elector: LeaderElector | None = None
    async with Client(client_config, max_connections=CLIENT_CONNECTIONS) as client:
        scheduler = Scheduler(client, config)

        def is_leader() -> bool:
            return elector is None or elector.is_leader

        runner = await metrics.serve_from_flags(
            args,
            "scheduler",
            healthy=lambda: True,
            extra=status_server.handlers(is_leader, scheduler.synced),
        )
        informer_stop = asyncio.Event()
        informers = asyncio.ensure_future(scheduler.run_informers(informer_stop))
        try:
            if args.leader_elect == "false":
                await scheduler.run(stop)
                return 0
            elector = LeaderElector(
                client,
                ElectionConfig(
                    name=args.lease_name,
                    identity=args.identity,
                    namespace=args.lease_namespace,
                    lease_duration=args.leader_elect_lease_duration,
                    renew_deadline=args.leader_elect_renew_deadline,
                    retry_period=args.leader_elect_retry_period,
                ),
            )
            log.info("%s: waiting to lead %s", args.identity, args.lease_name)
            try:
                await elector.run(lambda: _lead(scheduler, stop), stop)
            except Exception:
                # _lead logged the traceback; the Lease is handed back.
                log.error("%s: the scheduling loop failed; exiting", args.identity)
                return 1
            if stop.is_set():
                return 0
            log.error("%s: lost the lease %s; exiting", args.identity, args.lease_name)
            return 1
        finally:
            # Informers stop by their event (a watch cancelled mid-read does
            # not unwind cleanly); cancelling is the fallback.
            informer_stop.set()
            done, _ = await asyncio.wait({informers}, timeout=INFORMER_STOP_SECONDS)
            if not done:
                informers.cancel()
            # On the way out nothing reads the informers any more: how their
            # watches unwound no longer matters.
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await informers
            if runner is not None:
                await runner.cleanup()


async def _lead(scheduler: Scheduler, stop: asyncio.Event) -> None:
    try:
        await scheduler.run(stop)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the scheduling loop failed")
        raise


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config)
        # A throwaway pipeline: a bad plugin name or argument fails before
        # anything connects.
        Pipeline(config, ClusterHandle(Cache(), SpreadingSelectors()))
        if not (
            args.leader_elect_lease_duration
            > args.leader_elect_renew_deadline
            > args.leader_elect_retry_period
            > 0
        ):
            raise ConfigError("need lease duration > renew deadline > retry period > 0")
    except ConfigError as error:
        print(f"corral scheduler: {error}", file=sys.stderr)
        return 2
    # The cache is a large heap of long-lived objects: collect it rarely.
    gc.set_threshold(50_000, 20, 100)

    async def start() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            return await run(args, config, stop)
        except KubeconfigError as error:
            print(f"corral scheduler: {error}", file=sys.stderr)
            return 2

    try:
        import uvloop
    except ImportError:
        # uvloop is an optional speed-up; the standard loop does the same work.
        return asyncio.run(start())
    return uvloop.run(start())
