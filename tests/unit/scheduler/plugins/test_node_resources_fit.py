"""NodeResourcesFit: requests fit in what the node has left, for every resource asked for."""

from __future__ import annotations

import pytest

from scheduler.framework import Code, ConfigError
from scheduler.plugins.node_resources_fit import NodeResourcesFit
from tests.unit.scheduler.builders import handle, node_info, pod_info, run_filter

PLUGIN = NodeResourcesFit.new({}, handle())


def test_a_pod_that_fits_passes() -> None:
    assert run_filter(PLUGIN, pod_info(cpu="1", memory="1Gi"), node_info()).is_success


def test_every_insufficient_resource_is_named() -> None:
    status = run_filter(PLUGIN, pod_info(cpu="5", memory="9Gi"), node_info())
    assert status.code is Code.UNSCHEDULABLE
    assert status.reasons == ("Insufficient cpu", "Insufficient memory")


def test_pods_already_there_count() -> None:
    full = node_info(cpu="2", memory="4Gi")
    full.add_pod(pod_info(name="a", cpu="1500m", memory="1Gi"))
    assert run_filter(PLUGIN, pod_info(cpu="500m"), full).is_success
    status = run_filter(PLUGIN, pod_info(cpu="501m"), full)
    assert status.reasons == ("Insufficient cpu",)


def test_the_pod_count_is_a_resource_too() -> None:
    small = node_info(pods="1")
    small.add_pod(pod_info(name="a"))
    status = run_filter(PLUGIN, pod_info(), small)
    assert status.reasons == ("Too many pods",)


def test_a_pod_requesting_nothing_fits_an_overcommitted_node() -> None:
    overcommitted = node_info(cpu="1")
    overcommitted.add_pod(pod_info(name="a", cpu="2"))
    assert run_filter(PLUGIN, pod_info(), overcommitted).is_success
    assert not run_filter(PLUGIN, pod_info(cpu="1m"), overcommitted).is_success


def test_limits_stand_in_for_missing_requests() -> None:
    obj = pod_info().obj
    obj["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "8"}}
    assert run_filter(PLUGIN, pod_info(obj), node_info()).reasons == ("Insufficient cpu",)


def test_init_containers_count_at_their_largest() -> None:
    obj = pod_info(cpu="1").obj
    obj["spec"]["initContainers"] = [
        {"name": "init", "image": "busybox:1", "resources": {"requests": {"cpu": "3"}}}
    ]
    info = pod_info(obj)
    assert info.cpu == 3000
    assert run_filter(PLUGIN, info, node_info(cpu="3")).is_success
    assert not run_filter(PLUGIN, info, node_info(cpu="2")).is_success


def test_extended_resources_must_be_offered() -> None:
    gpu_pod = pod_info(extra={"example.com/gpu": "1"})
    assert run_filter(PLUGIN, gpu_pod, node_info()).reasons == ("Insufficient example.com/gpu",)
    assert run_filter(PLUGIN, gpu_pod, node_info(extra={"example.com/gpu": "2"})).is_success


def test_ignored_resources_are_not_checked() -> None:
    plugin = NodeResourcesFit.new({"ignoredResources": ["example.com/gpu"]}, handle())
    assert run_filter(plugin, pod_info(extra={"example.com/gpu": "1"}), node_info()).is_success


@pytest.mark.parametrize(
    "args",
    [{"ignoredResources": "gpu"}, {"ignoredResources": ["cpu"]}, {"unknown": 1}],
)
def test_bad_arguments_are_refused(args: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="NodeResourcesFit"):
        NodeResourcesFit.new(args, handle())
