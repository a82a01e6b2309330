"""``corral set image``: point containers of pods or workloads at new images, as kubectl does.

A strategic merge patch of the pod template's ``containers`` (and
``initContainers``), merged by name, so nothing else in the object changes
and, for a Deployment, the change starts a rollout.
"""

from __future__ import annotations

import argparse

from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.objects import Obj, meta
from corralctl.context import CliContext, UsageError
from corralctl.printing import object_name

ALL_CONTAINERS = "*"


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("set", help="change fields of objects")
    verbs = group.add_subparsers(dest="set_verb", metavar="VERB", required=True)
    image = verbs.add_parser(
        "image", parents=[common], help="update the image of a pod template's containers"
    )
    image.add_argument(
        "args", nargs="+", help="TYPE NAME or TYPE/NAME..., then CONTAINER=IMAGE ('*' for all)"
    )
    image.add_argument("-l", "--selector", default="", help="act on every object matching")
    image.add_argument("--all", action="store_true", help="act on every object of the type")
    image.set_defaults(func=run_set_image)


def parse_images(pairs: list[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for pair in pairs:
        name, _, image = pair.partition("=")
        if not name or not image:
            raise UsageError(f"invalid CONTAINER=IMAGE: {pair!r}")
        images[name] = image
    return images


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec a Pod has, or a workload's template has."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    template = spec.get("template")
    return (template or {}).get("spec") if isinstance(template, dict) else None


def image_patch(obj: Obj, images: dict[str, str]) -> Obj:
    """The strategic merge patch that sets ``images``; UsageError naming a missing container."""
    spec = pod_spec(obj)
    if spec is None:
        raise UsageError(f"{object_name_of(obj)} has no pod template")
    changes: dict[str, list[Obj]] = {}
    matched: set[str] = set()
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            name = container.get("name", "")
            image = images.get(name, images.get(ALL_CONTAINERS))
            if image is None:
                continue
            matched.add(name)
            changes.setdefault(field, []).append({"name": name, "image": image})
    missing = sorted(set(images) - matched - {ALL_CONTAINERS})
    if missing:
        raise UsageError(f'unable to find container named "{missing[0]}"')
    if obj.get("kind") == "Pod":
        return {"spec": changes}
    return {"spec": {"template": {"spec": changes}}}


def object_name_of(obj: Obj) -> str:
    return f"{obj.get('kind', 'object')} {meta(obj).get('name', '')}".strip()


async def run_set_image(ctx: CliContext, args: argparse.Namespace) -> int:
    words: list[str] = args.args
    split = next((i for i, w in enumerate(words) if "=" in w), len(words))
    resources, pairs = words[:split], words[split:]
    if not pairs:
        raise UsageError("at least one image update is required (CONTAINER=IMAGE)")
    images = parse_images(pairs)
    targets: list[tuple[ResourceType, Obj]] = []
    for rt, names in ctx.targets(resources):
        if names:
            for name in names:
                targets.append((rt, await ctx.client.get(rt, name, ctx.namespace)))
        elif args.selector or args.all:
            listed = await ctx.client.list(rt, ctx.namespace, label_selector=args.selector)
            targets.extend((rt, item) for item in listed.get("items") or [])
        else:
            raise UsageError("one or more resources must be specified as <resource> <name>")
    failed = False
    for rt, obj in targets:
        patch = image_patch({"kind": rt.kind, **obj}, images)
        try:
            await ctx.client.patch(
                rt, obj["metadata"]["name"], patch, ctx.namespace, patch_type="strategic"
            )
        except ApiError as error:
            ctx.err.write(f"Error from server ({error.reason}): {error.message}\n")
            failed = True
            continue
        ctx.out.write(f"{object_name(rt, obj)} image updated\n")
    return 1 if failed else 0
