"""The scheduler's configuration: which plugins run, their weights and arguments, the knobs.

A config file (YAML or JSON) changes the defaults the way Kubernetes'
KubeSchedulerConfiguration profiles do::

    schedulerName: default-scheduler
    percentageOfNodesToScore: 0          # 0: adaptive, as Kubernetes
    podInitialBackoffSeconds: 1
    podMaxBackoffSeconds: 10
    podMaxUnschedulableSeconds: 300
    bindConcurrency: 64
    plugins:
      filter:
        disabled: [NodePorts]            # or ["*"] to start from nothing
      score:
        enabled:
          - {name: PodTopologySpread, weight: 5}  # a default: its weight changes in place
          - {name: SelectorSpread, weight: 1}     # not one (as in Kubernetes 1.32): added last
    pluginConfig:
      - name: SelectorSpread
        args: {zoneWeight: 0.5}

Unknown keys are errors, so a typo never silently leaves a default in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scheduler.framework import ConfigError

DEFAULT_SCHEDULER_NAME = "default-scheduler"

# Cheapest and most often decisive first: a node rejected early costs one call.
DEFAULT_FILTERS: tuple[str, ...] = (
    "NodeUnschedulable",
    "NodeReady",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "VolumeBinding",
    # Last: they look at other pods, the dearest checks.
    "PodTopologySpread",
    "InterPodAffinity",
)
DEFAULT_SCORES: tuple[tuple[str, int], ...] = (
    ("NodeResourcesLeastAllocated", 1),
    ("NodeResourcesBalancedAllocation", 1),
    ("NodeAffinity", 2),
    ("TaintToleration", 3),
    # Kubernetes 1.32's defaults: PodTopologySpread (with the system default
    # constraints for pods that have none) has replaced SelectorSpread.
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
)
MAX_WEIGHT = 100


@dataclass(frozen=True)
class SchedulerConfig:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    # 0 means adaptive (Kubernetes' 50 % minus 1 % per 125 nodes, at least 5 %).
    percentage_of_nodes_to_score: int = 0
    filters: tuple[str, ...] = DEFAULT_FILTERS
    scores: tuple[tuple[str, int], ...] = DEFAULT_SCORES
    plugin_args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0
    # An unschedulable pod that no event has moved is retried after this long anyway.
    pod_max_unschedulable_seconds: float = 300.0
    # Binds in flight at once; the scheduling loop waits for a free slot.
    bind_concurrency: int = 64
    bind_timeout_seconds: float = 30.0
    # A "Scheduled" Event per bind doubles the writes each pod costs the API
    # server; failures are always recorded.
    record_scheduled_events: bool = False


_SCALARS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "schedulerName": ("scheduler_name", str),
    "percentageOfNodesToScore": ("percentage_of_nodes_to_score", int),
    "podInitialBackoffSeconds": ("pod_initial_backoff_seconds", (int, float)),
    "podMaxBackoffSeconds": ("pod_max_backoff_seconds", (int, float)),
    "podMaxUnschedulableSeconds": ("pod_max_unschedulable_seconds", (int, float)),
    "bindConcurrency": ("bind_concurrency", int),
    "bindTimeoutSeconds": ("bind_timeout_seconds", (int, float)),
    "recordScheduledEvents": ("record_scheduled_events", bool),
}


def load_config(path: str | Path | None) -> SchedulerConfig:
    """The defaults, changed by the file at ``path`` if one is given."""
    if path is None:
        return SchedulerConfig()
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read the scheduler config {path}: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML or JSON: {error}") from None
    if document is None:
        return SchedulerConfig()
    try:
        return config_from_dict(document)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def config_from_dict(document: Any) -> SchedulerConfig:
    if not isinstance(document, Mapping):
        raise ConfigError("the scheduler config must be a mapping")
    known = {*_SCALARS, "plugins", "pluginConfig"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for key, (attribute, kind) in _SCALARS.items():
        if key not in document:
            continue
        value = document[key]
        # bool is an int to Python, never to a config file.
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise ConfigError(f"{key} must be {_kind_name(kind)}, not {value!r}")
        values[attribute] = value
    plugins = document.get("plugins") or {}
    if not isinstance(plugins, Mapping) or set(plugins) - {"filter", "score"}:
        raise ConfigError("plugins may only have 'filter' and 'score'")
    values["filters"] = tuple(
        name for name, _ in _merge("filter", [(n, 0) for n in DEFAULT_FILTERS], plugins)
    )
    values["scores"] = tuple(_merge("score", list(DEFAULT_SCORES), plugins))
    values["plugin_args"] = _plugin_args(document.get("pluginConfig") or [])
    config = SchedulerConfig(**values)
    _check(config)
    return config


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if isinstance(kind, tuple):
        return "a number"
    return names.get(kind, kind.__name__)


def _merge(
    point: str, defaults: list[tuple[str, int]], plugins: Mapping[str, Any]
) -> list[tuple[str, int]]:
    """Kubernetes' rule: defaults minus disabled ("*" for all), then enabled."""
    section = plugins.get(point) or {}
    if not isinstance(section, Mapping) or set(section) - {"enabled", "disabled"}:
        raise ConfigError(f"plugins.{point} may only have 'enabled' and 'disabled'")
    disabled = {_entry(point, "disabled", e)[0] for e in section.get("disabled") or []}
    result = [] if "*" in disabled else [(n, w) for n, w in defaults if n not in disabled]
    for raw in section.get("enabled") or []:
        name, weight = _entry(point, "enabled", raw)
        if point == "score" and weight == 0:
            weight = dict(defaults).get(name, 1)
        positions = [i for i, (n, _) in enumerate(result) if n == name]
        if positions:
            result[positions[0]] = (name, weight)
        else:
            result.append((name, weight))
    return result


def _entry(point: str, which: str, raw: Any) -> tuple[str, int]:
    where = f"plugins.{point}.{which}"
    if isinstance(raw, str):
        return raw, 0
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{where}: each entry is a name or {{name: ..., weight: ...}}")
    if set(raw) - {"name", "weight"}:
        raise ConfigError(f"{where}: unknown field(s) in {dict(raw)}")
    weight = raw.get("weight", 0)
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise ConfigError(f"{where}: the weight of {raw['name']} must be an integer")
    if point == "filter" and "weight" in raw:
        raise ConfigError(f"{where}: filters have no weight ({raw['name']})")
    if point == "score" and "weight" in raw and not 1 <= weight <= MAX_WEIGHT:
        raise ConfigError(
            f"{where}: the weight of {raw['name']} must be from 1 to {MAX_WEIGHT}; "
            "disable a plugin rather than weigh it 0"
        )
    return raw["name"], weight


def _plugin_args(raw: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(raw, list):
        raise ConfigError("pluginConfig must be a list of {name: ..., args: {...}}")
    found: dict[str, Mapping[str, Any]] = {}
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"pluginConfig[{i}] needs a name")
        if set(entry) - {"name", "args"}:
            raise ConfigError(f"pluginConfig[{i}] may only have name and args")
        args = entry.get("args")
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise ConfigError(f"pluginConfig[{i}].args must be a mapping")
        if entry["name"] in found:
            raise ConfigError(f"pluginConfig names {entry['name']} twice")
        found[entry["name"]] = dict(args)
    return found


def _check(config: SchedulerConfig) -> None:
    if not config.scheduler_name:
        raise ConfigError("schedulerName must not be empty")
    if not 0 <= config.percentage_of_nodes_to_score <= 100:
        raise ConfigError("percentageOfNodesToScore must be from 0 (adaptive) to 100")
    if config.pod_initial_backoff_seconds <= 0:
        raise ConfigError("podInitialBackoffSeconds must be positive")
    if config.pod_max_backoff_seconds < config.pod_initial_backoff_seconds:
        raise ConfigError("podMaxBackoffSeconds must be at least podInitialBackoffSeconds")
    if config.pod_max_unschedulable_seconds <= 0:
        raise ConfigError("podMaxUnschedulableSeconds must be positive")
    if not 1 <= config.bind_concurrency <= 1024:
        raise ConfigError("bindConcurrency must be from 1 to 1024")
    if config.bind_timeout_seconds <= 0:
        raise ConfigError("bindTimeoutSeconds must be positive")
    for point, names in (("filter", config.filters), ("score", [n for n, _ in config.scores])):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ConfigError(f"plugins.{point}: {name} is enabled twice")
            seen.add(name)
    enabled = set(config.filters) | {n for n, _ in config.scores}
    stray = sorted(set(config.plugin_args) - enabled)
    if stray:
        raise ConfigError(f"pluginConfig names plugin(s) that are not enabled: {stray}")
