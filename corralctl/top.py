"""``corral top nodes|pods``: resource usage from metrics.k8s.io, as ``kubectl top`` shows it.

CPU is printed in millicores and memory in MiB, as kubectl does; for nodes
the percentages are of each node's allocatable, read from the Node objects.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import TextIO

from corral.api.quantity import parse_quantity
from corral.api.resources import REGISTRY, ResourceType
from corral.objects import Obj, meta, status
from corralctl.context import CliContext, UsageError
from corralctl.printing import TablePrinter

_MIB = 1024 * 1024


def _metrics_kind(plural: str) -> ResourceType:
    rt = REGISTRY.by_plural("metrics.k8s.io", "v1beta1", plural)
    assert rt is not None
    return rt


def _quantity(text: str | None) -> Decimal:
    return Decimal(parse_quantity(text)) if text else Decimal(0)


def cpu_cell(text: str | None) -> str:
    return f"{int(_quantity(text) * 1000)}m"


def memory_cell(text: str | None) -> str:
    return f"{int(_quantity(text) / _MIB)}Mi"


def _percent(used: str | None, total: str | None) -> str:
    whole = _quantity(total)
    return f"{int(_quantity(used) * 100 / whole)}%" if whole else "<unknown>"


def node_rows(metrics: list[Obj], nodes: dict[str, Obj]) -> list[list[str]]:
    rows = [["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]]
    for item in metrics:
        name = meta(item).get("name", "")
        usage = item.get("usage") or {}
        allocatable = status(nodes.get(name) or {}).get("allocatable") or {}
        rows.append(
            [
                name,
                cpu_cell(usage.get("cpu")),
                _percent(usage.get("cpu"), allocatable.get("cpu")),
                memory_cell(usage.get("memory")),
                _percent(usage.get("memory"), allocatable.get("memory")),
            ]
        )
    return rows


def _pod_total(item: Obj, resource: str) -> Decimal:
    return sum(
        (_quantity((c.get("usage") or {}).get(resource)) for c in item.get("containers") or []),
        Decimal(0),
    )


def pod_rows(metrics: list[Obj], *, with_namespace: bool, containers: bool) -> list[list[str]]:
    header = ["POD", "NAME"] if containers else ["NAME"]
    rows = [(["NAMESPACE"] if with_namespace else []) + header + ["CPU(cores)", "MEMORY(bytes)"]]
    for item in metrics:
        prefix = [meta(item).get("namespace", "")] if with_namespace else []
        name = meta(item).get("name", "")
        if containers:
            for container in item.get("containers") or []:
                usage = container.get("usage") or {}
                rows.append(
                    [
                        *prefix,
                        name,
                        container.get("name", ""),
                        cpu_cell(usage.get("cpu")),
                        memory_cell(usage.get("memory")),
                    ]
                )
            continue
        cpu, memory = _pod_total(item, "cpu"), _pod_total(item, "memory")
        rows.append([*prefix, name, f"{int(cpu * 1000)}m", f"{int(memory / _MIB)}Mi"])
    return rows


def _sort(items: list[Obj], by: str, usage_of: dict[str, Callable[[Obj], Decimal]]) -> list[Obj]:
    if not by:
        return sorted(items, key=lambda i: (meta(i).get("namespace", ""), meta(i).get("name", "")))
    if by not in usage_of:
        raise UsageError(f"--sort-by accepts only cpu or memory, not {by!r}")
    return sorted(items, key=usage_of[by], reverse=True)


async def run_top_nodes(ctx: CliContext, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    client = ctx.client
    listed = await client.list(_metrics_kind("nodes"), label_selector=args.selector or "")
    items = listed.get("items") or []
    if args.name:
        items = [i for i in items if meta(i).get("name") == args.name]
    if not items:
        raise UsageError("metrics not available yet")
    node_kind = REGISTRY.resolve("nodes")
    assert node_kind is not None
    nodes = {meta(n).get("name", ""): n for n in (await client.list(node_kind)).get("items") or []}
    items = _sort(
        items,
        args.sort_by,
        {
            "cpu": lambda i: _quantity((i.get("usage") or {}).get("cpu")),
            "memory": lambda i: _quantity((i.get("usage") or {}).get("memory")),
        },
    )
    TablePrinter(out).render(node_rows(items, nodes))
    return 0


async def run_top_pods(ctx: CliContext, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    client = ctx.client
    listed = await client.list(
        _metrics_kind("pods"),
        ctx.namespace,
        all_namespaces=ctx.all_namespaces,
        label_selector=args.selector or "",
    )
    items = listed.get("items") or []
    if args.name:
        items = [i for i in items if meta(i).get("name") == args.name]
    if not items:
        where = "" if ctx.all_namespaces else f" in namespace {ctx.namespace}"
        raise UsageError(f"metrics not available yet{where}")
    items = _sort(
        items,
        args.sort_by,
        {"cpu": lambda i: _pod_total(i, "cpu"), "memory": lambda i: _pod_total(i, "memory")},
    )
    rows = pod_rows(items, with_namespace=ctx.all_namespaces, containers=args.containers)
    TablePrinter(out).render(rows)
    return 0


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    top = sub.add_parser("top", help="show nodes' and pods' CPU and memory use (metrics.k8s.io)")
    kinds = top.add_subparsers(dest="top_kind", required=True)
    for names, func, doc in (
        (("nodes", "node", "no"), run_top_nodes, "CPU and memory of nodes"),
        (("pods", "pod", "po"), run_top_pods, "CPU and memory of pods"),
    ):
        p = kinds.add_parser(names[0], aliases=list(names[1:]), parents=[common], help=doc)
        p.add_argument("name", nargs="?", default="", help="only this one")
        p.add_argument("-l", "--selector", default="", help="a label selector")
        p.add_argument("--sort-by", default="", help="cpu or memory, highest first")
        if func is run_top_pods:
            p.add_argument("--containers", action="store_true", help="one line per container")
        p.set_defaults(func=func, containers=False)
