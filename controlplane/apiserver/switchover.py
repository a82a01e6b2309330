"""Evicting a replicated set's primary: hand the role over first, then let it go.

A drain evicts pods one by one and retries a refusal every few seconds.
Evicting the primary of a replicated set (corral/replication.py) outright
would stop writes until the controller noticed and promoted a replica; so
the eviction API refuses it with 429, as a PodDisruptionBudget does, and
marks the pod ``replication.corral.io/switchover``. The replicated-set
controller then demotes it and elects a caught-up replica; the drain's next
retry finds a replica, not the primary, and evicts it under the budget.
"""

from __future__ import annotations

import copy

from controlplane.apiserver.objects import Objects
from controlplane.storage.store import Stored
from corral import replication
from corral.api.errors import ApiError, Cause
from corral.api.resources import ResourceType
from corral.clock import rfc3339
from corral.objects import Obj

RETRY_AFTER_SECONDS = 2


async def request_switchover(objects: Objects, pods: ResourceType, pod: Obj, dry_run: bool) -> None:
    """Mark the primary for a hand-over and refuse this eviction, to be retried."""
    metadata = pod["metadata"]
    asked = rfc3339(objects.clock.now())

    def mark(current: Stored) -> Obj | None:
        annotations = current.obj["metadata"].get("annotations") or {}
        if annotations.get(replication.SWITCHOVER_ANNOTATION):
            return None
        new = copy.deepcopy(current.obj)
        new["metadata"].setdefault("annotations", {})[replication.SWITCHOVER_ANNOTATION] = asked
        return new

    if not dry_run:
        await objects.guaranteed_update(pods, metadata["namespace"], metadata["name"], mark)
    raise ApiError(
        429,
        "TooManyRequests",
        f'Cannot evict pod "{metadata["name"]}" yet: it is the primary of its replicated set, '
        "and hands over to a replica first (a switchover has been requested)",
        causes=[Cause("ReplicatedSetPrimary", "a switchover to a replica is in progress")],
        retry_after_seconds=RETRY_AFTER_SECONDS,
    )
