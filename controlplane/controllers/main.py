"""``corral controller-manager``: every controller in one leader-elected process."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from controlplane.controllers.base import Context
from controlplane.controllers.nodelifecycle import NodeLifecycleController, TaintEvictionController
from controlplane.controllers.registry import CONTROLLERS, ControllerFactory
from corral import metrics
from corral.client import kubeconfig
from corral.client.rest import Client
from corral.events import EventRecorder
from corral.leaderelection import ElectionConfig, LeaderElector
from corral.logformat import add_log_format_flag, configure_logging

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corral controller-manager", description=__doc__)
    p.add_argument(
        "--server",
        help="API server URL, or several comma separated to fail over across "
        "(default: from the kubeconfig, with its corral.io/servers extension)",
    )
    p.add_argument("--kubeconfig", help="kubeconfig to read the server and credentials from")
    p.add_argument(
        "--controllers",
        default="*",
        help="comma-separated controllers to run, or * for all (default)",
    )
    p.add_argument("--leader-elect", choices=("true", "false"), default="true")
    p.add_argument("--lease-name", default="corral-controller-manager")
    p.add_argument("--identity", default=f"{socket.gethostname()}_{os.getpid()}")
    p.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=15.0,
        help="seconds without a node heartbeat before it is NotReady",
    )
    p.add_argument(
        "--default-toleration-seconds",
        type=float,
        default=20.0,
        help="how long pods stay on an unreachable node before eviction",
    )
    p.add_argument("--log-level", default="info")
    metrics.add_flags(p)
    add_log_format_flag(p)
    return p


async def run(args: argparse.Namespace, stop: asyncio.Event) -> None:
    config = kubeconfig.load(args.kubeconfig, server=args.server)
    registry: dict[str, ControllerFactory] = {
        **CONTROLLERS,
        "nodelifecycle": functools.partial(
            NodeLifecycleController, grace_period=args.node_monitor_grace_period
        ),
        "taint-eviction": functools.partial(
            TaintEvictionController, default_toleration_seconds=args.default_toleration_seconds
        ),
    }
    wanted = (
        list(registry)
        if args.controllers == "*"
        else [name.strip() for name in args.controllers.split(",") if name.strip()]
    )
    unknown = [name for name in wanted if name not in registry]
    if unknown:
        raise SystemExit(f"unknown controllers: {', '.join(unknown)}; known: {', '.join(registry)}")
    async with Client(config, max_connections=64) as client:
        ctx = Context(client=client, events=EventRecorder(client, "controller-manager"))
        factories = [registry[name] for name in wanted]

        async def lead() -> None:
            await run_controllers(ctx, factories, wanted)

        if args.leader_elect == "false":
            await run_until_stopped(lead, stop)
            return
        elector = LeaderElector(
            client, ElectionConfig(name=args.lease_name, identity=args.identity)
        )
        await elector.run(lead, stop)


async def run_controllers(
    ctx: Context, factories: Sequence[ControllerFactory], names: Sequence[str]
) -> None:
    """Run the shared informers and the controllers until one of them fails (or cancelled)."""
    controllers = [factory(ctx) for factory in factories]
    informer_stop = asyncio.Event()
    tasks = [asyncio.create_task(i.run(informer_stop)) for i in ctx.informers.values()]
    tasks += [asyncio.create_task(c.run(informer_stop)) for c in controllers]
    log.info("running controllers: %s", ", ".join(names))
    try:
        await asyncio.gather(*tasks)
    finally:
        informer_stop.set()
        for task in tasks:
            task.cancel()


async def run_until_stopped(
    work: Callable[[], Coroutine[Any, Any, None]], stop: asyncio.Event
) -> None:
    """Run ``work`` until ``stop``; if it fails first, its exception goes on up."""
    task = asyncio.create_task(work())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        task.result()
        return
    task.cancel()
    await asyncio.wait({task})
    # What the work raised on its way out after the cancel is logged, not
    # lost, and does not turn a clean stop into a failure.
    if not task.cancelled() and task.exception() is not None:
        log.error("the controllers failed as they stopped", exc_info=task.exception())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)

    async def start() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        runner = await metrics.serve_from_flags(args, "controller-manager")
        try:
            await run(args, stop)
        finally:
            if runner is not None:
                await runner.cleanup()

    try:
        asyncio.run(start())
    except Exception:
        # The work stopped under us: exit non-zero, with the traceback, so
        # that the supervisor restarts the process and the reason is on
        # record (as kube-controller-manager does).
        log.exception("the controller manager failed; exiting")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
