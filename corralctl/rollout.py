"""``corral rollout``: watch, inspect, undo, restart, pause and resume a Deployment's rollout.

``status``, ``history``, ``undo`` and ``restart`` take a DaemonSet too
(``ds/NAME``); its history is its ControllerRevisions (rollout_daemonset).

As kubectl 1.32 does it, all on the client side: ``status`` follows the
Deployment with a watch and reads its status as the controller reports
it; ``history`` lists the revisions its ReplicaSets carry; ``undo`` copies
an old ReplicaSet's template back into the Deployment with a JSON patch;
``restart`` stamps the template with ``kubectl.kubernetes.io/restartedAt``;
``pause`` and ``resume`` flip ``spec.paused``.

Resource arguments: ``deployment/NAME``, ``deploy NAME`` or just ``NAME``.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import AsyncIterator
from typing import Any

from corral import durations
from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.clock import rfc3339
from corral.objects import Obj, annotations_of, meta, owner_references, spec
from corralctl import rollout_daemonset as daemon
from corralctl.context import CliContext, UsageError
from corralctl.describe import PrefixWriter, tabwrite, write_pod_template
from corralctl.describe.workloads import REVISION, TEMPLATE_HASH
from corralctl.printing import object_name
from corralctl.waiting import within

CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# kubectl's annotationsToSkip: a rollback keeps the Deployment's own values of these.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` (``1m30s``, ``500ms``), plus a bare number of seconds."""
    try:
        return durations.parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("rollout", help="manage the rollout of a deployment")
    verbs = p.add_subparsers(dest="rollout_command", metavar="SUBCOMMAND", required=True)

    def verb(name: str, helptext: str) -> argparse.ArgumentParser:
        v: argparse.ArgumentParser = verbs.add_parser(name, parents=[common], help=helptext)
        v.add_argument("resources", nargs="+", help="deployment/NAME, deploy NAME or NAME")
        return v

    s = verb("status", "follow a rollout until it completes")
    s.add_argument(
        "-w",
        "--watch",
        type=_flag,
        nargs="?",
        const=True,
        default=True,
        help="follow until done (default); --watch=false prints the status once",
    )
    s.add_argument("--revision", type=int, default=0, help="wait for this revision")
    s.add_argument(
        "--timeout", type=parse_duration, default=0.0, help="give up after this long (0: never)"
    )
    s.set_defaults(func=run_status)

    h = verb("history", "list the revisions of a deployment")
    h.add_argument("--revision", type=int, default=0, help="show this revision's pod template")
    h.set_defaults(func=run_history)

    u = verb("undo", "go back to an earlier revision")
    u.add_argument("--to-revision", type=int, default=0, help="0 means the previous revision")
    u.set_defaults(func=run_undo)

    verb("restart", "replace every pod, as a rolling update").set_defaults(func=run_restart)
    verb("pause", "stop rollouts until resumed").set_defaults(func=run_pause)
    verb("resume", "let rollouts proceed again").set_defaults(func=run_resume)


# --- resource arguments -----------------------------------------------------------------------


def _deployments(ctx: CliContext) -> ResourceType:
    return ctx.resolve("deployments")


def rollout_target(
    ctx: CliContext, words: list[str], kinds: tuple[str, ...] = ("Deployment", "DaemonSet")
) -> tuple[ResourceType, str]:
    """``deployment/web``, ``deploy web``, ``ds/agent`` or ``web`` (a Deployment)."""
    if len(words) == 1 and "/" not in words[0]:
        return _deployments(ctx), words[0]
    groups = ctx.targets(words) if len(words) <= 2 else []
    if len(groups) != 1 or len(groups[0][1]) != 1:
        raise UsageError("name exactly one deployment: deployment/NAME, deploy NAME or NAME")
    rt, names = groups[0]
    if rt.kind not in kinds:
        which = " and ".join(k.lower() + "s" for k in kinds)
        raise UsageError(f'rollout is implemented for {which}, not "{rt.plural}"')
    return rt, names[0]


def target_name(ctx: CliContext, words: list[str]) -> str:
    """The Deployment's name, for the verbs only Deployments have."""
    return rollout_target(ctx, words, ("Deployment",))[1]


# --- status -----------------------------------------------------------------------------------


class RolloutFailed(Exception):
    """The rollout cannot finish: reported as ``error: ...`` with a non-zero exit."""


def _revision(obj: Obj) -> int:
    text = annotations_of(obj).get(REVISION, "")
    try:
        return int(text)
    except ValueError:
        return 0


def status_line(d: Obj, revision: int = 0) -> tuple[str, bool]:
    """kubectl's ``DeploymentStatusViewer``: what to say, and whether the rollout is done."""
    meta = d.get("metadata") or {}
    spec = d.get("spec") or {}
    status = d.get("status") or {}
    name = meta.get("name", "")
    if revision > 0 and _revision(d) != revision:
        raise RolloutFailed(
            f"desired revision ({revision}) is different from the running revision ({_revision(d)})"
        )
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < desired:
        return f"{waiting}{updated} out of {desired} new replicas have been updated...", False
    if total > updated:
        return f"{waiting}{total - updated} old replicas are pending termination...", False
    if available < updated:
        return f"{waiting}{available} of {updated} updated replicas are available...", False
    return f'deployment "{name}" successfully rolled out', True


async def _versions(ctx: CliContext, rt: ResourceType, name: str) -> AsyncIterator[Obj]:
    """The object now, then each new version of it, from a watch that resumes."""
    current = await ctx.client.get(rt, name, ctx.namespace)
    yield current
    version = str(meta(current).get("resourceVersion") or "")
    while True:
        try:
            async for event in ctx.client.watch(
                rt,
                ctx.namespace,
                resource_version=version,
                field_selector=f"metadata.name={name}",
                allow_bookmarks=True,
            ):
                obj = event.get("object") or {}
                version = str(meta(obj).get("resourceVersion") or version)
                if event.get("type") == "DELETED":
                    raise RolloutFailed("object has been deleted")
                if event.get("type") in ("ADDED", "MODIFIED"):
                    yield obj
        except ApiError as error:
            if error.code != 410:
                raise
            # Too old to resume from: read it afresh.
            current = await ctx.client.get(rt, name, ctx.namespace)
            version = str(meta(current).get("resourceVersion") or "")
            yield current


async def _follow(ctx: CliContext, rt: ResourceType, name: str, args: argparse.Namespace) -> None:
    said = ""
    async for d in _versions(ctx, rt, name):
        if rt.kind == "DaemonSet":
            line, done = daemon.status_line(d)
        else:
            line, done = status_line(d, args.revision)
        if line != said:
            ctx.out.write(line + "\n")
            ctx.out.flush()
            said = line
        if done or not args.watch:
            return


async def run_status(ctx: CliContext, args: argparse.Namespace) -> int:
    rt, name = rollout_target(ctx, args.resources)
    try:
        await within(ctx.clock, args.timeout, _follow(ctx, rt, name, args))
    except (RolloutFailed, daemon.RolloutError) as error:
        ctx.err.write(f"error: {error}\n")
        return 1
    except TimeoutError:
        ctx.err.write("error: timed out waiting for the condition\n")
        return 1
    return 0


# --- history ----------------------------------------------------------------------------------


async def replica_sets_of(ctx: CliContext, d: Obj) -> list[Obj]:
    """The ReplicaSets the Deployment controls (by controller reference)."""
    rt = ctx.resolve("replicasets")
    uid = meta(d).get("uid")
    listed = await ctx.client.list(rt, ctx.namespace)
    return [
        rs
        for rs in listed.get("items") or []
        if any(ref.get("controller") and ref.get("uid") == uid for ref in owner_references(rs))
    ]


def history_table(replica_sets: list[Obj]) -> str:
    """``REVISION  CHANGE-CAUSE``, oldest first; kubectl's text when there is none."""
    by_revision = {_revision(rs): rs for rs in replica_sets if _revision(rs) > 0}
    if not by_revision:
        return "No rollout history found.\n"
    lines = ["REVISION\tCHANGE-CAUSE"]
    for revision in sorted(by_revision):
        notes = annotations_of(by_revision[revision])
        lines.append(f"{revision}\t{notes.get(CHANGE_CAUSE) or '<none>'}")
    return tabwrite("\n".join(lines) + "\n")


def revision_template(rs: Obj) -> str:
    """A revision's pod template, described; its change cause shown as a template annotation."""
    template = copy.deepcopy(spec(rs).get("template") or {})
    cause = annotations_of(rs).get(CHANGE_CAUSE)
    if cause:
        template.setdefault("metadata", {}).setdefault("annotations", {})[CHANGE_CAUSE] = cause
    w = PrefixWriter()
    write_pod_template(w, template)
    return w.render()


async def daemon_set_revisions(ctx: CliContext, ds: Obj) -> dict[int, Obj]:
    listed = await ctx.client.list(ctx.resolve("controllerrevisions"), ctx.namespace)
    return daemon.owned_revisions(ds, list(listed.get("items") or []))


async def _daemon_set_history(
    ctx: CliContext, rt: ResourceType, ds: Obj, args: argparse.Namespace
) -> int:
    by_number = await daemon_set_revisions(ctx, ds)
    if args.revision > 0:
        found = by_number.get(args.revision)
        if found is None:
            ctx.err.write(f"error: unable to find the specified revision {args.revision}\n")
            return 1
        ctx.out.write(f"{object_name(rt, ds)} with revision #{args.revision}\n")
        ctx.out.write(revision_template(daemon.as_replica_set_like(found)))
        return 0
    ctx.out.write(f"{object_name(rt, ds)}\n")
    if not by_number:
        ctx.out.write("No rollout history found.\n")
        return 0
    lines = ["REVISION\tCHANGE-CAUSE"]
    for number in sorted(by_number):
        cause = (by_number[number].get("metadata") or {}).get("annotations", {}).get(CHANGE_CAUSE)
        lines.append(f"{number}\t{cause or '<none>'}")
    ctx.out.write(tabwrite("\n".join(lines) + "\n"))
    return 0


async def run_history(ctx: CliContext, args: argparse.Namespace) -> int:
    rt, name = rollout_target(ctx, args.resources)
    d = await ctx.client.get(rt, name, ctx.namespace)
    if rt.kind == "DaemonSet":
        return await _daemon_set_history(ctx, rt, d, args)
    replica_sets = await replica_sets_of(ctx, d)
    if args.revision > 0:
        found = [rs for rs in replica_sets if _revision(rs) == args.revision]
        if not found:
            ctx.err.write("error: unable to find the specified revision\n")
            return 1
        ctx.out.write(f"{object_name(rt, d)} with revision #{args.revision}\n")
        ctx.out.write(revision_template(found[0]))
        return 0
    ctx.out.write(f"{object_name(rt, d)}\n")
    ctx.out.write(history_table(replica_sets))
    return 0


# --- undo -------------------------------------------------------------------------------------


def _without_hash(template: Obj) -> Obj:
    out = copy.deepcopy(template)
    labels = meta(out).get("labels")
    if isinstance(labels, dict):
        labels.pop(TEMPLATE_HASH, None)
    return out


def _semantic(value: Any) -> Any:
    """Empty objects and lists count as absent, as Kubernetes' ``Semantic.DeepEqual`` has it."""
    if isinstance(value, dict):
        kept = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


def same_template(a: Obj, b: Obj) -> bool:
    return bool(_semantic(_without_hash(a)) == _semantic(_without_hash(b)))


def rollback_target(replica_sets: list[Obj], to_revision: int, name: str) -> Obj:
    """kubectl's ``deploymentRevision``: revision ``to_revision``, or the previous one for 0."""
    ranked = sorted((rs for rs in replica_sets if _revision(rs) > 0), key=_revision, reverse=True)
    if to_revision > 0:
        for rs in ranked:
            if _revision(rs) == to_revision:
                return rs
        raise RolloutFailed(f"unable to find specified revision {to_revision} in history")
    if len(ranked) < 2:
        raise RolloutFailed(f'no rollout history found for deployment "{name}"')
    return ranked[1]


def rollback_patch(d: Obj, target: Obj) -> list[Obj]:
    """The JSON patch kubectl sends: the template, and the annotations as kubectl merges them."""
    current = annotations_of(d)
    annotations = {k: v for k, v in current.items() if k in ANNOTATIONS_TO_SKIP}
    for key, value in annotations_of(target).items():
        if key not in ANNOTATIONS_TO_SKIP:
            annotations[key] = value
    return [
        {
            "op": "replace",
            "path": "/spec/template",
            "value": _without_hash(spec(target).get("template") or {}),
        },
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]


async def _daemon_set_undo(
    ctx: CliContext, rt: ResourceType, ds: Obj, args: argparse.Namespace
) -> int:
    """``DaemonSetRollbacker``: the revision's own patch, sent as a strategic merge patch."""
    try:
        found = daemon.rollback_target(await daemon_set_revisions(ctx, ds), args.to_revision)
    except daemon.RolloutError as error:
        ctx.err.write(f"error: {error}\n")
        return 1
    if daemon.matches(ds, found):
        # kubectl names the revision asked for here (0 for "the previous one").
        ctx.out.write(
            f"{object_name(rt, ds)} skipped rollback (current template already matches "
            f"revision {args.to_revision})\n"
        )
        return 0
    name = str((ds.get("metadata") or {}).get("name") or "")
    try:
        await ctx.client.patch(
            rt, name, found.get("data") or {}, ctx.namespace, patch_type="strategic"
        )
    except ApiError as error:
        ctx.err.write(f"error: failed restoring revision {args.to_revision}: {error.message}\n")
        return 1
    ctx.out.write(f"{object_name(rt, ds)} rolled back\n")
    return 0


async def run_undo(ctx: CliContext, args: argparse.Namespace) -> int:
    rt, name = rollout_target(ctx, args.resources)
    if args.to_revision < 0:
        ctx.err.write(f"error: unable to find specified revision {args.to_revision} in history\n")
        return 1
    d = await ctx.client.get(rt, name, ctx.namespace)
    if rt.kind == "DaemonSet":
        return await _daemon_set_undo(ctx, rt, d, args)
    try:
        target = rollback_target(await replica_sets_of(ctx, d), args.to_revision, name)
    except RolloutFailed as error:
        ctx.err.write(f"error: {error}\n")
        return 1
    if spec(d).get("paused"):
        ctx.err.write(
            "error: you cannot rollback a paused deployment; resume it first with "
            "'corral rollout resume' and try again\n"
        )
        return 1
    template = spec(d).get("template") or {}
    if same_template(spec(target).get("template") or {}, template):
        ctx.out.write(
            f"{object_name(rt, d)} skipped rollback (current template already matches "
            f"revision {_revision(target)})\n"
        )
        return 0
    try:
        await ctx.client.patch(
            rt, name, rollback_patch(d, target), ctx.namespace, patch_type="json"
        )
    except ApiError as error:
        ctx.err.write(f"error: failed restoring revision {args.to_revision}: {error.message}\n")
        return 1
    ctx.out.write(f"{object_name(rt, d)} rolled back\n")
    return 0


# --- restart, pause, resume -------------------------------------------------------------------


async def _patch_spec(
    ctx: CliContext, args: argparse.Namespace, refuse: str | None, patch: Obj, done: str
) -> int:
    # A DaemonSet restarts as a Deployment does; pausing is for Deployments only.
    kinds = ("Deployment", "DaemonSet") if refuse == _PAUSED_RESTART else ("Deployment",)
    rt, name = rollout_target(ctx, args.resources, kinds)
    d = await ctx.client.get(rt, name, ctx.namespace)
    if refuse is not None and _refused(d, refuse):
        ctx.err.write(f'error: {rt.qualified} "{name}" {refuse}\n')
        return 1
    await ctx.client.patch(rt, name, patch, ctx.namespace, patch_type="strategic")
    ctx.out.write(f"{object_name(rt, d)} {done}\n")
    return 0


_PAUSED_ALREADY = "is already paused"
_NOT_PAUSED = "is not paused"
_PAUSED_RESTART = "can't restart paused deployment (run rollout resume first)"


def _refused(d: Obj, why: str) -> bool:
    paused = bool(spec(d).get("paused"))
    return paused if why in (_PAUSED_ALREADY, _PAUSED_RESTART) else not paused


async def run_restart(ctx: CliContext, args: argparse.Namespace) -> int:
    stamp = {RESTARTED_AT: rfc3339(ctx.clock.now())}
    patch = {"spec": {"template": {"metadata": {"annotations": stamp}}}}
    return await _patch_spec(ctx, args, _PAUSED_RESTART, patch, "restarted")


async def run_pause(ctx: CliContext, args: argparse.Namespace) -> int:
    return await _patch_spec(ctx, args, _PAUSED_ALREADY, {"spec": {"paused": True}}, "paused")


async def run_resume(ctx: CliContext, args: argparse.Namespace) -> int:
    return await _patch_spec(ctx, args, _NOT_PAUSED, {"spec": {"paused": None}}, "resumed")
