"""``corral rolling-update``: move a ReplicationController's pods to a new one, step by step.

This is Kubernetes 1.0's client-side rolling update, before Deployments:

1. The new controller comes from ``-f FILE``, or from the old one with
   ``--image`` swapped in; it is named ``<old>-<hash>`` unless named on the
   command line. Old and new get a ``deployment`` label (the key is
   ``--deployment-label-key``) with different values in their selectors
   and templates, so their pods never overlap; the old controller's pods
   are relabelled in place first.
2. It is created with 0 replicas and annotated with the replica count it
   should reach; the old one with the count it had and with the name of its
   successor, so an interrupted update can be resumed, or undone with
   ``--rollback``.
3. Then, step by step: grow the new controller as far as one surge pod
   allows, pause ``--update-period``, and shrink the old one as far as the
   new pods that are Ready allow, never dropping below the desired number
   of available pods. Each step waits for the controller to report its
   new size. A step that cannot move waits for pods to change; with no
   progress for ``--timeout``, the update gives up.
4. At the end the old controller is deleted. The API cannot rename an
   object, and kubectl 1.0's rename was a delete and a re-create; corral
   keeps the new controller under its new name instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import hashlib
from collections.abc import Callable
from types import TracebackType

import orjson

from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.informer import Informer, wait_synced
from corral.objects import Obj, annotations_of, labels_of, meta, name_of, spec, status
from corralctl import manifests
from corralctl.context import CliContext, UsageError
from corralctl.rollout import parse_duration
from corralctl.waiting import within

_PREFIX = "kubectl.kubernetes.io/"
DESIRED = _PREFIX + "desired-replicas"
ORIGINAL = _PREFIX + "original-replicas"
NEXT = _PREFIX + "next-controller-id"
SOURCE = _PREFIX + "update-source-id"
_UPDATE_ANNOTATIONS = (DESIRED, ORIGINAL, NEXT, SOURCE)

# kubectl rolling-update's fixed fenceposts: one extra pod, none unavailable.
MAX_SURGE = 1
MAX_UNAVAILABLE = 0


class UpdateFailed(Exception):
    """The update cannot go on; reported as ``error: ...``."""


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "rolling-update",
        parents=[common],
        help="replace a replication controller's pods with a new controller's, step by step",
    )
    p.add_argument("old", metavar="OLD_CONTROLLER_NAME")
    p.add_argument("new", nargs="?", default="", metavar="NEW_CONTROLLER_NAME")
    p.add_argument("-f", "--filename", default="", help="the new controller's manifest")
    p.add_argument("--image", default="", help="the new controller is the old one with this image")
    p.add_argument("--container", default="", help="with --image: which container's image")
    p.add_argument(
        "--deployment-label-key",
        default="deployment",
        help="the label that tells old and new pods apart (default: deployment)",
    )
    p.add_argument(
        "--update-period",
        type=parse_duration,
        default=1.0,
        help="pause between growing the new controller and shrinking the old (default: 1s)",
    )
    p.add_argument(
        "--timeout",
        type=parse_duration,
        default=300.0,
        help="give up after this long without progress (default: 5m)",
    )
    p.add_argument("--rollback", action="store_true", help="undo an interrupted update")
    p.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> None:
    if not args.deployment_label_key:
        raise UsageError("--deployment-label-key can not be empty")
    if args.rollback:
        if args.filename or args.image:
            raise UsageError("don't specify --filename or --image on rollback")
        return
    if not args.filename and not args.image:
        raise UsageError("must specify --filename or --image for new controller")
    if args.filename and args.image:
        raise UsageError("--filename and --image can not both be specified")
    if args.filename and args.new:
        raise UsageError("the new controller's name comes from --filename")


# --- reading objects --------------------------------------------------------------------------


def _replicas(rc: Obj) -> int:
    return int(spec(rc).get("replicas", 1))


def _selector(rc: Obj) -> dict[str, str]:
    spec = rc.get("spec") or {}
    found: dict[str, str] = spec.get("selector") or (
        meta(spec.get("template") or {}).get("labels") or {}
    )
    return found


def template_hash(template: Obj, key: str) -> str:
    """A short hash of a pod template, ignoring the ``key`` label this command adds."""
    plain = copy.deepcopy(template)
    labels_of(plain).pop(key, None)
    canonical = orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:10]


def _is_ready(pod: Obj) -> bool:
    for condition in status(pod).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


# --- following the cluster --------------------------------------------------------------------


class Follower:
    """Controllers and pods of one namespace, kept by watches; ``changes`` counts every event."""

    def __init__(self, ctx: CliContext, rcs: ResourceType, pods: ResourceType) -> None:
        self.ctx = ctx
        self.rcs = Informer(ctx.client, rcs, namespace=ctx.namespace, clock=ctx.clock)
        self.pods = Informer(ctx.client, pods, namespace=ctx.namespace, clock=ctx.clock)
        self.changes = 0
        self._changed = asyncio.Event()
        for informer in (self.rcs, self.pods):
            informer.add_handlers(
                on_add=lambda _o: self._bump(),
                on_update=lambda _old, _new: self._bump(),
                on_delete=lambda _o: self._bump(),
            )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _bump(self) -> None:
        self.changes += 1
        self._changed.set()

    async def __aenter__(self) -> Follower:
        self._tasks = [asyncio.create_task(i.run(self._stop)) for i in (self.rcs, self.pods)]
        await wait_synced([self.rcs, self.pods], timeout=60)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def rc(self, name: str) -> Obj | None:
        return self.rcs.get(f"{self.ctx.namespace}/{name}")

    def available(self, rc: Obj) -> int:
        """Pods of ``rc`` that are Ready and not on their way out."""
        selector = _selector(rc).items()
        return sum(
            1
            for pod in self.pods.items()
            if selector <= labels_of(pod).items()
            and not meta(pod).get("deletionTimestamp")
            and _is_ready(pod)
        )

    async def changed_since(self, seen: int, timeout: float) -> bool:
        """Wait for an event after the ``seen``-th; False once ``timeout`` passes first."""
        clock = self.ctx.clock
        deadline = clock.monotonic() + timeout
        while self.changes <= seen:
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            # A timeout here is no answer yet: the loop's deadline check decides.
            with contextlib.suppress(TimeoutError):
                await within(clock, remaining, self._changed.wait())
        return True

    async def until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        while not check():
            if not await self.changed_since(self.changes, timeout):
                raise UpdateFailed(f"timed out waiting for {what}")


# --- the update -------------------------------------------------------------------------------


class RollingUpdater:
    def __init__(self, ctx: CliContext, args: argparse.Namespace, follow: Follower) -> None:
        self.ctx = ctx
        self.args = args
        self.follow = follow
        self.rcs = ctx.resolve("replicationcontrollers")
        self.pods = ctx.resolve("pods")
        self.key: str = args.deployment_label_key

    def say(self, line: str) -> None:
        self.ctx.out.write(line + "\n")
        self.ctx.out.flush()

    async def _get(self, name: str) -> Obj | None:
        try:
            found: Obj = await self.ctx.client.get(self.rcs, name, self.ctx.namespace)
        except ApiError as error:
            if error.code == 404:
                return None
            raise
        return found

    async def _update(self, name: str, change: Callable[[Obj], None]) -> Obj:
        """Read, change and write back, again on a conflict (``updateRcWithRetries``)."""
        for _attempt in range(5):
            current = await self.ctx.client.get(self.rcs, name, self.ctx.namespace)
            change(current)
            try:
                written: Obj = await self.ctx.client.replace(self.rcs, current, self.ctx.namespace)
            except ApiError as error:
                if error.code == 409:
                    continue
                raise
            return written
        raise UpdateFailed(f"replicationcontroller {name} keeps changing under us; try again")

    # --- building the new controller ----------------------------------------------------------

    async def from_image(self, old: Obj) -> Obj:
        name = self.args.new or annotations_of(old).get(NEXT, "")
        if name:
            existing = await self._get(name)
            if existing is not None:
                self.say(f"Found existing update in progress ({name}), resuming.")
                return existing
        new = copy.deepcopy(old)
        containers = new["spec"]["template"]["spec"]["containers"]
        index = 0
        if self.args.container:
            names = [c.get("name") for c in containers]
            if self.args.container not in names:
                raise UpdateFailed(f"container {self.args.container} not found in pod")
            index = names.index(self.args.container)
        elif len(containers) > 1:
            raise UsageError("must specify container to update when updating a multi-container pod")
        if containers[index].get("image") == self.args.image:
            raise UsageError("specified --image must be distinct from existing container image")
        containers[index]["image"] = self.args.image
        hash_value = template_hash(new["spec"]["template"], self.key)
        name = name or f"{_base_name(old, self.key)}-{hash_value}"
        new["metadata"] = {
            "name": name,
            "namespace": self.ctx.namespace,
            "labels": dict(labels_of(old)),
            "annotations": {
                k: v for k, v in annotations_of(old).items() if k not in _UPDATE_ANNOTATIONS
            },
        }
        new.pop("status", None)
        new["spec"]["selector"] = {**_selector(old), self.key: hash_value}
        new["spec"]["template"]["metadata"].setdefault("labels", {})[self.key] = hash_value
        return new

    def from_file(self, old: Obj) -> Obj:
        found = manifests.load([self.args.filename])
        if len(found) != 1 or found[0].obj.get("kind") != "ReplicationController":
            raise UsageError(f"{self.args.filename} does not specify a valid ReplicationController")
        new = copy.deepcopy(found[0].obj)
        namespace = meta(new).get("namespace")
        if namespace and namespace != self.ctx.namespace:
            raise UsageError(
                f"{self.args.filename} is in namespace {namespace}, not {self.ctx.namespace}"
            )
        spec = new.setdefault("spec", {})
        if not spec.get("replicas"):
            spec["replicas"] = _replicas(old)
        spec["selector"] = _selector(new)
        return new

    async def label_old(self, old: Obj, successor: str, *, add_key: bool) -> Obj:
        """Name the successor, and (``add_key``) give the old pods a ``key`` label of their own.

        In kubectl's order: the template first (so no new pod is made
        without the label), then the existing pods, then the selector; then
        any pod made meanwhile without the label goes, since it would now
        belong to no controller.
        """
        key = self.key
        old = await self._update(name_of(old), lambda rc: _annotate(rc, {NEXT: successor}))
        if not add_key or key in _selector(old):
            return old
        value = template_hash(old["spec"]["template"], key)
        before = dict(_selector(old))
        old = await self._update(
            name_of(old),
            lambda rc: (
                rc["spec"]["template"]["metadata"].setdefault("labels", {}).update({key: value})
            ),
        )
        for pod in await self._pods_matching(before):
            with contextlib.suppress(ApiError):
                await self.ctx.client.patch(
                    self.pods,
                    name_of(pod),
                    {"metadata": {"labels": {key: value}}},
                    self.ctx.namespace,
                )

        def narrow(rc: Obj) -> None:
            rc["spec"]["selector"] = {**_selector(rc), key: value}

        old = await self._update(name_of(old), narrow)
        for pod in await self._pods_matching(before):
            if labels_of(pod).get(key) != value:
                with contextlib.suppress(ApiError):
                    await self.ctx.client.delete(self.pods, name_of(pod), self.ctx.namespace)
        return old

    async def _pods_matching(self, selector: dict[str, str]) -> list[Obj]:
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        listed = await self.ctx.client.list(self.pods, self.ctx.namespace, label_selector=text)
        items: list[Obj] = listed.get("items") or []
        return items

    # --- the loop -----------------------------------------------------------------------------

    async def _target(self, new: Obj, source: str) -> Obj:
        """``getOrCreateTargetController``: the new controller, made at 0 replicas if need be."""
        existing = await self._get(name_of(new))
        if existing is None:
            if _replicas(new) <= 0:
                raise UpdateFailed(
                    f"invalid controller spec for {name_of(new)}; required: > 0 replicas"
                )
            _annotate(new, {DESIRED: str(_replicas(new)), SOURCE: source})
            new["spec"]["replicas"] = 0
            created: Obj = await self.ctx.client.create(self.rcs, new, self.ctx.namespace)
            self.say(f"Created {name_of(created)}")
            return created
        if annotations_of(existing).get(SOURCE) != source or DESIRED not in annotations_of(
            existing
        ):
            raise UpdateFailed(
                f"missing/unexpected annotations for controller {name_of(existing)}, "
                f"expected {source} : {annotations_of(existing)}"
            )
        self.say(f"Continuing update with existing controller {name_of(existing)}.")
        return existing

    async def _scale(self, rc: Obj, replicas: int) -> Obj:
        """Set the size, then wait for the controller to report it (kubectl's scale-and-wait)."""
        name = name_of(rc)
        patched = await self.ctx.client.patch(
            self.rcs, name, {"spec": {"replicas": replicas}}, self.ctx.namespace
        )
        generation = int(meta(patched).get("generation") or 0)

        def reached() -> bool:
            seen = self.follow.rc(name)
            status = (seen or {}).get("status") or {}
            return (
                seen is not None
                and int(status.get("observedGeneration") or 0) >= generation
                and int(status.get("replicas") or 0) == replicas
            )

        await self.follow.until(reached, self.args.timeout, f"{name} to have {replicas} pods")
        return self.follow.rc(name) or patched

    async def update(self, old: Obj, new: Obj) -> Obj:
        """``RollingUpdater.Update``: from ``old`` to ``new``; returns the finished new one."""
        new = await self._target(new, f"{name_of(old)}:{meta(old).get('uid', '')}")
        desired = int(annotations_of(new)[DESIRED])
        if ORIGINAL not in annotations_of(old):
            count = str(_replicas(old))
            old = await self._update(name_of(old), lambda rc: _annotate(rc, {ORIGINAL: count}))
        surge, unavailable = MAX_SURGE, MAX_UNAVAILABLE
        minimum = max(0, desired - unavailable)
        if desired == 0:
            minimum = 0
        self.say(
            f"Scaling up {name_of(new)} from {_replicas(new)} to {desired}, scaling down "
            f"{name_of(old)} from {_replicas(old)} to 0 (keep {minimum} pods available, "
            f"don't exceed {desired + surge} pods)"
        )
        clock = self.ctx.clock
        deadline = clock.monotonic() + self.args.timeout
        while _replicas(new) != desired or _replicas(old) != 0:
            before = (_replicas(new), _replicas(old))
            new = await self._scale_up(new, old, desired, surge)
            await clock.sleep(self.args.update_period)
            seen = self.follow.changes
            old = await self._scale_down(new, old, desired, minimum)
            if (_replicas(new), _replicas(old)) != before:
                deadline = clock.monotonic() + self.args.timeout
                continue
            # Nothing could move: wait for the pods to change (new ones becoming Ready).
            remaining = deadline - clock.monotonic()
            if remaining <= 0 or not await self.follow.changed_since(seen, remaining):
                raise UpdateFailed("timed out waiting for any update progress to be made")
        return await self._finish(old, new, desired)

    async def _scale_up(self, new: Obj, old: Obj, desired: int, surge: int) -> Obj:
        if _replicas(new) == desired:
            return new
        increment = (desired + surge) - (_replicas(old) + _replicas(new))
        if _replicas(old) == 0:
            increment = desired - _replicas(new)
        if increment <= 0:
            return new
        size = min(_replicas(new) + increment, desired)
        self.say(f"Scaling {name_of(new)} up to {size}")
        return await self._scale(new, size)

    async def _scale_down(self, new: Obj, old: Obj, desired: int, minimum: int) -> Obj:
        if _replicas(old) == 0:
            return old
        available = self.follow.available(new)
        unavailable_new = _replicas(new) - available
        decrement = _replicas(old) + _replicas(new) - minimum - unavailable_new
        if decrement <= 0:
            return old
        size = max(0, _replicas(old) - decrement)
        if _replicas(new) == desired and available == desired:
            size = 0
        self.say(f"Scaling {name_of(old)} down to {size}")
        return await self._scale(old, size)

    async def _finish(self, old: Obj, new: Obj, desired: int) -> Obj:
        """Drop the bookkeeping annotations, wait for the last pods, delete the old controller."""
        new = await self._update(name_of(new), lambda rc: _unannotate(rc, _UPDATE_ANNOTATIONS))
        name = name_of(new)
        generation = int(meta(new).get("generation") or 0)

        def settled() -> bool:
            seen = self.follow.rc(name)
            status = (seen or {}).get("status") or {}
            return (
                seen is not None
                and int(status.get("observedGeneration") or 0) >= generation
                and int(status.get("replicas") or 0) == desired
            )

        await self.follow.until(settled, self.args.timeout, f"{name} to have {desired} pods")
        self.say(f"Update succeeded. Deleting {name_of(old)}")
        try:
            await self.ctx.client.delete(self.rcs, name_of(old), self.ctx.namespace)
        except ApiError as error:
            if error.code != 404:
                raise
        return new

    # --- rollback -----------------------------------------------------------------------------

    async def rollback(self, old: Obj) -> Obj:
        """``AbortRollingUpdate``: run the update backwards, to the old controller's first size."""
        name = self.args.new or annotations_of(old).get(NEXT, "")
        aborted = await self._get(name) if name else None
        if aborted is None:
            raise UpdateFailed(f"could not find {name or 'the next controller'} to rollback")
        original = annotations_of(old).get(ORIGINAL)
        if original is None:
            raise UpdateFailed(f'couldn\'t find original replica count of "{name_of(old)}"')
        self.say(f'Setting "{name_of(old)}" replicas to {original}')
        source = f"{name_of(aborted)}:{meta(aborted).get('uid', '')}"
        target = await self._update(
            name_of(old), lambda rc: _annotate(rc, {SOURCE: source, DESIRED: original})
        )
        return await self.update(aborted, target)


def _annotate(rc: Obj, values: dict[str, str]) -> None:
    rc.setdefault("metadata", {}).setdefault("annotations", {}).update(values)


def _unannotate(rc: Obj, keys: tuple[str, ...]) -> None:
    notes = annotations_of(rc)
    for key in keys:
        notes.pop(key, None)


def _base_name(old: Obj, key: str) -> str:
    """The old name without the hash an earlier update gave it, so names do not grow."""
    name = name_of(old)
    value = _selector(old).get(key)
    if value and name.endswith(f"-{value}"):
        return name[: -len(value) - 1]
    return name


def _differ_in_a_selector_key(old: Obj, new: Obj) -> bool:
    new_selector = _selector(new)
    return any(
        key in new_selector and new_selector[key] != value for key, value in _selector(old).items()
    )


async def run(ctx: CliContext, args: argparse.Namespace) -> int:
    _validate(args)
    rcs = ctx.resolve("replicationcontrollers")
    old = await ctx.client.get(rcs, args.old, ctx.namespace)
    async with Follower(ctx, rcs, ctx.resolve("pods")) as follow:
        updater = RollingUpdater(ctx, args, follow)
        try:
            if args.rollback:
                await updater.rollback(old)
                ctx.out.write(f'replicationcontroller "{args.old}" rolled back\n')
                return 0
            new = await updater.from_image(old) if args.image else updater.from_file(old)
            if name_of(new) == name_of(old):
                raise UsageError(
                    f"{args.filename or name_of(new)} cannot have the same name as the existing "
                    f"ReplicationController {name_of(old)}"
                )
            if not args.image and not _differ_in_a_selector_key(old, new):
                raise UsageError(
                    f"{args.filename} must specify a matching key with non-equal value in "
                    f"Selector for {name_of(old)}"
                )
            old = await updater.label_old(old, name_of(new), add_key=bool(args.image))
            finished = await updater.update(old, new)
        except UpdateFailed as error:
            ctx.err.write(f"error: {error}\n")
            return 1
    ctx.out.write(f'replicationcontroller "{args.old}" rolling updated to "{name_of(finished)}"\n')
    return 0
