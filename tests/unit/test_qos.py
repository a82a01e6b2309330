"""A pod's QoS class: the one rule the server stores and describe prints.

The cases follow Kubernetes' pkg/apis/core/v1/helper/qos: only cpu and
memory count, zero quantities are unset, and Guaranteed needs every
container (init containers too) to limit both with requests equal to limits.
"""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.registry.strategy import strategy_for
from corral.api.resources import REGISTRY
from corral.objects import Obj
from corral.qos import qos_class
from corralctl import describe


def container(requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> Obj:
    resources: Obj = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "busybox", "resources": resources}


FULL = {"cpu": "500m", "memory": "128Mi"}

CASES = [
    pytest.param({"containers": [container()]}, "BestEffort", id="nothing set"),
    pytest.param(
        {"containers": [container(requests={"ephemeral-storage": "1Gi"})]},
        "BestEffort",
        id="only ephemeral-storage",
    ),
    pytest.param({"containers": [container(requests={"cpu": "0"})]}, "BestEffort", id="cpu 0"),
    pytest.param(
        {"containers": [container(requests={"cpu": "0", "memory": "0"}, limits={"cpu": "0"})]},
        "BestEffort",
        id="all zero",
    ),
    pytest.param(
        {"containers": [container(limits={"nvidia.com/gpu": "1"})]},
        "BestEffort",
        id="only an extended resource",
    ),
    pytest.param({"containers": [container(requests={"cpu": "100m"})]}, "Burstable", id="cpu"),
    pytest.param({"containers": [container(requests=FULL, limits=FULL)]}, "Guaranteed", id="equal"),
    pytest.param(
        {"containers": [container(limits=FULL)]},
        "Guaranteed",
        id="requests default to limits",
    ),
    pytest.param(
        {"containers": [container(requests={"cpu": "1", "memory": "128Mi"}, limits=FULL)]},
        "Burstable",
        id="request differs from limit",
    ),
    pytest.param(
        {"containers": [container(requests={**FULL, "cpu": "0"}, limits=FULL)]},
        "Burstable",
        id="a zero request next to a limit",
    ),
    pytest.param(
        {
            "containers": [
                container(
                    requests={**FULL, "ephemeral-storage": "1Gi"},
                    limits={**FULL, "ephemeral-storage": "2Gi"},
                )
            ]
        },
        "Guaranteed",
        id="ephemeral-storage does not count against Guaranteed",
    ),
    pytest.param(
        {"containers": [container(requests=FULL, limits=FULL)], "initContainers": [container()]},
        "Burstable",
        id="an init container without limits",
    ),
    pytest.param(
        {
            "containers": [container(requests=FULL, limits=FULL)],
            "initContainers": [container(requests={"cpu": "500m"}, limits={"cpu": "500m"})],
        },
        "Burstable",
        id="an init container limiting cpu only",
    ),
    pytest.param(
        {
            "containers": [
                container(requests=FULL, limits=FULL),
                container(
                    requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": 1, "memory": "1Gi"}
                ),
            ]
        },
        "Guaranteed",
        id="two guaranteed containers",
    ),
]


@pytest.mark.parametrize(("pod_spec", "expected"), CASES)
def test_qos_class(pod_spec: Obj, expected: str) -> None:
    assert qos_class(pod_spec) == expected


@pytest.mark.parametrize(("pod_spec", "expected"), CASES)
def test_the_server_stores_the_same_class(pod_spec: Obj, expected: str) -> None:
    strategy = strategy_for(REGISTRY.require("v1", "Pod"))
    pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec}
    assert strategy.initial_status(pod) == {"phase": "Pending", "qosClass": expected}


@pytest.mark.parametrize(("pod_spec", "expected"), CASES)
def test_describe_computes_the_same_class_for_a_pod_without_one(
    pod_spec: Obj, expected: str
) -> None:
    pod: Obj = {"metadata": {"name": "p"}, "spec": pod_spec, "status": {"phase": "Pending"}}
    assert describe.pod_qos_class(pod) == expected


def test_describe_prints_the_stored_class() -> None:
    pod: Obj = {"spec": {"containers": [container()]}, "status": {"qosClass": "Burstable"}}
    assert describe.pod_qos_class(pod) == "Burstable"
