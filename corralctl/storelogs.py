"""``corral logs`` from the cluster log store: a gone node's pods, and searches across pods.

``corral logs -l app=x --since 1h --grep TEXT`` reads the store (never the
nodes); ``corral logs POD`` reads the node, and the store when the node
cannot answer (it is gone, or the pod is). The store is a directory of
journal files on the control-plane host (corralctl.logstore): ``--log-store``,
or ``logstore/`` beside the kubeconfig, where ``corral up`` puts it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from corralctl import logstore
from corralctl.context import CliContext, UsageError


def add_store_flags(logs: argparse.ArgumentParser) -> None:
    logs.add_argument(
        "-l", "--selector", default="", help="the pods with these labels, from the log store"
    )
    logs.add_argument("--grep", default="", help="only lines matching this regular expression")
    logs.add_argument(
        "--from-store", action="store_true", help="read the cluster log store, not the node"
    )
    logs.add_argument(
        "--log-store",
        default=os.environ.get("CORRAL_LOG_STORE", ""),
        help="the log store's journal directory (default: logstore/ beside the kubeconfig)",
    )


def wants_store(args: argparse.Namespace) -> bool:
    return bool(args.selector or args.grep or args.from_store or args.all_namespaces)


def store_directory(args: argparse.Namespace) -> Path | None:
    if args.log_store:
        return Path(args.log_store)
    config = args.kubeconfig or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    if not config:
        return None
    candidate = Path(config).expanduser().parent / "logstore"
    return candidate if candidate.is_dir() else None


async def logs_from_store(
    ctx: CliContext, args: argparse.Namespace, since_seconds: int | None
) -> int:
    if args.previous or args.follow:
        raise UsageError("--previous and --follow read the node, not the log store")
    if not args.pod and not args.selector:
        raise UsageError("name a pod, or select pods with -l")
    directory = store_directory(args)
    if directory is None:
        raise UsageError("no log store found: pass --log-store DIR (or set CORRAL_LOG_STORE)")
    pod = args.pod.split("/", 1)[-1] if args.pod else None
    query = logstore.StoreQuery(
        namespace=None if args.all_namespaces else ctx.namespace,
        pod=pod,
        container=args.container or args.container_arg or None,
        selector=args.selector,
        since_seconds=since_seconds,
        grep=args.grep,
        tail=args.tail,
    )
    try:
        lines = await logstore.read(directory, query)
    except logstore.LogStoreError as error:
        raise UsageError(str(error)) from None
    many = len({(line.namespace, line.pod, line.container) for line in lines}) > 1
    ctx.out.write(logstore.render(lines, prefix=many, timestamps=args.timestamps))
    ctx.out.flush()
    return 0
