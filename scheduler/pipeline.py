"""The configured plugins, run in order for one pod: filter, score, pick a node.

Filtering walks the node list from where the previous pod stopped and
stops once it has found enough feasible nodes (Kubernetes'
percentageOfNodesToScore), so a large cluster costs a sample per pod, and
over many pods every node gets its turn. Only when nothing fits are all the
nodes looked at, which is what lets the explanation count every node.
"""

from __future__ import annotations

import itertools
import operator
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from scheduler.config import SchedulerConfig
from scheduler.diagnosis import Diagnosis, FitError, SchedulingError
from scheduler.events import ANY_NODE_CHANGE, ClusterEvent
from scheduler.framework import (
    MAX_NODE_SCORE,
    BatchFilterPlugin,
    Code,
    ConfigError,
    CycleState,
    FilterPlugin,
    Handle,
    Plugin,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
)
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.registry import REGISTRY, PluginFactory

# Kubernetes' constants for sampling: below this many nodes all are scored;
# the adaptive percentage never goes under the floor.
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
DEFAULT_PERCENTAGE = 50

BUILTIN_PLUGINS = "scheduler.plugins."

# Nodes filtered together at the least: small chunks near the end of a
# search would cost a round of calls for a handful of nodes.
MIN_CHUNK = 64

FilterFn = Callable[[CycleState, PodInfo, NodeInfo], Status]
SelectFn = Callable[[CycleState, PodInfo, list[NodeInfo]], list[NodeInfo]]


def num_feasible_nodes_to_find(num_nodes: int, percentage: int) -> int:
    """How many feasible nodes to look for before scoring, as kube-scheduler computes it."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_nodes
    if percentage <= 0:
        # 50 % at 0 nodes, 1 % less per 125 nodes, never below 5 %.
        percentage = max(DEFAULT_PERCENTAGE - num_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int


@dataclass(frozen=True, slots=True)
class _Active:
    name: str
    select: SelectFn
    filter: FilterFn


def _one_by_one(plugin: FilterPlugin) -> SelectFn:
    """``select`` for a filter that has only the per-node predicate."""

    def select(state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        check = plugin.filter
        return [node for node in nodes if check(state, pod, node).is_success]

    return select


def _take(nodes: Sequence[NodeInfo], start: int, count: int) -> list[NodeInfo]:
    """``count`` nodes from ``start``, wrapping around the end."""
    end = start + count
    if end <= len(nodes):
        return list(nodes[start:end])
    return [*nodes[start:], *nodes[: end - len(nodes)]]


def _record_rejections(
    state: CycleState,
    pod: PodInfo,
    filt: _Active,
    before: list[NodeInfo],
    passed: list[NodeInfo],
    statuses: dict[str, tuple[str, Status]],
) -> None:
    kept = {id(node) for node in passed}
    for node in before:
        if id(node) in kept:
            continue
        status = filt.filter(state, pod, node)
        if status.code is Code.ERROR:
            raise SchedulingError(f"{filt.name} on node {node.name}: {status.message}")
        if status.is_success:
            # select and filter disagree: a plugin bug, reported as such
            # rather than hidden behind a made-up reason.
            raise SchedulingError(f"{filt.name}: select rejected {node.name} but filter passes it")
        statuses[node.name] = (filt.name, status)


@dataclass(frozen=True, slots=True)
class _Scorer:
    plugin: ScorePlugin
    weight: int
    pre_score: PreScorePlugin | None
    # Scores of plugins from elsewhere are checked every time; the built-in
    # ones are held to the range by their tests, not on every cycle.
    check: bool


class Pipeline:
    def __init__(
        self,
        config: SchedulerConfig,
        handle: Handle,
        *,
        rng: random.Random | None = None,
        registry: Mapping[str, PluginFactory] = REGISTRY,
    ) -> None:
        self.percentage = config.percentage_of_nodes_to_score
        self._rng = rng or random.Random()
        self._next_start = 0
        instances: dict[str, Plugin] = {}
        for name in [*config.filters, *(n for n, _ in config.scores)]:
            if name in instances:
                continue
            factory = registry.get(name)
            if factory is None:
                raise ConfigError(f"unknown plugin {name}; known: {', '.join(sorted(registry))}")
            instances[name] = factory(config.plugin_args.get(name) or {}, handle)
        self.filters: list[FilterPlugin] = []
        for name in config.filters:
            plugin = instances[name]
            if not isinstance(plugin, FilterPlugin):
                raise ConfigError(f"plugin {name} has no filter; it cannot be a filter")
            self.filters.append(plugin)
        self._pre_filters: list[PreFilterPlugin] = [
            p for p in self.filters if isinstance(p, PreFilterPlugin)
        ]
        self._scorers: list[_Scorer] = []
        for name, weight in config.scores:
            plugin = instances[name]
            if not isinstance(plugin, ScorePlugin):
                raise ConfigError(f"plugin {name} has no score; it cannot be a score")
            pre = plugin if isinstance(plugin, PreScorePlugin) else None
            builtin = type(plugin).__module__.startswith(BUILTIN_PLUGINS)
            self._scorers.append(_Scorer(plugin, weight, pre, check=not builtin))
        self._events = {p.name: p.events for p in self.filters}
        self._active = [
            _Active(
                p.name, p.select if isinstance(p, BatchFilterPlugin) else _one_by_one(p), p.filter
            )
            for p in self.filters
        ]

    # --- queueing hints ---------------------------------------------------------------------

    def may_help(self, rejected_by: frozenset[str], event: ClusterEvent) -> bool:
        """Whether ``event`` could change the mind of any plugin that rejected the pod."""
        if not rejected_by:
            return bool(event & ANY_NODE_CHANGE)
        return any(self._events.get(name, ~ClusterEvent(0)) & event for name in rejected_by)

    def fits(self, pod: PodInfo, node: NodeInfo) -> bool:
        """Whether ``pod`` passes every filter on ``node`` alone (no sampling, no scores)."""
        return not self.refusing(pod, node)

    def refusing(self, pod: PodInfo, node: NodeInfo) -> frozenset[str]:
        """The plugins that keep ``pod`` off ``node`` now; empty when it fits there."""
        state = CycleState()
        try:
            active = self._pre_filter(state, pod)
        except FitError as error:
            return error.diagnosis.rejected_by
        except SchedulingError:
            return frozenset(("PreFilter",))
        for filt in active:
            if not filt.filter(state, pod, node).is_success:
                return frozenset((filt.name,))
        return frozenset()

    # --- one scheduling cycle ----------------------------------------------------------------

    def schedule(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> ScheduleResult:
        """Choose a node for ``pod``; ``FitError`` when none fits."""
        total = len(nodes)
        if total == 0:
            raise FitError(Diagnosis(0))
        state = CycleState()
        active = self._pre_filter(state, pod, total)
        feasible, statuses, evaluated = self._find_feasible(state, pod, nodes, active)
        if not feasible:
            raise FitError(Diagnosis(total, statuses))
        if len(feasible) == 1 or not self._scorers:
            return ScheduleResult(feasible[0].name, evaluated, len(feasible))
        totals = self._score(state, pod, feasible)
        best = max(totals)
        ties = [i for i, value in enumerate(totals) if value == best]
        if len(ties) > 1:
            ties = _least_loaded(feasible, ties)
        # A random pick among equals spreads pods that nothing else tells apart.
        chosen = ties[0] if len(ties) == 1 else ties[self._rng.randrange(len(ties))]
        return ScheduleResult(feasible[chosen].name, evaluated, len(feasible))

    def _pre_filter(self, state: CycleState, pod: PodInfo, total: int = 0) -> list[_Active]:
        skipped: set[str] = set()
        for plugin in self._pre_filters:
            status = plugin.pre_filter(state, pod)
            if status.is_skip:
                skipped.add(plugin.name)
            elif status.code is Code.ERROR:
                raise SchedulingError(f"{plugin.name} pre-filter: {status.message}")
            elif not status.is_success:
                raise FitError(Diagnosis(total, pre_filter=(plugin.name, status)))
        return [active for active in self._active if active.name not in skipped]

    def _find_feasible(
        self,
        state: CycleState,
        pod: PodInfo,
        nodes: Sequence[NodeInfo],
        active: list[_Active],
    ) -> tuple[list[NodeInfo], dict[str, tuple[str, Status]], int]:
        """Filter nodes a chunk at a time from the rotating start, until enough pass.

        Each chunk goes through every filter's ``select`` as a whole; a
        node's reason is asked of ``filter`` only when it was rejected.
        """
        total = len(nodes)
        wanted = num_feasible_nodes_to_find(total, self.percentage)
        start = self._next_start % total
        feasible: list[NodeInfo] = []
        statuses: dict[str, tuple[str, Status]] = {}
        taken = 0
        while taken < total and len(feasible) < wanted:
            size = min(max(wanted - len(feasible), MIN_CHUNK), total - taken)
            survivors = _take(nodes, (start + taken) % total, size)
            taken += size
            for filt in active:
                passed = filt.select(state, pod, survivors)
                if len(passed) != len(survivors):
                    _record_rejections(state, pod, filt, survivors, passed, statuses)
                survivors = passed
                if not survivors:
                    break
            feasible.extend(survivors)
        self._next_start = (start + taken) % total
        return feasible[:wanted], statuses, taken

    def _score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        totals: list[int] | None = None
        for scorer in self._scorers:
            plugin = scorer.plugin
            if scorer.pre_score is not None:
                status = scorer.pre_score.pre_score(state, pod, nodes)
                if status.is_skip:
                    continue
                if not status.is_success:
                    raise SchedulingError(f"{plugin.name} pre-score: {status.message}")
            scores = plugin.score(state, pod, nodes)
            if scorer.check and (
                len(scores) != len(nodes) or min(scores) < 0 or max(scores) > MAX_NODE_SCORE
            ):
                raise SchedulingError(
                    f"{plugin.name} returned scores outside 0..{MAX_NODE_SCORE} or not one per node"
                )
            weighted = (
                scores
                if scorer.weight == 1
                else list(map(operator.mul, scores, itertools.repeat(scorer.weight)))
            )
            totals = weighted if totals is None else list(map(operator.add, totals, weighted))
        return totals if totals is not None else [0] * len(nodes)


def _load(node: NodeInfo) -> float:
    """How full a node is: its pods' (non-zero) CPU and memory requests over allocatable."""
    cpu = node.nonzero_cpu / node.allocatable_cpu if node.allocatable_cpu > 0 else 1.0
    memory = node.nonzero_memory / node.allocatable_memory if node.allocatable_memory > 0 else 1.0
    return cpu + memory


def _least_loaded(nodes: Sequence[NodeInfo], ties: list[int]) -> list[int]:
    """Among nodes with equal scores, the least loaded ones.

    Scores are whole numbers: on large nodes a pod's share of the resources
    rounds away, and nodes holding different numbers of pods tie. Kubernetes
    picks among them at random, which can stack a stack's pods on two of
    three empty nodes; preferring the emptier one keeps spreading them.
    """
    loads = [_load(nodes[i]) for i in ties]
    lowest = min(loads)
    return [i for i, load in zip(ties, loads, strict=True) if load == lowest]
