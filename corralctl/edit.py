"""``scale``, ``label`` and ``annotate``: small, targeted changes to live objects."""

from __future__ import annotations

import argparse
from typing import Any

from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.client.rest import resource_path
from corral.objects import Obj, meta, spec
from corralctl import manifests
from corralctl.context import CliContext, UsageError
from corralctl.printing import object_name


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("scale", parents=[common], help="set the replica count of a workload")
    s.add_argument("resources", nargs="*", help="TYPE NAME or TYPE/NAME")
    s.add_argument("--replicas", type=int, required=True)
    s.add_argument(
        "--current-replicas", type=int, default=-1, help="only scale if the current count is this"
    )
    s.add_argument(
        "--resource-version", default="", help="only scale if the object is at this version"
    )
    s.add_argument("-f", "--filename", action="append", default=[])
    s.set_defaults(func=run_scale)

    for name, field, noun in (
        ("label", "labels", "labeled"),
        ("annotate", "annotations", "annotated"),
    ):
        p = sub.add_parser(name, parents=[common], help=f"update the {field} of objects")
        p.add_argument("args", nargs="+", help="TYPE NAME KEY=VALUE... or KEY- to remove")
        p.add_argument("--overwrite", action="store_true", help="replace existing values")
        p.add_argument("-l", "--selector", default="", help="act on every object matching")
        p.add_argument("--all", action="store_true", help="act on every object of the type")
        p.add_argument(
            "--resource-version", default="", help="only change the object if it is at this version"
        )
        p.set_defaults(func=run_metadata, field=field, noun=noun)


async def _named_targets(
    ctx: CliContext, resources: list[str], filenames: list[str]
) -> list[tuple[ResourceType, str, str]]:
    if filenames:
        out = []
        for manifest in manifests.load(filenames):
            obj = manifest.obj
            rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"], manifest.source)
            namespace = meta(obj).get("namespace") or ctx.namespace
            out.append((rt, namespace, obj["metadata"]["name"]))
        return out
    return [(rt, ctx.namespace, name) for rt, names in ctx.targets(resources) for name in names]


async def run_scale(ctx: CliContext, args: argparse.Namespace) -> int:
    if args.replicas < 0:
        raise UsageError("the --replicas=COUNT flag is required, and COUNT must be >= 0")
    targets = await _named_targets(ctx, args.resources, args.filename)
    if not targets:
        raise UsageError("you must name the object to scale")
    failed = False
    for rt, namespace, name in targets:
        if not rt.has("scale"):
            ctx.err.write(f'error: {rt.plural} "{name}" cannot be scaled\n')
            failed = True
            continue
        try:
            if args.current_replicas >= 0 or args.resource_version:
                scale = await ctx.client.request("GET", _scale_path(ctx, rt, namespace, name))
                current = spec(scale).get("replicas", 0)
                version = meta(scale).get("resourceVersion", "")
                if args.current_replicas >= 0 and current != args.current_replicas:
                    raise UsageError(
                        f"Expected replicas to be {args.current_replicas}, was {current}"
                    )
                if args.resource_version and version != args.resource_version:
                    raise UsageError(
                        f"Expected resource version to be {args.resource_version}, was {version}"
                    )
                scale["spec"]["replicas"] = args.replicas
                await ctx.client.request("PUT", _scale_path(ctx, rt, namespace, name), body=scale)
            else:
                await ctx.client.patch(
                    rt, name, {"spec": {"replicas": args.replicas}}, namespace, subresource="scale"
                )
        except ApiError as error:
            ctx.err.write(f"Error from server ({error.reason}): {error.message}\n")
            failed = True
            continue
        ctx.out.write(f"{object_name(rt, {'metadata': {'name': name}})} scaled\n")
    return 1 if failed else 0


def _scale_path(ctx: CliContext, rt: ResourceType, namespace: str, name: str) -> str:
    return resource_path(rt, namespace, name, "scale")


def _parse_changes(pairs: list[str], field: str) -> tuple[dict[str, str], list[str]]:
    set_values: dict[str, str] = {}
    removals: list[str] = []
    for pair in pairs:
        if pair.endswith("-") and "=" not in pair:
            removals.append(pair[:-1])
        elif "=" in pair:
            key, value = pair.split("=", 1)
            if not key:
                raise UsageError(f"invalid {field[:-1]} spec: {pair}")
            set_values[key] = value
        else:
            raise UsageError(f"invalid {field[:-1]} spec: {pair}")
    for key in removals:
        if key in set_values:
            raise UsageError(f"can not both modify and remove the {field[:-1]} {key!r}")
    return set_values, removals


async def run_metadata(ctx: CliContext, args: argparse.Namespace) -> int:
    field: str = args.field
    words: list[str] = args.args
    change_at = next(
        (i for i, w in enumerate(words) if "=" in w or (w.endswith("-") and i > 0)), len(words)
    )
    resources, pairs = words[:change_at], words[change_at:]
    if not pairs:
        raise UsageError(f"at least one {field[:-1]} update is required")
    set_values, removals = _parse_changes(pairs, field)
    targets: list[tuple[ResourceType, str, str]] = []
    for rt, names in ctx.targets(resources):
        if names:
            targets.extend((rt, ctx.namespace, n) for n in names)
        elif args.selector or args.all:
            listed = await ctx.client.list(
                rt, ctx.namespace, all_namespaces=ctx.all_namespaces, label_selector=args.selector
            )
            targets.extend(
                (rt, i["metadata"].get("namespace", ""), i["metadata"]["name"])
                for i in listed.get("items") or []
            )
        else:
            raise UsageError("one or more resources must be specified as <resource> <name>")
    failed = False
    for rt, namespace, name in targets:
        try:
            current = await ctx.client.get(rt, name, namespace)
            existing = meta(current).get(field) or {}
            if not args.overwrite:
                for key, value in set_values.items():
                    if key in existing and existing[key] != value:
                        raise UsageError(
                            f"'{key}' already has a value ({existing[key]}), and --overwrite "
                            "is false"
                        )
            changes: dict[str, Any] = {k: v for k, v in set_values.items() if existing.get(k) != v}
            changes.update({k: None for k in removals if k in existing})
            if not changes:
                ctx.out.write(f"{object_name(rt, current)} not {args.noun}\n")
                continue
            patch: Obj = {"metadata": {field: changes}}
            if args.resource_version:
                patch["metadata"]["resourceVersion"] = args.resource_version
            await ctx.client.patch(rt, name, patch, namespace, patch_type="merge")
        except ApiError as error:
            ctx.err.write(f"Error from server ({error.reason}): {error.message}\n")
            failed = True
            continue
        ctx.out.write(f"{object_name(rt, current)} {args.noun}\n")
    return 1 if failed else 0
