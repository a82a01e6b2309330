"""PodDisruptionBudget status: how many of a budget's pods may be disrupted right now.

For each budget the controller counts the pods it selects and writes
``expectedPods``, ``currentHealthy``, ``desiredHealthy`` and
``disruptionsAllowed``, with the ``DisruptionAllowed`` condition. The
eviction subresource reads and decrements ``disruptionsAllowed``, and
records each pod it let go in ``disruptedPods``; until such a pod is seen
terminating it does not count as healthy, and if it is not deleted within
two minutes it counts again, as in Kubernetes.

Percentages, and ``maxUnavailable``, are of the replicas the pods' owners
ask for (a ReplicaSet under a Deployment counts as its Deployment), not of
the pods that happen to exist, so a budget does not shrink while pods are
missing. A pod whose owner cannot be found makes the budget allow no
disruption at all (fail safe) and says why in the condition.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from controlplane.controllers import podutil
from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.podutil import NAMESPACE_INDEX
from corral.api.errors import ApiError
from corral.api.labels import NOTHING, LabelSelector, SelectorError, selector_from_dict
from corral.api.resources import REGISTRY
from corral.clock import rfc3339
from corral.informer import object_key
from corral.objects import (
    Obj,
    labels_of,
    meta,
    name_of,
    namespace_of,
    parse_time,
    spec,
    status,
    uid_of,
)

log = logging.getLogger(__name__)

PDBS = REGISTRY.by_kind("policy/v1", "PodDisruptionBudget")
PODS = REGISTRY.by_kind("v1", "Pod")
RCS = REGISTRY.by_kind("v1", "ReplicationController")
RSS = REGISTRY.by_kind("apps/v1", "ReplicaSet")
DEPLOYMENTS = REGISTRY.by_kind("apps/v1", "Deployment")
assert PDBS is not None and PODS is not None and RCS is not None
assert RSS is not None and DEPLOYMENTS is not None

# How long an eviction's pod stays out of the healthy count before it is
# assumed not to be going after all.
DELETION_TIMEOUT = timedelta(minutes=2)
CONDITION = "DisruptionAllowed"
CONFLICT_RETRY = 0.05


class NoController(Exception):
    """A selected pod's owner cannot be found, so the expected count is unknown."""


def budget_selector(pdb: Obj) -> LabelSelector:
    """policy/v1: a null selector selects nothing, an empty one every pod."""
    try:
        return selector_from_dict(spec(pdb).get("selector"), if_none=NOTHING)
    except SelectorError:
        return NOTHING


def scaled(value: int | str, total: int) -> int:
    """An int, or a percentage of ``total`` rounded up (GetScaledValueFromIntOrPercent)."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: {value!r} is not a percentage")
    return math.ceil(int(text[:-1]) * total / 100)


@dataclass(frozen=True)
class Counts:
    expected: int
    desired: int


def expected_and_desired(spec: Obj, pod_count: int, owners_scale: int | None) -> Counts:
    """``expectedPods`` and ``desiredHealthy`` for a budget's spec.

    An integer ``minAvailable`` needs no owners: the pods that exist are
    expected. Percentages and ``maxUnavailable`` need ``owners_scale``, the
    sum of the owners' replicas.
    """
    max_unavailable = spec.get("maxUnavailable")
    min_available = spec.get("minAvailable")
    if max_unavailable is not None:
        total = owners_scale or 0
        return Counts(total, max(0, total - scaled(max_unavailable, total)))
    if isinstance(min_available, int):
        return Counts(pod_count, min_available)
    if min_available is not None:
        total = owners_scale or 0
        return Counts(total, scaled(min_available, total))
    return Counts(0, 0)


def needs_owners(spec: Obj) -> bool:
    return spec.get("maxUnavailable") is not None or isinstance(spec.get("minAvailable"), str)


def disrupted_pods(
    pdb: Obj, pods: list[Obj], now: datetime
) -> tuple[dict[str, str], datetime | None]:
    """The ``disruptedPods`` entries still pending, and when the next one expires.

    Entries for pods now terminating (or gone) are done; entries older than
    the deletion timeout are dropped, so the pod counts again.
    """
    recorded = status(pdb).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    for pod in pods:
        name = name_of(pod)
        if podutil.is_terminating(pod) or name not in recorded:
            continue
        at = parse_time(recorded[name])
        if at is None or at + DELETION_TIMEOUT <= now:
            log.info("pod %s was expected to be deleted but it was not", object_key(pod))
            continue
        kept[name] = recorded[name]
        expires = at + DELETION_TIMEOUT
        recheck = expires if recheck is None else min(recheck, expires)
    return kept, recheck


def healthy_count(pods: list[Obj], disrupted: dict[str, str]) -> int:
    return sum(
        1
        for p in pods
        if not podutil.is_terminating(p) and name_of(p) not in disrupted and podutil.is_ready(p)
    )


def with_condition(conditions: list[Obj], condition: Obj) -> list[Obj]:
    """Set one condition, keeping its transition time when its status does not change."""
    out = []
    replaced = False
    for existing in conditions:
        if existing.get("type") == condition["type"]:
            if existing.get("status") == condition["status"]:
                condition = {**condition, "lastTransitionTime": existing.get("lastTransitionTime")}
            out.append(condition)
            replaced = True
        else:
            out.append(existing)
    if not replaced:
        out.append(condition)
    return out


def allowed_condition(allowed: int, generation: int, now: datetime, failure: str = "") -> Obj:
    if failure:
        status, reason = "False", "SyncFailed"
    elif allowed > 0:
        status, reason = "True", "SufficientPods"
    else:
        status, reason = "False", "InsufficientPods"
    return {
        "type": CONDITION,
        "status": status,
        "reason": reason,
        "message": failure,
        "observedGeneration": generation,
        "lastTransitionTime": rfc3339(now),
    }


class DisruptionController(Controller):
    name = "disruption"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        assert PDBS is not None and PODS is not None and RCS is not None
        assert RSS is not None and DEPLOYMENTS is not None
        self.pdbs = ctx.informer(PDBS)
        self.pdbs.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.rcs = ctx.informer(RCS)
        self.rss = ctx.informer(RSS)
        self.deployments = ctx.informer(DEPLOYMENTS)
        self.pdbs.add_handlers(
            on_add=lambda p: self.enqueue(object_key(p)),
            on_update=lambda _o, p: self.enqueue(object_key(p)),
        )
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=self._pod_updated,
            on_delete=self._pod_changed,
        )
        # A changed replica count moves percentages and maxUnavailable.
        for owners in (self.rcs, self.rss, self.deployments):
            owners.add_handlers(on_update=self._owner_updated)

    def _budgets_in(self, namespace: str) -> list[Obj]:
        return self.pdbs.by_index(NAMESPACE_INDEX, namespace)

    def _pod_changed(self, pod: Obj) -> None:
        labels = labels_of(pod)
        for pdb in self._budgets_in(namespace_of(pod)):
            if budget_selector(pdb).matches(labels):
                self.enqueue(object_key(pdb))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(old)
        self._pod_changed(new)

    def _owner_updated(self, old: Obj, new: Obj) -> None:
        if spec(old).get("replicas") != spec(new).get("replicas"):
            for pdb in self._budgets_in(namespace_of(new)):
                self.enqueue(object_key(pdb))

    # --- owners ------------------------------------------------------------------------------

    def _cached(self, ref: Obj, namespace: str, kind: str, group: str) -> Obj | None:
        if ref.get("kind") != kind or str(ref.get("apiVersion", "")).rpartition("/")[0] != group:
            return None
        informer = {"ReplicationController": self.rcs, "ReplicaSet": self.rss}.get(kind)
        informer = informer or self.deployments
        found = informer.get(f"{namespace}/{ref.get('name', '')}")
        return found if found is not None and uid_of(found) == ref.get("uid") else None

    def _scale_of(self, ref: Obj, namespace: str) -> tuple[str, int] | None:
        """The owner whose replicas count for a pod's controller, and that count."""
        for kind, group in (("ReplicationController", ""), ("ReplicaSet", "apps")):
            owner = self._cached(ref, namespace, kind, group)
            if owner is None:
                continue
            above = podutil.controller_ref(owner)
            if kind == "ReplicaSet" and above is not None and above.get("kind") == "Deployment":
                owner = self._cached(above, namespace, "Deployment", "apps")
                if owner is None:
                    return None
            return uid_of(owner), int(spec(owner).get("replicas", 1))
        return None

    def owners_scale(self, pods: list[Obj]) -> int:
        """The sum of the replicas of the selected pods' owners; pods without one are skipped."""
        scales: dict[str, int] = {}
        for pod in pods:
            ref = podutil.controller_ref(pod)
            if ref is None:
                continue  # unmanaged: Kubernetes warns and leaves it out
            if ref.get("uid") in scales:
                continue
            found = self._scale_of(ref, namespace_of(pod))
            if found is None:
                raise NoController(f'found no controllers for pod "{meta(pod).get("name")}"')
            scales[str(ref.get("uid"))] = found[1]
        return sum(scales.values())

    # --- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        namespace = namespace_of(pdb)
        selector = budget_selector(pdb)
        pods = [
            p
            for p in self.pods.by_index(NAMESPACE_INDEX, namespace)
            if selector.matches(labels_of(p))
        ]
        spec = pdb.get("spec") or {}
        now = self.clock.now()
        try:
            counts = expected_and_desired(
                spec, len(pods), self.owners_scale(pods) if needs_owners(spec) else None
            )
        except (NoController, ValueError) as error:
            await self._fail_safe(pdb, str(error), now)
            return
        disrupted, recheck = disrupted_pods(pdb, pods, now)
        healthy = healthy_count(pods, disrupted)
        allowed = healthy - counts.desired
        # No pods expected yet: the first ones may appear before this controller runs again.
        if counts.expected <= 0 or allowed <= 0:
            allowed = 0
        generation = int(meta(pdb).get("generation") or 0)
        old = pdb.get("status") or {}
        status: Obj = {
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": counts.desired,
            "expectedPods": counts.expected,
            "conditions": with_condition(
                old.get("conditions") or [], allowed_condition(allowed, generation, now)
            ),
        }
        if disrupted:
            status["disruptedPods"] = disrupted
        await self._write(pdb, status)
        if recheck is not None:
            raise RequeueAfter(max((recheck - now).total_seconds(), 0.0))

    async def _fail_safe(self, pdb: Obj, reason: str, now: datetime) -> None:
        log.warning("budget %s: %s; allowing no disruptions", object_key(pdb), reason)
        old = pdb.get("status") or {}
        generation = int(old.get("observedGeneration") or 0)
        status = {
            **old,
            "disruptionsAllowed": 0,
            "conditions": with_condition(
                old.get("conditions") or [], allowed_condition(0, generation, now, reason)
            ),
        }
        await self._write(pdb, status)

    async def _write(self, pdb: Obj, status: Obj) -> None:
        assert PDBS is not None
        if status == (pdb.get("status") or {}):
            return
        new = copy.deepcopy(pdb)
        new["status"] = status
        try:
            await self.client.replace(PDBS, new, meta(pdb).get("namespace"), subresource="status")
        except ApiError as error:
            # The cached resourceVersion makes this a compare-and-swap: an eviction
            # spent budget meanwhile. Not a failure; look again once the cache has it.
            if error.code == 409:
                raise RequeueAfter(CONFLICT_RETRY) from None
            if error.code != 404:
                raise
