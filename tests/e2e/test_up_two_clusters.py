"""Two ``corral up`` clusters on one machine, each with its own names, and ``corral down`` of one.

Both run at once with the test session's dockerd, different data dirs and
ports, one simulated host each, and no ``--node-name``: each must pick its
own id, node name, simulated hosts and pod and Service ranges, record them
in its ``up.json``, and run a pod whose readiness probe resolves a Service
through the cluster DNS. Then ``corral down --purge`` of the first must
leave the second's containers, host namespace, bridge and pod as they were.
The first cluster is read with the real kubectl, the second with the
official Python client.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from corralctl import down, localcluster, localnames
from corralctl.dockerd import Dockerd
from corralctl.processes import free_port
from nodeagent.network.testbed import cleanup, namespaces
from tests.e2e.conftest import TEST_IMAGE
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SERVICE = "named"
FQDN = f"{SERVICE}.default.svc.cluster.local"


def _manifest() -> dict[str, Any]:
    # Ready only once the cluster DNS answers for a Service of its own cluster.
    probe = ["nslookup", FQDN]
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "dns"},
                "spec": {
                    "replicas": 1,
                    "selector": {"app": "dns"},
                    "template": {
                        "metadata": {"labels": {"app": "dns"}},
                        "spec": {
                            "terminationGracePeriodSeconds": 1,
                            "containers": [
                                {
                                    "name": "main",
                                    "image": TEST_IMAGE,
                                    "imagePullPolicy": "Never",
                                    "command": ["sleep", "3600"],
                                    "readinessProbe": {
                                        "exec": {"command": probe},
                                        "periodSeconds": 1,
                                    },
                                }
                            ],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE},
                "spec": {"selector": {"app": "dns"}, "ports": [{"port": 80}]},
            },
        ],
    }


def corral(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corralctl.main", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    data: Path
    log: Path
    dockerd: Dockerd

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @functools.cached_property
    def names(self) -> localnames.Identity:
        found = localnames.Identity.from_json(
            localcluster.read_state(self.data).get(localnames.STATE_KEY)
        )
        assert found is not None, f"no identity in {self.data / localcluster.STATE_FILE}"
        return found

    def containers(self) -> dict[str, str]:
        """This cluster's containers: id to name."""
        found = self.dockerd.client().containers.list(all=True, filters={"label": down.NODE_LABEL})
        nodes = set(self.names.nodes)
        return {c.id: c.name for c in found if c.labels.get(down.NODE_LABEL) in nodes}

    def kubectl(self, *argv: str) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.data / "kubeconfig")}
        done = subprocess.run(
            ["kubectl", *argv], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"kubectl {argv}: {done.stdout}{done.stderr}"
        return done.stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(180)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _free_ports(count: int) -> int:
    """A port P with P..P+count-1 free: the API, the agents' control port, one agent."""
    for _ in range(100):
        port = free_port()
        if port + count <= 65535 and not localnames.busy_ports(
            "127.0.0.1", [*range(port, port + count)]
        ):
            return port
    raise AssertionError(f"no {count} free ports in a row")


def _start(dockerd: Dockerd, tmp_path: Path, name: str, manifest: Path) -> Up:
    data = tmp_path / name
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "corralctl.main", "up",
                "--data-dir", str(data),
                "--port", str(_free_ports(3)),
                "--docker-host", dockerd.host,
                "--simulated-hosts", "1",
                "--apply", str(manifest),
                "--wait", "--wait-timeout", "300",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Up(process, data, log, dockerd)


@pytest.fixture
async def clusters(dockerd: Dockerd, test_image: str, tmp_path: Path) -> AsyncIterator[list[Up]]:
    manifest = tmp_path / "dns.json"
    manifest.write_text(json.dumps(_manifest()))
    ups: list[Up] = []
    try:
        ups.append(_start(dockerd, tmp_path, "a", manifest))
        ups.append(_start(dockerd, tmp_path, "b", manifest))
        yield ups
    finally:
        for up in ups:
            up.stop()
        for up in ups:
            # Whatever the test got to: corral down is also the cleanup.
            with contextlib.suppress(AssertionError):
                prefix = up.names.simulated_prefix
                nodes = set(up.names.nodes)
                corral("down", "--data-dir", str(up.data), "--purge")
                await cleanup(prefix=prefix)
                for container in dockerd.client().containers.list(all=True):
                    if container.labels.get(down.NODE_LABEL) in nodes:
                        with contextlib.suppress(Exception):
                            container.remove(force=True)


async def _until_up(up: Up) -> None:
    def started() -> bool:
        if up.process.poll() is not None:
            raise AssertionError(f"corral up exited ({up.process.returncode}):\n{up.output()}")
        return "corral is up" in up.output()

    try:
        await eventually(started, timeout=540, interval=1, message=f"{up.data} is up")
    except AssertionError:
        print(up.output()[-6000:])
        raise
    assert "  replicationcontroller/dns 1/1 ready" in up.output(), up.output()


def _in(address: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(cidr)


def _host_links(netns: str) -> str:
    done = subprocess.run(["ip", "-n", netns, "-o", "link"], capture_output=True, text=True)
    return done.stdout


def _python_client_pod(up: Up) -> Any:
    api = k8s_client.CoreV1Api(
        k8s_config.new_client_from_config(config_file=str(up.data / "kubeconfig"))  # type: ignore[no-untyped-call]
    )
    try:
        pods = api.list_namespaced_pod("default", label_selector="app=dns").items
        assert len(pods) == 1, pods
        return pods[0]
    finally:
        api.api_client.close()


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def test_two_clusters_run_side_by_side_and_down_removes_only_its_own(
    clusters: list[Up],
) -> None:
    a, b = clusters
    await _until_up(a)
    await _until_up(b)
    first, second = a.names, b.names
    assert first.id != second.id
    assert first.id == localnames.cluster_id(a.data)
    assert not set(first.nodes) & set(second.nodes), (first.nodes, second.nodes)
    assert first.simulated_prefix != second.simulated_prefix
    assert not ipaddress.IPv4Network(first.cluster_cidr).overlaps(
        ipaddress.IPv4Network(second.cluster_cidr)
    )
    assert first.service_cidr != second.service_cidr
    for up in clusters:
        host = f"{up.names.simulated_prefix}-0"
        assert f"agent         node {up.names.nodes[0]} on {host} " in up.output(), up.output()

    # The first through kubectl: Ready, its address from its own range, and its DNS
    # answers with a ClusterIP from its own Service range.
    pods = json.loads(a.kubectl("get", "pods", "-l", "app=dns", "-o", "json"))["items"]
    assert len(pods) == 1
    pod_a = pods[0]
    assert _in(pod_a["status"]["podIP"], first.cluster_cidr), pod_a["status"]
    service_ip = json.loads(a.kubectl("get", "svc", SERVICE, "-o", "json"))["spec"]["clusterIP"]
    assert _in(service_ip, first.service_cidr)
    answer = a.kubectl("exec", pod_a["metadata"]["name"], "--", "nslookup", FQDN)
    assert service_ip in answer, answer

    # The second through the official Python client.
    pod_b = _python_client_pod(b)
    assert _ready(pod_b) and _in(pod_b.status.pod_ip, second.cluster_cidr), pod_b.status
    assert pod_b.spec.node_name == second.nodes[0]
    containers_a, containers_b = a.containers(), b.containers()
    assert len(containers_a) >= 2 and len(containers_b) >= 2, (containers_a, containers_b)
    for up, ids in ((a, containers_a), (b, containers_b)):
        for container_id in ids:
            labels = up.dockerd.client().containers.get(container_id).labels
            assert labels[down.CLUSTER_LABEL] == up.names.id, labels
    host_b = f"{second.simulated_prefix}-0"
    assert " crl0:" in _host_links(host_b)

    done = corral("down", "--data-dir", str(a.data), "--purge")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"stopped corral up (pid {a.process.pid})" in done.stdout, done.stdout
    assert a.process.wait(30) == 0
    assert not any(n.startswith(f"{first.simulated_prefix}-") for n in namespaces())
    assert not (localnames.registry_dir() / f"{first.id}.json").exists()
    dockerd_ids = {c.id for c in a.dockerd.client().containers.list(all=True)}
    assert not dockerd_ids & set(containers_a), containers_a

    # The second is untouched: its containers, its host and bridge, its pod Ready.
    assert b.process.poll() is None, b.output()
    assert b.containers() == containers_b
    assert {f"{second.simulated_prefix}-0", f"{second.simulated_prefix}-ul"} <= namespaces()
    assert " crl0:" in _host_links(host_b)
    pod_b = _python_client_pod(b)
    assert _ready(pod_b), pod_b.status
    answer = b.kubectl("exec", pod_b.metadata.name, "--", "nslookup", FQDN)
    service_ip = json.loads(b.kubectl("get", "svc", SERVICE, "-o", "json"))["spec"]["clusterIP"]
    assert _in(service_ip, second.service_cidr) and service_ip in answer, answer
