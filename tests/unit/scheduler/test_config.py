"""The config file: defaults, Kubernetes-style enable/disable, and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler.config import (
    DEFAULT_FILTERS,
    DEFAULT_SCORES,
    SchedulerConfig,
    config_from_dict,
    load_config,
)
from scheduler.framework import ConfigError


def test_no_file_means_the_defaults() -> None:
    assert load_config(None) == SchedulerConfig()
    assert SchedulerConfig().filters == DEFAULT_FILTERS


def test_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(
        "schedulerName: fast\npercentageOfNodesToScore: 30\n"
        "plugins:\n  score:\n    enabled:\n      - {name: PodTopologySpread, weight: 7}\n"
        "      - {name: SelectorSpread, weight: 1}\n"
        "pluginConfig:\n  - name: SelectorSpread\n    args: {zoneWeight: 0.5}\n"
    )
    config = load_config(yaml_file)
    assert config.scheduler_name == "fast"
    assert config.percentage_of_nodes_to_score == 30
    assert dict(config.scores)["PodTopologySpread"] == 7
    # Re-enabling a default keeps its place; another plugin goes last.
    assert [n for n, _ in config.scores] == [n for n, _ in DEFAULT_SCORES] + ["SelectorSpread"]
    assert config.plugin_args == {"SelectorSpread": {"zoneWeight": 0.5}}
    json_file = tmp_path / "c.json"
    json_file.write_text('{"bindConcurrency": 8, "recordScheduledEvents": true}')
    config = load_config(json_file)
    assert (config.bind_concurrency, config.record_scheduled_events) == (8, True)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == SchedulerConfig()


def test_disable_some_or_all() -> None:
    config = config_from_dict({"plugins": {"filter": {"disabled": ["NodePorts", "NodeName"]}}})
    assert "NodePorts" not in config.filters and "NodeName" not in config.filters
    config = config_from_dict(
        {"plugins": {"score": {"disabled": ["*"], "enabled": ["NodeResourcesLeastAllocated"]}}}
    )
    assert config.scores == (("NodeResourcesLeastAllocated", 1),)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a mapping"),
        ({"schedulername": "x"}, "unknown field"),
        ({"percentageOfNodesToScore": "50"}, "must be an integer"),
        ({"percentageOfNodesToScore": True}, "must be an integer"),
        ({"percentageOfNodesToScore": 101}, "from 0"),
        ({"recordScheduledEvents": 1}, "true or false"),
        ({"podMaxBackoffSeconds": 0.5}, "at least podInitialBackoffSeconds"),
        ({"bindConcurrency": 0}, "bindConcurrency"),
        ({"schedulerName": ""}, "must not be empty"),
        ({"plugins": {"bind": {}}}, "only have 'filter' and 'score'"),
        ({"plugins": {"score": {"on": []}}}, "only have 'enabled' and 'disabled'"),
        ({"plugins": {"score": {"enabled": [{"name": "X", "weight": 0}]}}}, "from 1 to 100"),
        ({"plugins": {"filter": {"enabled": [{"name": "X", "weight": 2}]}}}, "no weight"),
        ({"plugins": {"filter": {"enabled": [7]}}}, "a name or"),
        ({"pluginConfig": [{"name": "NodePorts", "args": []}]}, "must be a mapping"),
        ({"pluginConfig": [{"name": "Nope", "args": {}}]}, "not enabled"),
        (
            {"pluginConfig": [{"name": "NodePorts"}, {"name": "NodePorts"}]},
            "twice",
        ),
    ],
)
def test_mistakes_are_named(document: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(document)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("plugins: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("bindConcurrency: many")
    with pytest.raises(ConfigError, match=r"wrong\.yaml: bindConcurrency"):
        load_config(wrong)
