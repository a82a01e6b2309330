"""Checking a plugin's arguments from the config file, with errors that name the plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.framework import ConfigError


def no_args(plugin: str, args: Mapping[str, Any]) -> None:
    if args:
        raise ConfigError(f"plugin {plugin} takes no arguments, got {sorted(args)}")


def only_keys(plugin: str, args: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ConfigError(
            f"plugin {plugin}: unknown argument(s) {unknown}; known: {sorted(allowed)}"
        )


def resource_weights(
    plugin: str, args: Mapping[str, Any], default: tuple[tuple[str, int], ...]
) -> tuple[tuple[str, int], ...]:
    """``resources: [{name: cpu, weight: 1}, ...]``, as NodeResourcesFitArgs spells it."""
    only_keys(plugin, args, {"resources"})
    raw = args.get("resources")
    if raw is None:
        return default
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"plugin {plugin}: resources must be a non-empty list")
    found: list[tuple[str, int]] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"plugin {plugin}: resources[{i}] needs a name")
        weight = entry.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
            raise ConfigError(
                f"plugin {plugin}: resources[{i}].weight must be an integer from 1 to 100"
            )
        if set(entry) - {"name", "weight"}:
            raise ConfigError(f"plugin {plugin}: resources[{i}] has unknown fields")
        found.append((entry["name"], weight))
    return tuple(found)
