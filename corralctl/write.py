"""``create``, ``replace``, ``apply`` and ``delete``: objects in from files, or out by name."""

from __future__ import annotations

import argparse
import copy

import orjson

from corral.api.errors import ApiError
from corral.api.patchmeta import model_schema
from corral.api.resources import ResourceType
from corral.objects import Obj, annotations_of, meta
from corral.patch import create_three_way_merge_patch
from corralctl import manifests
from corralctl.context import CliContext, UsageError
from corralctl.printing import dump, kind_prefix, object_name
from corralctl.waiting import poll_until

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    for name, helptext, func in (
        ("create", "create objects from files or stdin", run_create),
        ("replace", "replace objects from files or stdin", run_replace),
        ("apply", "create or update objects to match files (idempotent)", run_apply),
    ):
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument(
            "-f",
            "--filename",
            action="append",
            default=[],
            required=True,
            help="file, directory or - for stdin (JSON or YAML)",
        )
        p.add_argument("-R", "--recursive", action="store_true", help="walk directories")
        p.add_argument("-o", "--output", choices=("json", "yaml", "name"))
        p.add_argument("--dry-run", choices=("none", "server", "client"), default="none")
        p.add_argument(
            "--validate",
            choices=("strict", "warn", "ignore", "true", "false"),
            default="strict",
            help="how the server treats unknown fields",
        )
        p.set_defaults(func=func)

    d = sub.add_parser("delete", parents=[common], help="delete objects by file, name or label")
    d.add_argument("resources", nargs="*", help="TYPE NAME... or TYPE/NAME...")
    d.add_argument("-f", "--filename", action="append", default=[])
    d.add_argument("-R", "--recursive", action="store_true")
    d.add_argument("-l", "--selector", default="")
    d.add_argument("--all", action="store_true", help="delete every object of the type")
    d.add_argument(
        "--cascade",
        choices=("background", "foreground", "orphan", "true", "false"),
        default="background",
    )
    d.add_argument(
        "--grace-period",
        type=int,
        default=-1,
        help="seconds to let the object terminate (-1: the object's own default)",
    )
    d.add_argument("--now", action="store_true", help="same as --grace-period=1")
    d.add_argument("--force", action="store_true", help="with --grace-period=0: do not wait")
    d.add_argument(
        "--wait",
        choices=("true", "false"),
        default="true",
        help="wait for the objects to be gone before returning",
    )
    d.add_argument("--timeout", type=float, default=60.0, help="how long --wait waits (seconds)")
    d.add_argument("--ignore-not-found", action="store_true")
    d.add_argument("--dry-run", choices=("none", "server", "client"), default="none")
    d.add_argument("-o", "--output", choices=("name",))
    d.set_defaults(func=run_delete)


def _field_validation(args: argparse.Namespace) -> str:
    return {
        "strict": "Strict",
        "true": "Strict",
        "warn": "Warn",
        "ignore": "Ignore",
        "false": "Ignore",
    }[args.validate]


def _report(
    ctx: CliContext,
    rt: ResourceType,
    obj: Obj,
    verb: str,
    args: argparse.Namespace,
    dry_run: bool = False,
) -> None:
    if args.output in ("json", "yaml"):
        dump(obj, args.output, ctx.out)
        return
    suffix = " (server dry run)" if dry_run else ""
    if args.output == "name":
        ctx.out.write(object_name(rt, obj) + "\n")
    else:
        ctx.out.write(f"{object_name(rt, obj)} {verb}{suffix}\n")


def _error(ctx: CliContext, error: ApiError, action: str, source: str) -> None:
    ctx.err.write(
        f'Error from server ({error.reason}): error when {action} "{source}": {error.message}\n'
    )


async def run_create(ctx: CliContext, args: argparse.Namespace) -> int:
    failed = False
    dry_run = args.dry_run == "server"
    for manifest in manifests.load(args.filename, recursive=args.recursive):
        obj = manifest.obj
        rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"], manifest.source)
        if args.dry_run == "client":
            _report(ctx, rt, obj, "created (dry run)", args)
            continue
        try:
            created = await ctx.client.create(
                rt,
                obj,
                _namespace(ctx, obj),
                dry_run=dry_run,
                field_validation=_field_validation(args),
            )
        except ApiError as error:
            _error(ctx, error, "creating", manifest.source)
            failed = True
            continue
        _report(ctx, rt, created, "created", args, dry_run)
    return 1 if failed else 0


async def run_replace(ctx: CliContext, args: argparse.Namespace) -> int:
    failed = False
    dry_run = args.dry_run == "server"
    for manifest in manifests.load(args.filename, recursive=args.recursive):
        obj = manifest.obj
        rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"], manifest.source)
        try:
            replaced = await ctx.client.replace(
                rt,
                obj,
                _namespace(ctx, obj),
                dry_run=dry_run,
                field_validation=_field_validation(args),
            )
        except ApiError as error:
            _error(ctx, error, "replacing", manifest.source)
            failed = True
            continue
        _report(ctx, rt, replaced, "replaced", args, dry_run)
    return 1 if failed else 0


def _namespace(ctx: CliContext, obj: Obj) -> str:
    namespace = meta(obj).get("namespace")
    if namespace and namespace != ctx.namespace and ctx.namespace_explicit:
        raise UsageError(
            f'the namespace from the provided object "{namespace}" does not match the '
            f"namespace \"{ctx.namespace}\". You must pass '--namespace={namespace}' to perform "
            "this operation."
        )
    return str(namespace or ctx.namespace)


def with_last_applied(obj: Obj) -> Obj:
    """The object as kubectl's client-side apply records it in its annotation."""
    recorded = copy.deepcopy(obj)
    annotations = annotations_of(recorded)
    annotations.pop(LAST_APPLIED, None)
    if "annotations" in meta(recorded) and not annotations:
        del recorded["metadata"]["annotations"]
    text = orjson.dumps(recorded).decode() + "\n"
    out = copy.deepcopy(obj)
    out.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = text
    return out


async def run_apply(ctx: CliContext, args: argparse.Namespace) -> int:
    failed = False
    dry_run = args.dry_run == "server"
    for manifest in manifests.load(args.filename, recursive=args.recursive):
        obj = manifest.obj
        rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"], manifest.source)
        try:
            verb, result = await _apply_one(ctx, rt, obj, dry_run, _field_validation(args))
        except ApiError as error:
            _error(ctx, error, "applying", manifest.source)
            failed = True
            continue
        _report(ctx, rt, result, verb, args, dry_run)
    return 1 if failed else 0


async def _apply_one(
    ctx: CliContext, rt: ResourceType, obj: Obj, dry_run: bool, field_validation: str
) -> tuple[str, Obj]:
    namespace = _namespace(ctx, obj)
    name = meta(obj).get("name", "")
    modified = with_last_applied(obj)
    schema = model_schema(rt.model)
    # A conflict means someone wrote between our read and our patch: read again.
    for _ in range(5):
        try:
            current = await ctx.client.get(rt, name, namespace)
        except ApiError as error:
            if error.code != 404:
                raise
            created = await ctx.client.create(
                rt, modified, namespace, dry_run=dry_run, field_validation=field_validation
            )
            return "created", created
        annotations = annotations_of(current)
        original_text = annotations.get(LAST_APPLIED)
        if original_text is None:
            ctx.warn(
                f"resource {rt.plural}/{name} is missing the {LAST_APPLIED} annotation which "
                "is required by corral apply. corral apply should only be used on resources "
                "created declaratively by either corral create --save-config or corral apply. "
                "The missing annotation will be patched automatically."
            )
        original = orjson.loads(original_text) if original_text else None
        patch = create_three_way_merge_patch(original, modified, current, schema)
        if not patch:
            return "unchanged", current
        try:
            patched = await ctx.client.patch(
                rt,
                name,
                patch,
                namespace,
                patch_type="strategic",
                dry_run=dry_run,
                field_validation=field_validation,
            )
        except ApiError as error:
            if error.code == 409:
                continue
            raise
        return "configured", patched
    raise ApiError(409, "Conflict", f"{rt.plural}/{name} kept changing while it was applied")


async def run_delete(ctx: CliContext, args: argparse.Namespace) -> int:
    policy = {
        "background": "Background",
        "true": "Background",
        "foreground": "Foreground",
        "orphan": "Orphan",
        "false": "Orphan",
    }[args.cascade]
    grace: int | None = None if args.grace_period < 0 else args.grace_period
    if args.now:
        grace = 1
    targets: list[tuple[ResourceType, str, str, str]] = []  # rt, namespace, name, source
    if args.filename:
        for manifest in manifests.load(args.filename, recursive=args.recursive):
            obj = manifest.obj
            rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"], manifest.source)
            targets.append((rt, _namespace(ctx, obj), obj["metadata"]["name"], manifest.source))
    else:
        for rt, names in ctx.targets(args.resources):
            if not names:
                if not (args.selector or args.all):
                    raise UsageError(
                        "resource(s) were provided, but no name was specified: name them, or "
                        "pass -l/--selector or --all"
                    )
                listed = await ctx.client.list(
                    rt,
                    ctx.namespace,
                    all_namespaces=ctx.all_namespaces,
                    label_selector=args.selector,
                )
                for item in listed.get("items") or []:
                    metadata = meta(item)
                    targets.append((rt, metadata.get("namespace", ""), metadata["name"], ""))
            else:
                targets.extend((rt, ctx.namespace, name, "") for name in names)
    failed = False
    waiting: list[tuple[ResourceType, str, str, str]] = []
    dry_run = args.dry_run == "server"
    for rt, namespace, name, source in targets:
        try:
            deleted = await ctx.client.delete(
                rt,
                name,
                namespace,
                propagation_policy=policy,
                grace_period_seconds=grace,
                dry_run=dry_run,
            )
        except ApiError as error:
            if error.code == 404 and args.ignore_not_found:
                continue
            if source:
                _error(ctx, error, "deleting", source)
            else:
                ctx.err.write(f"Error from server ({error.reason}): {error.message}\n")
            failed = True
            continue
        uid = meta(deleted).get("uid") or ((deleted.get("details") or {}).get("uid", ""))
        if args.output == "name":
            ctx.out.write(f"{kind_prefix(rt)}/{name}\n")
        else:
            suffix = " (server dry run)" if dry_run else ""
            ctx.out.write(f'{kind_prefix(rt)} "{name}" deleted{suffix}\n')
        ctx.out.flush()
        waiting.append((rt, namespace, name, uid))
    if args.wait == "true" and not dry_run and not (args.force and grace == 0):
        failed |= not await _wait_gone(ctx, waiting, args.timeout)
    return 1 if failed else 0


async def _wait_gone(
    ctx: CliContext, targets: list[tuple[ResourceType, str, str, str]], timeout: float
) -> bool:
    pending = list(targets)

    async def attempt() -> bool:
        still = []
        for rt, namespace, name, uid in pending:
            try:
                current = await ctx.client.get(rt, name, namespace)
            except ApiError as error:
                if error.code == 404:
                    continue
                raise
            if uid and meta(current).get("uid") != uid:
                continue
            still.append((rt, namespace, name, uid))
        pending[:] = still
        return not pending

    outcome = await poll_until(
        attempt, timeout, interval=0.05, backoff=2, max_interval=1.0, attempt_timeout=None
    )
    if outcome.done:
        return True
    for rt, _, name, _ in pending:
        ctx.err.write(f'error: timed out waiting for {kind_prefix(rt)} "{name}" to be deleted\n')
    return False
