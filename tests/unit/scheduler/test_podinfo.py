"""Pods parsed once: requests in integers, ports, tolerations."""

from __future__ import annotations

import pytest

from scheduler.podinfo import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    PodInfo,
    PodParseError,
    Taint,
    Toleration,
)
from tests.unit.scheduler.builders import pod


def test_requests_are_summed_in_scheduler_units() -> None:
    obj = pod(cpu="250m", memory="1Gi")
    obj["spec"]["containers"].append(
        {"name": "d", "image": "x", "resources": {"requests": {"cpu": "0.5", "memory": "512Mi"}}}
    )
    info = PodInfo.from_obj(obj)
    assert (info.cpu, info.memory) == (750, 1536 * 1024 * 1024)
    assert (info.nonzero_cpu, info.nonzero_memory) == (info.cpu, info.memory)


def test_a_container_without_requests_counts_defaults_for_scoring_only() -> None:
    info = PodInfo.from_obj(pod())
    assert (info.cpu, info.memory) == (0, 0)
    assert (info.nonzero_cpu, info.nonzero_memory) == (
        DEFAULT_MILLI_CPU_REQUEST,
        DEFAULT_MEMORY_REQUEST,
    )


def test_identity_and_defaults() -> None:
    info = PodInfo.from_obj(pod("web", namespace="prod", priority=7))
    assert (info.key, info.uid, info.priority) == ("prod/web", "uid-web", 7)
    assert info.scheduler_name == "default-scheduler"
    assert not info.terminating


def test_a_bad_quantity_is_a_parse_error() -> None:
    with pytest.raises(PodParseError, match="bad resource request"):
        PodInfo.from_obj(pod(cpu="lots"))


def test_toleration_semantics() -> None:
    taint = Taint("k", "v", "NoSchedule")
    assert Toleration("k", "Equal", "v").tolerates(taint)
    assert not Toleration("k", "Equal", "w").tolerates(taint)
    assert Toleration("", "Exists").tolerates(taint)
    assert not Toleration("k", "Exists", effect="NoExecute").tolerates(taint)
    assert not Toleration("k", "Unknown", "v").tolerates(taint)
