"""corral install's units turn every component's /metrics on, with flags each component takes."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable

import pytest

from controlplane.apiserver.main import parser as apiserver_parser
from controlplane.controllers.main import parser as controller_manager_parser
from corralctl.units import METRICS_PORTS, EtcdMember, Layout, agent_unit, master_units
from nodeagent.main import parser as agent_parser
from scheduler.main import parser as scheduler_parser


def _exec_args(unit: str) -> list[str]:
    """ExecStart's arguments after the binary and its subcommand."""
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))[2:]


MASTER = master_units(
    Layout(),
    etcd_binary="/usr/bin/etcd",
    port=6443,
    etcd=EtcdMember("m1", "10.0.0.1", "10.0.0.1", 2379),
    host="10.0.0.1",
)


@pytest.mark.parametrize(
    ("unit", "parser", "component"),
    [
        ("corral-controller-manager.service", controller_manager_parser, "controller-manager"),
        ("corral-scheduler.service", scheduler_parser, "scheduler"),
    ],
)
def test_the_controllers_serve_metrics_over_tls(
    unit: str, parser: Callable[[], argparse.ArgumentParser], component: str
) -> None:
    args = parser().parse_args(_exec_args(MASTER[unit]))
    assert args.metrics_bind_address == f"10.0.0.1:{METRICS_PORTS[component]}"
    assert args.tls_cert_file == "/etc/corral/pki/apiserver.crt"
    assert args.tls_private_key_file == "/etc/corral/pki/apiserver.key"


def test_the_api_server_serves_metrics_on_its_own_port() -> None:
    args = apiserver_parser().parse_args(_exec_args(MASTER["corral-apiserver.service"]))
    assert args.metrics_port == METRICS_PORTS["apiserver"] != args.port


def test_the_agent_serves_metrics() -> None:
    unit = agent_unit(
        Layout(), server="https://m:6443", node_name="n1", docker_host="unix:///d.sock",
        pod_network="bridge",
    )  # fmt: skip
    args = agent_parser().parse_args(_exec_args(unit))
    assert args.metrics_bind_address == f"0.0.0.0:{METRICS_PORTS['agent']}"
    assert len(set(METRICS_PORTS.values())) == len(METRICS_PORTS)


def test_the_api_servers_unit_leaves_the_worker_count_to_its_cores_unless_told() -> None:
    args = apiserver_parser().parse_args(_exec_args(MASTER["corral-apiserver.service"]))
    assert args.workers is None
    told = master_units(
        Layout(),
        etcd_binary="/usr/bin/etcd",
        port=6443,
        etcd=EtcdMember("m1", "10.0.0.1", "10.0.0.1", 2379),
        host="10.0.0.1",
        apiserver_workers=3,
    )
    args = apiserver_parser().parse_args(_exec_args(told["corral-apiserver.service"]))
    assert args.workers == 3
