"""Namespace deletion: empty a Terminating namespace, then release its ``kubernetes`` finalizer.

Deleting a namespace only marks it Terminating. This controller deletes
every namespaced kind the API serves inside it (one ``deletecollection``
per kind that still has live objects), and once a fresh list finds nothing
left it removes the ``kubernetes`` finalizer through ``/finalize``, which
lets the API server remove the namespace.

What remains is read from the API, never from a cache: finalizing on a
stale view would strand objects in etcd under a namespace that no longer
exists. Pods terminating gracefully are waited for (their deletion events
wake the controller, with a requeue at the latest grace deadline as a
backstop); anything else held by finalizers is polled with a backoff. The
namespace's status conditions say what it is waiting for, as Kubernetes'
do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from controlplane.controllers.base import Context, Controller, RequeueAfter
from controlplane.controllers.podutil import is_terminating
from corral.api.crd import is_established, resource_types
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.rest import resource_path
from corral.clock import rfc3339
from corral.informer import object_key
from corral.objects import Obj, meta, namespace_of, parse_time, spec, status

log = logging.getLogger(__name__)

NAMESPACES = REGISTRY.by_kind("v1", "Namespace")
PODS = REGISTRY.by_kind("v1", "Pod")
CRDS = REGISTRY.require("apiextensions.k8s.io/v1", "CustomResourceDefinition")
assert NAMESPACES is not None and PODS is not None

FINALIZER = "kubernetes"
_FIRST_POLL = 1.0
_MAX_POLL = 30.0
_CONDITION_TYPES = (
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
)


@dataclass
class Remaining:
    """What a pass over a namespace found still there."""

    counts: dict[str, int] = field(default_factory=dict)
    finalizers: dict[str, int] = field(default_factory=dict)
    # Seconds until the last gracefully terminating pod's deadline.
    grace_left: float = 0.0
    failures: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.counts)


def namespace_conditions(remaining: Remaining, now: datetime, old: list[Obj]) -> list[Obj]:
    """Kubernetes' deletion conditions for what remains (transition times kept when unchanged)."""
    previous = {c.get("type"): c for c in old}
    content = ", ".join(
        f"{kind} has {n} resource instances" for kind, n in remaining.counts.items()
    )
    held = ", ".join(
        f"{name} in {n} resource instances" for name, n in remaining.finalizers.items()
    )
    failure = ("True", "ContentDeletionFailed", "; ".join(remaining.failures))
    deleted = (
        "False",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    )
    wanted = {
        "NamespaceDeletionContentFailure": failure if remaining.failures else deleted,
        "NamespaceContentRemaining": (
            ("True", "SomeResourcesRemain", f"Some resources are remaining: {content}")
            if remaining.counts
            else ("False", "ContentRemoved", "All content successfully removed")
        ),
        "NamespaceFinalizersRemaining": (
            (
                "True",
                "SomeFinalizersRemain",
                f"Some content in the namespace has finalizers remaining: {held}",
            )
            if remaining.finalizers
            else ("False", "ContentHasNoFinalizers", "All content-preserving finalizers finished")
        ),
    }
    conditions = [c for c in old if c.get("type") not in wanted]
    for kind in _CONDITION_TYPES:
        status, reason, message = wanted[kind]
        before = previous.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": since or rfc3339(now),
            }
        )
    return conditions


class NamespaceController(Controller):
    name = "namespace"

    def __init__(self, ctx: Context, resources: Iterable[ResourceType] | None = None) -> None:
        super().__init__(ctx)
        assert NAMESPACES is not None and PODS is not None
        # Custom kinds come and go as CRDs do; only the registry's own kinds are fixed.
        self.with_custom_kinds = resources is None
        self.kinds = [
            rt
            for rt in (REGISTRY if resources is None else resources)
            if rt.namespaced and {"list", "deletecollection"} <= set(rt.verbs)
        ]
        self.namespaces = ctx.informer(NAMESPACES)
        self.namespaces.add_handlers(
            on_add=self._namespace_changed,
            on_update=lambda _old, new: self._namespace_changed(new),
            on_delete=self._namespace_deleted,
        )
        # A pod finishing its graceful termination is what a namespace usually waits on.
        ctx.informer(PODS).add_handlers(on_delete=self._pod_deleted)
        self._polls: dict[str, float] = {}

    def _namespace_changed(self, namespace: Obj) -> None:
        if is_terminating(namespace):
            self.enqueue(object_key(namespace))

    def _namespace_deleted(self, namespace: Obj) -> None:
        self._polls.pop(object_key(namespace), None)

    def _pod_deleted(self, pod: Obj) -> None:
        name = namespace_of(pod)
        found = self.namespaces.get(name)
        if found is not None and is_terminating(found):
            self.enqueue(name)

    async def sync(self, key: str) -> None:
        namespace = self.namespaces.get(key)
        if namespace is None or not is_terminating(namespace):
            self._polls.pop(key, None)
            return
        if FINALIZER not in (spec(namespace).get("finalizers") or []):
            return
        remaining = await self.delete_content(key)
        await self._report(namespace, remaining)
        if remaining:
            raise RequeueAfter(self._next_poll(key, remaining))
        self._polls.pop(key, None)
        if await self._finalize(namespace):
            log.info("namespace %s is empty; finalized", key)

    def _next_poll(self, key: str, remaining: Remaining) -> float:
        if remaining.grace_left > 0:
            # Pod deletions wake us sooner; this is the backstop.
            return remaining.grace_left + 1.0
        delay = self._polls.get(key, _FIRST_POLL / 2) * 2
        self._polls[key] = min(delay, _MAX_POLL)
        return self._polls[key]

    async def delete_content(self, namespace: str) -> Remaining:
        """Delete what is live in ``namespace``; report what is still there afterwards."""
        remaining = Remaining()
        now = self.clock.now()
        custom = await self._custom_kinds() if self.with_custom_kinds else []
        for rt in [*self.kinds, *custom]:
            try:
                items = await self._list(rt, namespace)
                if any(not is_terminating(item) for item in items):
                    await self._delete_collection(rt, namespace)
                    items = await self._list(rt, namespace)
            except ApiError as error:
                remaining.failures.append(f"{rt.qualified}: {error.message}")
                remaining.counts.setdefault(rt.qualified, 1)
                continue
            if not items:
                continue
            remaining.counts[rt.qualified] = len(items)
            for item in items:
                for finalizer in meta(item).get("finalizers") or []:
                    remaining.finalizers[finalizer] = remaining.finalizers.get(finalizer, 0) + 1
                deadline = parse_time(meta(item).get("deletionTimestamp"))
                if deadline is not None and rt.kind == "Pod":
                    left = (deadline - now).total_seconds()
                    remaining.grace_left = max(remaining.grace_left, left)
        return remaining

    async def _custom_kinds(self) -> list[ResourceType]:
        """The namespaced kinds the established CRDs define, read afresh, at their storage
        versions (one version of a kind lists all its objects)."""
        try:
            crds = await self._list(CRDS, None)
        except ApiError as error:
            log.warning("cannot list CustomResourceDefinitions: %s", error.message)
            return []
        kinds: list[ResourceType] = []
        for crd in crds:
            if not is_established(crd):
                continue
            served = [rt for rt in resource_types(crd) if rt.namespaced and rt.custom]
            stored = [rt for rt in served if rt.custom and rt.version == rt.custom.storage_version]
            kinds.extend((stored or served)[:1])
        return kinds

    async def _list(self, rt: ResourceType, namespace: str | None) -> list[Obj]:
        listed = await self.client.list(rt, namespace)
        items: list[Obj] = listed.get("items") or []
        return items

    async def _delete_collection(self, rt: ResourceType, namespace: str) -> None:
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        await self.client.request("DELETE", resource_path(rt, namespace), body=options)

    async def _report(self, namespace: Obj, remaining: Remaining) -> None:
        assert NAMESPACES is not None
        old = status(namespace).get("conditions") or []
        conditions = namespace_conditions(remaining, self.clock.now(), old)
        if conditions == old:
            return
        try:
            await self.client.patch(
                NAMESPACES,
                meta(namespace)["name"],
                {"status": {"conditions": conditions}},
                subresource="status",
            )
        except ApiError as error:
            if error.code != 404:
                raise

    async def _finalize(self, namespace: Obj) -> bool:
        assert NAMESPACES is not None
        spec = namespace.get("spec") or {}
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": meta(namespace)["name"]},
            "spec": {"finalizers": [f for f in spec.get("finalizers") or [] if f != FINALIZER]},
        }
        path = resource_path(NAMESPACES, None, meta(namespace)["name"], "finalize")
        try:
            await self.client.request("PUT", path, body=body)
        except ApiError as error:
            if error.code != 404:
                raise
            return False
        return True
