"""``cordon``, ``uncordon`` and ``drain``: taking a node out of service, gracefully.

``drain`` cordons the node, then evicts its pods through the eviction
subresource, which is what makes it honour PodDisruptionBudgets: a refused
eviction (429) is retried with a short backoff until the budget allows it,
usually once a replacement elsewhere has become ready. It then waits for
the pods to be gone, following them with a watch. Like kubectl, it refuses
up front to remove what would be lost for good (pods no controller will
recreate, emptyDir data) unless told to.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field

from corral import durations
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.backoff import Backoff
from corral.client.rest import ConnectionFailed
from corral.informer import Informer, object_key, wait_synced
from corral.objects import Obj, meta, name_of, namespace_of, spec, status, uid_of
from corralctl.context import CliContext

NODES = REGISTRY.by_kind("v1", "Node")
PODS = REGISTRY.by_kind("v1", "Pod")
assert NODES is not None and PODS is not None

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
FIRST_RETRY = 1.0
MAX_RETRY = 5.0

# kubectl's words, so that its users recognise them.
DAEMONSET_REFUSAL = "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
UNMANAGED_REFUSAL = "cannot delete Pods that declare no controller (use --force to override)"
LOCAL_STORAGE_REFUSAL = (
    "cannot delete Pods with local storage (use --delete-emptydir-data to override)"
)


def duration(text: str) -> float:
    """``90``, ``90s``, ``2m``, ``1h30m``: seconds (kubectl's --timeout takes Go durations)."""
    try:
        return durations.parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    for name, doc, func in (
        ("cordon", "mark a node unschedulable", run_cordon),
        ("uncordon", "mark a node schedulable again", run_uncordon),
    ):
        p = sub.add_parser(name, parents=[common], help=doc)
        p.add_argument("node", help="the node's name")
        p.set_defaults(func=func)

    d = sub.add_parser(
        "drain",
        parents=[common],
        help="cordon a node and evict its pods, honouring disruption budgets",
    )
    d.add_argument("node", help="the node's name")
    d.add_argument(
        "--ignore-daemonsets", action="store_true", help="leave DaemonSet-managed pods in place"
    )
    d.add_argument(
        "--delete-emptydir-data",
        action="store_true",
        help="evict pods with emptyDir volumes, whose data is lost",
    )
    d.add_argument(
        "--force", action="store_true", help="also evict pods that no controller will recreate"
    )
    d.add_argument(
        "--grace-period",
        type=int,
        default=-1,
        help="seconds each pod gets to terminate (default: the pod's own)",
    )
    d.add_argument(
        "--timeout",
        type=duration,
        default=0.0,
        help="give up after this long, e.g. 90s or 5m (default 0: wait for ever)",
    )
    d.set_defaults(func=run_drain)


# --- cordon ----------------------------------------------------------------------------------


async def _set_unschedulable(ctx: CliContext, node: str, value: bool) -> bool:
    """Set ``spec.unschedulable``; False when it already was so."""
    assert NODES is not None
    current = await ctx.client.get(NODES, node)
    if bool(spec(current).get("unschedulable")) == value:
        return False
    await ctx.client.patch(NODES, node, {"spec": {"unschedulable": True if value else None}})
    return True


async def run_cordon(ctx: CliContext, args: argparse.Namespace) -> int:
    changed = await _set_unschedulable(ctx, args.node, True)
    ctx.out.write(f"node/{args.node} {'cordoned' if changed else 'already cordoned'}\n")
    return 0


async def run_uncordon(ctx: CliContext, args: argparse.Namespace) -> int:
    changed = await _set_unschedulable(ctx, args.node, False)
    ctx.out.write(f"node/{args.node} {'uncordoned' if changed else 'already uncordoned'}\n")
    return 0


# --- drain -----------------------------------------------------------------------------------


@dataclass
class Plan:
    """Which of a node's pods to evict, and what the flags would have to allow."""

    evict: list[Obj] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    refusals: dict[str, list[str]] = field(default_factory=dict)


def plan(pods: list[Obj], args: argparse.Namespace) -> Plan:
    """kubectl's drain filters: mirror pods are skipped, finished pods always go."""
    out = Plan()

    def note(where: dict[str, list[str]], reason: str, pod: Obj) -> None:
        where.setdefault(reason, []).append(object_key(pod))

    for pod in sorted(pods, key=object_key):
        metadata = meta(pod)
        if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
            continue  # the node's agent owns it; the API cannot remove it
        if status(pod).get("phase") in ("Succeeded", "Failed"):
            out.evict.append(pod)  # finished: nothing is lost
            continue
        owner = next(
            (r for r in metadata.get("ownerReferences") or [] if r.get("controller")), None
        )
        if owner is not None and owner.get("kind") == "DaemonSet":
            if args.ignore_daemonsets:
                note(out.warnings, "ignoring DaemonSet-managed Pods", pod)
            else:
                note(out.refusals, DAEMONSET_REFUSAL, pod)
            continue
        if owner is None:
            if not args.force:
                note(out.refusals, UNMANAGED_REFUSAL, pod)
                continue
            note(out.warnings, "deleting Pods that declare no controller", pod)
        volumes = spec(pod).get("volumes") or []
        if any("emptyDir" in v for v in volumes):
            if not args.delete_emptydir_data:
                note(out.refusals, LOCAL_STORAGE_REFUSAL, pod)
                continue
            note(out.warnings, "deleting Pods with local storage", pod)
        out.evict.append(pod)
    return out


async def run_drain(ctx: CliContext, args: argparse.Namespace) -> int:
    assert PODS is not None
    node = args.node
    changed = await _set_unschedulable(ctx, node, True)
    ctx.out.write(f"node/{node} {'cordoned' if changed else 'already cordoned'}\n")
    # One watch on the node's pods: it lists them, and tells when each is gone.
    pods = Informer(ctx.client, PODS, field_selector=f"spec.nodeName={node}", clock=ctx.clock)
    departed: dict[str, asyncio.Event] = {}
    pods.add_handlers(on_delete=lambda p: departed.setdefault(uid_of(p), asyncio.Event()).set())
    stop = asyncio.Event()
    watching = asyncio.create_task(pods.run(stop))
    try:
        await wait_synced([pods], timeout=60)
        chosen = plan(pods.items(), args)
        for reason, names in chosen.refusals.items():
            ctx.err.write(f'error: unable to drain node "{node}": {reason}: {", ".join(names)}\n')
        if chosen.refusals:
            return 1
        for reason, names in chosen.warnings.items():
            ctx.err.write(f"Warning: {reason}: {', '.join(names)}\n")
        for pod in chosen.evict:
            departed.setdefault(uid_of(pod), asyncio.Event())
        return await _evict_all(ctx, args, chosen.evict, departed)
    finally:
        stop.set()
        await watching


async def _evict_all(
    ctx: CliContext, args: argparse.Namespace, pods: list[Obj], departed: dict[str, asyncio.Event]
) -> int:
    failures: list[str] = []

    async def evict_and_wait(pod: Obj) -> None:
        try:
            await _evict(ctx, args, pod)
        except ApiError as error:
            failures.append(
                f"error when evicting pods/{name_of(pod)!r} -n {namespace_of(pod)!r}: {error}"
            )
            return
        await departed[uid_of(pod)].wait()
        _say(ctx, f"pod {object_key(pod)} evicted")

    tasks = [asyncio.create_task(evict_and_wait(p)) for p in pods]
    try:
        async with asyncio.timeout(args.timeout or None):
            await asyncio.gather(*tasks)
    except TimeoutError:
        pending = [object_key(p) for p in pods if not departed[uid_of(p)].is_set()]
        ctx.err.write(
            f'error: unable to drain node "{args.node}": timed out after {args.timeout:g}s '
            f"waiting for pods: {', '.join(pending)}\n"
        )
        return 1
    for failure in failures:
        ctx.err.write(f'error: unable to drain node "{args.node}": {failure}\n')
    if failures:
        return 1
    _say(ctx, f"node/{args.node} drained")
    return 0


async def _evict(ctx: CliContext, args: argparse.Namespace, pod: Obj) -> None:
    """Ask for the pod's eviction until granted; a pod already gone counts as granted."""
    assert PODS is not None
    body: Obj = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name_of(pod), "namespace": namespace_of(pod)},
    }
    if args.grace_period >= 0:
        body["deleteOptions"] = {"gracePeriodSeconds": args.grace_period}
    _say(ctx, f"evicting pod {object_key(pod)}")
    backoff = Backoff(FIRST_RETRY, MAX_RETRY, jitter=0.5)
    while True:
        delay = backoff.next()
        try:
            await ctx.client.subresource(PODS, name_of(pod), "eviction", body, namespace_of(pod))
            return
        except ApiError as error:
            if error.code == 404:
                return
            if error.code != 429:
                raise
            why = " ".join([error.message, *(c.message for c in error.causes if c.message)])
            _say(ctx, f"waiting to evict pod {object_key(pod)} (retrying in {delay:.1f}s): {why}")
        except ConnectionFailed as error:
            # Asking again is safe: a pod whose eviction went through is
            # terminating (evicted again without spending budget) or gone (404).
            _say(ctx, f"retrying the eviction of pod {object_key(pod)} in {delay:.1f}s: {error}")
        await ctx.clock.sleep(delay)


def _say(ctx: CliContext, line: str) -> None:
    ctx.out.write(line + "\n")
    ctx.out.flush()
