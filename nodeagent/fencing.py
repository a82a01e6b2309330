"""Self-fencing: a node cut off from the control plane stops its StatefulSet pods.

The control plane replaces a StatefulSet pod on a silent node once the node
is declared dead, which it judges from the node's Lease. For ``web-1`` never
to run twice, the old ``web-1`` must be dead before that: so the agent
stops, by itself, every pod that must not run twice once ``fence_after``
seconds have passed since the send time of the last heartbeat the control
plane acknowledged. docs/controllers.md ("StatefulSet") has the timing
argument; in short, ``fence_after`` plus the pods' grace periods is less
than what the node lifecycle controller waits before it force-deletes them.

Which pods: those a StatefulSet controls, and any adopted pod whose object
the agent has not seen yet (after an agent restart it cannot tell what they
are, so it errs on the side of stopping them). Other pods keep running:
a stateless replica running twice does no harm, and its clients may still
reach it.

A fenced pod is not started again from the agent's memory. Once the
control plane answers again, the agent lists its pods afresh, and only a
pod the control plane still binds to this node runs again; one it has
replaced elsewhere meanwhile is gone from that list.
"""

from __future__ import annotations

import logging

from corral.clock import Clock
from corral.objects import Obj, owner_references

log = logging.getLogger(__name__)

# The node lifecycle controller assumes this (its agent_fence_after), and
# waits (fence_after + grace period) * 1.1 + 5 s of silence before it
# force-deletes a StatefulSet pod (docs/controllers.md, "StatefulSet").
DEFAULT_FENCE_AFTER = 20.0


def must_not_run_twice(pod: Obj | None) -> bool:
    """A StatefulSet's pod, or one the agent cannot identify yet."""
    if pod is None:
        return True
    for ref in owner_references(pod):
        if ref.get("controller") and ref.get("kind") == "StatefulSet":
            return True
    return False


class SelfFence:
    """When the last acknowledged heartbeat was sent, and whether this node is fenced."""

    def __init__(self, clock: Clock, fence_after: float) -> None:
        self.clock = clock
        self.fence_after = fence_after
        self.acknowledged_at = clock.monotonic()
        self.fenced = False
        # UIDs of the pods stopped by the fence: they start again only from a fresh list.
        self.stopped: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.fence_after > 0

    def acknowledged(self, sent_at: float) -> None:
        """The control plane answered a heartbeat sent at ``sent_at`` (monotonic)."""
        self.acknowledged_at = max(self.acknowledged_at, sent_at)

    def silent_for(self) -> float:
        return self.clock.monotonic() - self.acknowledged_at

    def due(self) -> bool:
        return self.enabled and self.silent_for() >= self.fence_after

    def holds(self, uid: str) -> bool:
        """Whether a pod the watch hands over must stay stopped (fenced, not yet relisted)."""
        return uid in self.stopped

    def relisted(self) -> None:
        """A fresh list from the control plane begins: it decides what runs now."""
        self.stopped.clear()
        self.fenced = False
