"""Pod events for a controller that owns pods by controllerRef and selector.

The ReplicaSet/ReplicationController and StatefulSet controllers hear of
their pods alike, as Kubernetes' replica_set.go and stateful_set.go do: a
pod with a controllerRef concerns that owner only while the cached owner
has the same uid; an orphan concerns every owner that may adopt it; the
creates and deletes seen settle the owner's expectations. What differs
(which owners may adopt an orphan, and what an update means) stays with
each controller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from controlplane.controllers import podutil
from controlplane.controllers.base import Expectations
from corral.clock import Clock
from corral.informer import Informer, object_key
from corral.objects import Obj, namespace_of, uid_of


class PodExpectations(Expectations):
    """Creates counted, deletes tracked by pod UID.

    A pod deleted gracefully is seen twice (deletionTimestamp set, then
    gone); counting both would satisfy the expectation early and let a
    stale cache delete one pod too many, so deletes are matched by UID, as
    client-go's UIDTrackingControllerExpectations does.
    """

    def __init__(self, clock: Clock, timeout: float = 300.0) -> None:
        super().__init__(clock, timeout)
        self._deleting: dict[str, set[str]] = {}

    def expect(self, key: str, adds: int = 0, deletes: int = 0) -> None:
        super().expect(key, adds, deletes)
        self._deleting.pop(key, None)

    def expect_deletions(self, key: str, uids: Iterable[str]) -> None:
        pending = set(uids)
        super().expect(key, deletes=len(pending))
        self._deleting[key] = pending

    def deletion_observed(self, key: str, uid: str) -> None:
        pending = self._deleting.get(key)
        if pending is not None and uid in pending:
            pending.discard(uid)
            self.observed_delete(key)

    def forget(self, key: str) -> None:
        super().forget(key)
        self._deleting.pop(key, None)


class OwnedPods:
    """Which owner a pod event concerns, and what it settles.

    ``adopters`` names the owners that may adopt an orphan pod.
    """

    def __init__(
        self,
        owners: Informer,
        kind: str,
        group: str,
        expectations: PodExpectations,
        enqueue: Callable[[str], None],
        adopters: Callable[[Obj], list[str]],
    ) -> None:
        self.owners = owners
        self.kind = kind
        self.group = group
        self.expectations = expectations
        self.enqueue = enqueue
        self.adopters = adopters

    def owner_key(self, ref: Obj | None, namespace: str) -> str | None:
        """The key of the owner ``ref`` names, if it is one of ours and in the cache."""
        if ref is None or ref.get("kind") != self.kind:
            return None
        if str(ref.get("apiVersion", "")).rpartition("/")[0] != self.group:
            return None
        key = f"{namespace}/{ref.get('name', '')}"
        owner = self.owners.get(key)
        if owner is None or uid_of(owner) != ref.get("uid"):
            return None
        return key

    def owner_deleted(self, owner: Obj) -> None:
        key = object_key(owner)
        self.expectations.forget(key)
        self.enqueue(key)

    def pod_added(self, pod: Obj) -> None:
        if podutil.is_terminating(pod):
            # A restarted controller can first see a pod already on its way out.
            self.pod_deleted(pod)
            return
        ref = podutil.controller_ref(pod)
        if ref is not None:
            key = self.owner_key(ref, namespace_of(pod))
            if key is not None:
                self.expectations.observed_add(key)
                self.enqueue(key)
            return
        for key in self.adopters(pod):
            self.enqueue(key)

    def pod_deleted(self, pod: Obj) -> None:
        key = self.owner_key(podutil.controller_ref(pod), namespace_of(pod))
        if key is not None:
            self.expectations.deletion_observed(key, uid_of(pod))
            self.enqueue(key)
