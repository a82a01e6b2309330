"""``corral get``: tables like kubectl's, or objects as json, yaml or names."""

from __future__ import annotations

import argparse

from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.objects import Obj, meta
from corralctl import manifests
from corralctl.context import CliContext, UsageError
from corralctl.printing import TablePrinter, as_list, dump, object_name


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("get", parents=[common], help="display one or many resources")
    p.add_argument("resources", nargs="*", help="TYPE [NAME...] or TYPE/NAME...")
    p.add_argument("-o", "--output", choices=("wide", "json", "yaml", "name"))
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="", help="field selector, e.g. status.phase=Running")
    p.add_argument("-w", "--watch", action="store_true", help="watch for changes after listing")
    p.add_argument("--watch-only", action="store_true", help="watch for changes without listing")
    p.add_argument("-f", "--filename", action="append", default=[], help="objects named in files")
    p.add_argument("--show-labels", action="store_true", help="show labels as the last column")
    p.add_argument("--no-headers", action="store_true", help="omit the header row")
    p.add_argument(
        "--show-managed-fields",
        action="store_true",
        help="keep metadata.managedFields in json and yaml output (hidden, as kubectl hides them)",
    )
    p.set_defaults(func=run)


def _shown(obj: Obj, args: argparse.Namespace) -> Obj:
    """What -o json|yaml prints: server-side apply's bookkeeping is noise unless asked for."""
    if getattr(args, "show_managed_fields", False) or "managedFields" not in meta(obj):
        return obj
    metadata = {k: v for k, v in meta(obj).items() if k != "managedFields"}
    return {**obj, "metadata": metadata}


async def run(ctx: CliContext, args: argparse.Namespace) -> int:
    if args.filename:
        return await _get_files(ctx, args)
    targets = ctx.targets(args.resources)
    if (args.watch or args.watch_only) and len(targets) > 1:
        raise UsageError("you may only specify a single resource type to watch")
    several = len(targets) > 1
    watching = args.watch or args.watch_only
    failed = False
    printed_tables = 0
    collected: list[Obj] = []
    resource_version = ""
    for rt, names in targets:
        try:
            if args.output in ("json", "yaml", "name") and not args.watch_only:
                collected.extend(await _objects(ctx, rt, names, args))
                resource_version = _newest(collected)
                continue
            table = await _table(ctx, rt, names, args)
            resource_version = str(meta(table).get("resourceVersion") or "") or (
                _newest([r.get("object") or {} for r in table.get("rows") or []])
            )
            if args.watch_only:
                continue
            if printed_tables and table.get("rows"):
                ctx.out.write("\n")
            if _print_table(ctx, rt, table, args, several):
                printed_tables += 1
        except ApiError as error:
            if not names and error.code == 404:
                continue
            ctx.err.write(f"Error from server ({error.reason}): {error.message}\n")
            failed = True
    if args.output in ("json", "yaml"):
        single = len(targets) == 1 and len(targets[0][1]) == 1 and len(collected) == 1
        shown = [_shown(o, args) for o in collected]
        dump(shown[0] if single else as_list(shown), args.output, ctx.out)
    elif args.output == "name":
        for obj in collected:
            rt = ctx.resolve_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
            ctx.out.write(object_name(rt, obj) + "\n")
    elif not printed_tables and not failed and not watching:
        where = "" if ctx.all_namespaces else f" in {ctx.namespace} namespace"
        ctx.err.write(f"No resources found{where}.\n")
    if watching and not failed:
        rt, names = targets[0]
        await _watch(ctx, rt, names, args, resource_version, header_printed=printed_tables > 0)
    return 1 if failed else 0


def _newest(objects: list[Obj]) -> str:
    versions = [
        int(v) for o in objects if (v := meta(o).get("resourceVersion")) and str(v).isdigit()
    ]
    return str(max(versions)) if versions else ""


async def _objects(
    ctx: CliContext, rt: ResourceType, names: list[str], args: argparse.Namespace
) -> list[Obj]:
    if names:
        return [await ctx.client.get(rt, name, ctx.namespace) for name in names]
    listed = await ctx.client.list(
        rt,
        ctx.namespace,
        all_namespaces=ctx.all_namespaces,
        label_selector=args.selector,
        field_selector=args.field_selector,
    )
    items: list[Obj] = listed.get("items") or []
    for item in items:
        # Items of a List carry no type; kubectl's output puts it back.
        item.setdefault("apiVersion", rt.api_version)
        item.setdefault("kind", rt.kind)
    return items


async def _table(
    ctx: CliContext, rt: ResourceType, names: list[str], args: argparse.Namespace
) -> Obj:
    if not names:
        return await ctx.client.table(
            rt,
            ctx.namespace,
            all_namespaces=ctx.all_namespaces,
            label_selector=args.selector,
            field_selector=args.field_selector,
        )
    merged: Obj | None = None
    for name in names:
        table = await ctx.client.table(rt, ctx.namespace, name)
        if merged is None:
            merged = table
        else:
            merged["rows"].extend(table.get("rows") or [])
    assert merged is not None
    return merged


def _print_table(
    ctx: CliContext, rt: ResourceType, table: Obj, args: argparse.Namespace, several: bool
) -> bool:
    rows = table.get("rows") or []
    if not rows:
        return False
    printer = TablePrinter(ctx.out)
    wide = args.output == "wide"
    indexes = printer.columns(table, wide)
    with_ns = ctx.all_namespaces and rt.namespaced
    prefix = object_name(rt, {}).rstrip("/") if several else ""
    lines = [] if args.no_headers else [printer.header(table, indexes, with_ns)]
    body = printer.rows(table, indexes, with_ns, prefix)
    if args.show_labels:
        if lines:
            lines[0].append("LABELS")
        for line, row in zip(body, rows, strict=True):
            labels = meta(row.get("object") or {}).get("labels") or {}
            line.append(",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>")
    printer.render(lines + body)
    return True


async def _watch(
    ctx: CliContext,
    rt: ResourceType,
    names: list[str],
    args: argparse.Namespace,
    resource_version: str,
    header_printed: bool,
) -> None:
    """Stream changes after ``resource_version``, the version the printed list showed."""
    field_selector = args.field_selector
    if len(names) == 1:
        field_selector = ",".join(filter(None, [field_selector, f"metadata.name={names[0]}"]))
    printer = TablePrinter(ctx.out)
    as_table = args.output not in ("json", "yaml", "name")
    with_ns = ctx.all_namespaces and rt.namespaced
    indexes: list[int] = []
    async for event in ctx.client.watch(
        rt,
        ctx.namespace,
        all_namespaces=ctx.all_namespaces,
        resource_version=resource_version,
        label_selector=args.selector,
        field_selector=field_selector,
        as_table=as_table,
    ):
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "BOOKMARK":
            continue
        if not as_table:
            if args.output == "name":
                ctx.out.write(object_name(rt, obj) + "\n")
            else:
                dump(_shown(obj, args), args.output, ctx.out)
            ctx.out.flush()
            continue
        if obj.get("columnDefinitions"):
            indexes = printer.columns(obj, args.output == "wide")
        lines = []
        if not header_printed and obj.get("columnDefinitions") and not args.no_headers:
            lines.append(printer.header(obj, indexes, with_ns))
            header_printed = True
        lines.extend(printer.rows(obj, indexes, with_ns))
        printer.render(lines)


async def _get_files(ctx: CliContext, args: argparse.Namespace) -> int:
    found = manifests.load(args.filename)
    objects: list[Obj] = []
    failed = False
    for manifest in found:
        obj = manifest.obj
        rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"], manifest.source)
        namespace = meta(obj).get("namespace") or ctx.namespace
        try:
            objects.append(await ctx.client.get(rt, obj["metadata"]["name"], namespace))
        except ApiError as error:
            ctx.err.write(f"Error from server ({error.reason}): {error.message}\n")
            failed = True
    if args.output in ("json", "yaml"):
        shown = [_shown(o, args) for o in objects]
        dump(shown[0] if len(shown) == 1 else as_list(shown), args.output, ctx.out)
    else:
        for obj in objects:
            rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"])
            ctx.out.write(object_name(rt, obj) + "\n")
    return 1 if failed else 0
