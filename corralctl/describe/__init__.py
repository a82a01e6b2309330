"""``corral describe``: kubectl's detailed, human-oriented view of objects.

The command, and the table that picks a describer by kind. The output is
built the way kubectl builds it (see ``tabwriter``); each family of kinds
has a module of its own:

- ``pods``, ``containers``, ``volumes``: pods and pod templates;
- ``workloads``: ReplicationControllers, ReplicaSets, Deployments, DaemonSets;
- ``batch``: Jobs and CronJobs;
- ``networking``: Services and Endpoints;
- ``nodes``; ``storage``: PersistentVolumes, claims, StorageClasses;
- ``other``: Namespaces, Secrets, ConfigMaps, PodDisruptionBudgets;
- ``generic``: every other kind, as kubectl's generic describer.

``formatting``, ``quantities``, ``source`` and ``events`` are what they share.
"""

from __future__ import annotations

import argparse

from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.objects import Obj, name_of
from corralctl import manifests
from corralctl.context import CliContext, UsageError
from corralctl.describe.batch import describe_cron_job, describe_job
from corralctl.describe.containers import describe_probe
from corralctl.describe.formatting import pod_qos_class
from corralctl.describe.generic import describe_generic, smart_label
from corralctl.describe.networking import describe_endpoints, describe_service, format_endpoints
from corralctl.describe.nodes import describe_node, node_roles
from corralctl.describe.other import (
    describe_config_map,
    describe_namespace,
    describe_pod_disruption_budget,
    describe_secret,
)
from corralctl.describe.pods import describe_pod, write_pod_template
from corralctl.describe.source import ApiClient, Describer, DescribeSource
from corralctl.describe.storage import (
    describe_persistent_volume,
    describe_persistent_volume_claim,
    describe_storage_class,
)
from corralctl.describe.tabwriter import PrefixWriter, tabwrite
from corralctl.describe.workloads import (
    describe_daemon_set,
    describe_deployment,
    describe_replica_set,
    describe_replication_controller,
    split_replica_sets,
)

__all__ = [
    "DESCRIBERS",
    "ApiClient",
    "DescribeSource",
    "Describer",
    "PrefixWriter",
    "add_parser",
    "describe_object",
    "describe_probe",
    "format_endpoints",
    "node_roles",
    "pod_qos_class",
    "run",
    "smart_label",
    "split_replica_sets",
    "tabwrite",
    "write_pod_template",
]


DESCRIBERS: dict[str, Describer] = {
    "Pod": describe_pod,
    "ReplicationController": describe_replication_controller,
    "ReplicaSet": describe_replica_set,
    "Deployment": describe_deployment,
    "DaemonSet": describe_daemon_set,
    "Job": describe_job,
    "CronJob": describe_cron_job,
    "Service": describe_service,
    "Endpoints": describe_endpoints,
    "Node": describe_node,
    "Namespace": describe_namespace,
    "Secret": describe_secret,
    "ConfigMap": describe_config_map,
    "PodDisruptionBudget": describe_pod_disruption_budget,
    "PersistentVolume": describe_persistent_volume,
    "PersistentVolumeClaim": describe_persistent_volume_claim,
    "StorageClass": describe_storage_class,
}


async def describe_object(src: DescribeSource, obj: Obj) -> str:
    """The description of one object, by its kind; unknown kinds get the generic layout."""
    return await DESCRIBERS.get(str(obj.get("kind") or ""), describe_generic)(src, obj)


def parse_go_bool(text: str) -> bool:
    """A boolean flag value as Go's ``strconv.ParseBool`` reads it."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f'invalid boolean value "{text}"')


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "describe",
        parents=[common],
        help="show details of a specific resource or group of resources",
    )
    p.add_argument("resources", nargs="*", help="TYPE [NAME_PREFIX...] or TYPE/NAME...")
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        help="file, directory or - naming the objects to describe",
    )
    p.add_argument("-R", "--recursive", action="store_true", help="walk directories given to -f")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument(
        "--show-events",
        type=parse_go_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="display events related to the object (default true)",
    )
    p.set_defaults(func=run)


class _Printer:
    """Writes descriptions with kubectl's separator and keeps its errors for the end."""

    def __init__(self, ctx: CliContext) -> None:
        self.ctx = ctx
        self.count = 0
        self.errors: list[str] = []

    def emit(self, text: str) -> None:
        self.ctx.out.write(text if self.count == 0 else "\n\n" + text)
        self.ctx.out.flush()
        self.count += 1

    def error(self, error: ApiError) -> None:
        line = f"Error from server ({error.reason}): {error.message}"
        if line not in self.errors:
            self.errors.append(line)


def _typed(rt: ResourceType, obj: Obj) -> Obj:
    # Items of a list carry no type of their own.
    obj.setdefault("apiVersion", rt.api_version)
    obj.setdefault("kind", rt.kind)
    return obj


async def _describe_by_prefix(
    ctx: CliContext, src: DescribeSource, rt: ResourceType, prefix: str
) -> bool:
    """kubectl's fallback for ``describe TYPE NAME``: every object whose name starts so."""
    matched = [
        _typed(rt, obj)
        for obj in await src.items(rt, ctx.namespace if rt.namespaced else None)
        if name_of(obj).startswith(prefix)
    ]
    for obj in matched:
        ctx.out.write(await describe_object(src, obj) + "\n")
    ctx.out.flush()
    return bool(matched)


async def _describe_named(
    ctx: CliContext,
    src: DescribeSource,
    printer: _Printer,
    rt: ResourceType,
    name: str,
    namespace: str,
    prefix_fallback: bool,
) -> None:
    try:
        obj = _typed(rt, await src.client.get(rt, name, namespace))
    except ApiError as error:
        if error.code == 404 and prefix_fallback and await _describe_by_prefix(ctx, src, rt, name):
            return
        printer.error(error)
        return
    try:
        printer.emit(await describe_object(src, obj))
    except ApiError as error:
        printer.error(error)


async def run(ctx: CliContext, args: argparse.Namespace) -> int:
    src = DescribeSource(
        ctx.client, ctx.registry, show_events=args.show_events, now=ctx.clock.now()
    )
    printer = _Printer(ctx)
    if args.filename:
        for manifest in manifests.load(args.filename, recursive=args.recursive):
            obj = manifest.obj
            rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"], manifest.source)
            meta = obj.get("metadata") or {}
            await _describe_named(
                ctx,
                src,
                printer,
                rt,
                meta.get("name", ""),
                meta.get("namespace") or ctx.namespace,
                False,
            )
    else:
        if not args.resources:
            raise UsageError(
                "You must specify the type of resource to describe. Use "
                '"corral api-resources" for a complete list of supported resources.'
            )
        targets = ctx.targets(args.resources)
        prefix_fallback = len(args.resources) == 2 and "/" not in args.resources[0]
        for rt, names in targets:
            if names and ctx.all_namespaces:
                raise UsageError("a resource cannot be retrieved by name across all namespaces")
            for name in names:
                await _describe_named(ctx, src, printer, rt, name, ctx.namespace, prefix_fallback)
            if names:
                continue
            try:
                listed = await ctx.client.list(
                    rt,
                    ctx.namespace,
                    all_namespaces=ctx.all_namespaces,
                    label_selector=args.selector,
                )
            except ApiError as error:
                printer.error(error)
                continue
            for obj in listed.get("items") or []:
                try:
                    printer.emit(await describe_object(src, _typed(rt, obj)))
                except ApiError as error:
                    printer.error(error)
        named = any(names for _, names in targets)
        if not named and printer.count == 0 and not printer.errors:
            where = "" if ctx.all_namespaces else f" in {ctx.namespace} namespace."
            ctx.err.write(f"No resources found{where}\n")
    for line in printer.errors:
        ctx.err.write(line + "\n")
    ctx.err.flush()
    return 1 if printer.errors else 0
