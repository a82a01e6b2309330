"""Why a pod fits nowhere, in Kubernetes' words, with node counts per reason::

    0/5 nodes are available: 3 Insufficient memory,
    2 node(s) didn't match Pod's node affinity/selector.

(one line in the message itself).

Reasons are listed most common first (Kubernetes sorts the "N reason"
strings alphabetically, which puts "10 ..." before "9 ..."); ties read in
alphabetical order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.framework import Status

NO_NODES = "no nodes available to schedule pods"


@dataclass(frozen=True)
class Diagnosis:
    total_nodes: int
    # node name -> (the filter that rejected it, its status)
    node_statuses: dict[str, tuple[str, Status]] = field(default_factory=dict)
    # A PreFilter's rejection applies to the pod as a whole, on every node.
    pre_filter: tuple[str, Status] | None = None

    @property
    def rejected_by(self) -> frozenset[str]:
        """The plugins that said no; only changes they care about can help the pod."""
        if self.pre_filter is not None:
            return frozenset((self.pre_filter[0],))
        return frozenset(plugin for plugin, _ in self.node_statuses.values())

    def reason_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, status in self.node_statuses.values():
            for reason in status.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        return counts

    def message(self) -> str:
        head = f"0/{self.total_nodes} nodes are available"
        if self.total_nodes == 0:
            return f"{head}: {NO_NODES}."
        if self.pre_filter is not None:
            return f"{head}: {self.pre_filter[1].message}."
        counts = sorted(self.reason_counts().items(), key=lambda item: (-item[1], item[0]))
        if not counts:
            return f"{head}."
        return f"{head}: {', '.join(f'{n} {reason}' for reason, n in counts)}."


class FitError(Exception):
    """No node passes the filters for this pod."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(diagnosis.message())
        self.diagnosis = diagnosis


class SchedulingError(Exception):
    """A plugin failed (not a rejection): the attempt is retried after a backoff."""
