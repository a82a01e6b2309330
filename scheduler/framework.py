"""The scheduling framework's vocabulary: statuses, cycle state, plugin hooks (events: events.py).

A plugin implements only the hooks it needs, each a small protocol of its
own, in the spirit of Kubernetes' scheduling framework:

- ``pre_filter(state, pod)`` once per cycle: compute what the filter needs
  and keep it in ``state``; ``Status.skip()`` says the filter has nothing to
  check for this pod, so it is not called for any node.
- ``filter(state, pod, node)``: a predicate over one node.
- ``select(state, pod, nodes)``, optional: the same predicate over many
  nodes at once, returning the ones that pass, in order. Built-in filters
  have it because one Python call per node per filter is most of the cost
  of a cycle; it must agree with ``filter`` exactly (the tests check).
- ``pre_score(state, pod, nodes)`` once per cycle, before scoring; ``skip``
  drops the plugin's score for this pod.
- ``score(state, pod, nodes)``: one score per node, normalised to 0..100,
  for the whole batch at once (which is what lets a plugin normalise).

Every hook that decides (pre-filter, filter, pre-score) returns an explicit
``Status``; ``None`` never means success.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from scheduler.events import ClusterEvent

if TYPE_CHECKING:
    from corral.api.labels import LabelSelector
    from scheduler.nodeinfo import NodeInfo
    from scheduler.podinfo import PodInfo
    from scheduler.volumes import VolumeStore

MAX_NODE_SCORE = 100


class ConfigError(ValueError):
    """A configuration (or a plugin's arguments) that the scheduler cannot run with."""


class Code(enum.Enum):
    SUCCESS = "Success"
    # The pod does not fit this node now; something changing may make it fit.
    UNSCHEDULABLE = "Unschedulable"
    # The pod cannot fit this node whatever happens to other pods.
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    ERROR = "Error"
    SKIP = "Skip"


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()

    @staticmethod
    def ok() -> Status:
        return _OK

    @staticmethod
    def skip() -> Status:
        return _SKIP

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Code.ERROR, (message,))

    @property
    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    @property
    def is_skip(self) -> bool:
        return self.code is Code.SKIP

    @property
    def is_rejection(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)


_OK = Status()
_SKIP = Status(Code.SKIP)


class CycleState:
    """Scratch space for one scheduling attempt, keyed by the plugin that wrote it."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def read(self, key: str) -> Any:
        """The value under ``key``; a ``KeyError`` means a hook ran out of order."""
        return self._data[key]


@dataclass(slots=True)
class NodeSummary:
    """How many nodes have each trait a filter may reject for.

    A filter whose trait no node has can skip itself for every pod: the
    common case of a healthy cluster costs nothing per node.
    """

    not_ready: int = 0
    unschedulable: int = 0
    hard_tainted: int = 0
    soft_tainted: int = 0
    # Nodes per zone ("" for nodes with none).
    zones: dict[str, int] = field(default_factory=dict)


class Handle(Protocol):
    """What plugins may read beyond the pod and the node in front of them."""

    def pods_matching(
        self, namespace: str, selectors: Sequence[LabelSelector]
    ) -> Iterable[PodInfo]:
        """Assigned and assumed pods of ``namespace`` that every selector matches."""
        ...

    def count_matching(
        self, namespace: str, selectors: Sequence[LabelSelector]
    ) -> tuple[Mapping[str, int], Mapping[str, int]]:
        """Per node and per zone, the pods (not being deleted) that every selector matches."""
        ...

    def node(self, name: str) -> NodeInfo | None: ...

    def node_list(self) -> Sequence[NodeInfo]:
        """Every node that exists (for plugins that count over all domains)."""
        ...

    def node_summary(self) -> NodeSummary: ...

    def namespaces(self) -> Iterable[str]:
        """The namespaces that have assigned or assumed pods."""
        ...

    def pods_with_required_anti_affinity(self) -> Iterable[PodInfo]:
        """Assigned and assumed pods whose required anti-affinity may keep a pod out."""
        ...

    def spreading_selectors(self, pod: PodInfo) -> list[LabelSelector]:
        """Selectors of the Services, ReplicationControllers and ReplicaSets that pick ``pod``."""
        ...

    def volumes(self) -> VolumeStore:
        """Claims, volumes and storage classes, for VolumeBinding."""
        ...


@runtime_checkable
class Plugin(Protocol):
    name: str


@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status: ...


@runtime_checkable
class FilterPlugin(Protocol):
    name: str
    # The changes that could make a node this filter rejected acceptable.
    events: ClusterEvent

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status: ...


@runtime_checkable
class BatchFilterPlugin(Protocol):
    name: str

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]: ...


@runtime_checkable
class PreScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]: ...
