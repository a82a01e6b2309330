"""NodePorts: pods asking for the same host port never share a node."""

from __future__ import annotations

from scheduler.framework import Code
from scheduler.plugins.node_ports import NodePorts
from tests.unit.scheduler.builders import handle, node_info, pod, pod_info, run_filter

PLUGIN = NodePorts.new({}, handle())


def test_a_pod_without_host_ports_fits_anywhere() -> None:
    busy = node_info()
    busy.add_pod(pod_info(name="other", host_ports=[80]))
    assert run_filter(PLUGIN, pod_info(), busy).is_success


def test_the_same_host_port_conflicts() -> None:
    busy = node_info()
    busy.add_pod(pod_info(name="other", host_ports=[80]))
    status = run_filter(PLUGIN, pod_info(host_ports=[80]), busy)
    assert status.code is Code.UNSCHEDULABLE
    assert status.reasons == ("node(s) didn't have free ports for the requested pod ports",)
    assert run_filter(PLUGIN, pod_info(host_ports=[81]), busy).is_success


def test_protocols_and_host_ips_are_told_apart() -> None:
    busy = node_info()
    other = pod(name="other")
    other["spec"]["containers"][0]["ports"] = [
        {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}
    ]
    busy.add_pod(pod_info(other))

    def wants(protocol: str, host_ip: str | None) -> bool:
        mine = pod()
        port = {"containerPort": 53, "hostPort": 53, "protocol": protocol}
        if host_ip:
            port["hostIP"] = host_ip
        mine["spec"]["containers"][0]["ports"] = [port]
        return run_filter(PLUGIN, pod_info(mine), busy).is_success

    assert wants("TCP", None)  # another protocol
    assert wants("UDP", "10.0.0.2")  # another address
    assert not wants("UDP", "10.0.0.1")  # the same address
    assert not wants("UDP", None)  # 0.0.0.0 takes every address


def test_a_removed_pod_frees_its_port() -> None:
    busy = node_info()
    busy.add_pod(pod_info(name="other", host_ports=[80]))
    busy.remove_pod("default/other")
    assert run_filter(PLUGIN, pod_info(host_ports=[80]), busy).is_success


def test_host_network_container_ports_are_host_ports() -> None:
    busy = node_info()
    busy.add_pod(pod_info(name="other", host_ports=[8000]))
    mine = pod()
    mine["spec"]["hostNetwork"] = True
    mine["spec"]["containers"][0]["ports"] = [{"containerPort": 8000}]
    assert not run_filter(PLUGIN, pod_info(mine), busy).is_success
