"""metrics.k8s.io and the console's usage series, fed by a real node agent (hollow runtime).

The hollow runtime reports synthetic usage that follows each container's
CPU request (and a quarter of its memory limit), so the figures are known in
advance and the shapes can be checked with the official Python client and
the real ``kubectl top``.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from corral.api.quantity import parse_quantity
from corralctl.processes import ManagedProcess, free_port
from tests.conftest import LocalCluster, require_kubectl, unique_name

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
Obj = dict[str, Any]


@dataclass
class TopEnv:
    node: str
    namespace: str
    custom: k8s.CustomObjectsApi
    core: k8s.CoreV1Api


def _pod(name: str, node: str, labels: dict[str, str], cpu: str, memory: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1",
                    "resources": {"requests": {"cpu": cpu}, "limits": {"memory": memory}},
                }
            ],
        },
    }


def _eventually(check: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except ApiException as error:
            last = error
        time.sleep(0.5)
    raise AssertionError(f"{message}: last {last!r}")


@pytest.fixture(scope="module")
def top_env(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TopEnv]:
    api_client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core, custom = k8s.CoreV1Api(api_client), k8s.CustomObjectsApi(api_client)
    namespace, node = unique_name("top"), unique_name("top-node")
    core.create_namespace({"metadata": {"name": namespace}})
    tmp = tmp_path_factory.mktemp("top")
    agent = ManagedProcess(
        node,
        [
            sys.executable, "-m", "nodeagent", *cluster.agent_args(node),
            "--runtime", "hollow",
            "--data-dir", str(tmp / "agent"),
            "--listen-port", str(free_port()),
            "--usage-interval", "1",
        ],
        tmp / "agent.log",
    )  # fmt: skip
    agent.start()
    try:
        core.create_namespaced_pod(namespace, _pod("burn", node, {"app": "burn"}, "250m", "64Mi"))
        core.create_namespaced_pod(namespace, _pod("idle", node, {"app": "idle"}, "20m", "32Mi"))

        def running() -> bool:
            pods = core.list_namespaced_pod(namespace).items
            return len(pods) == 2 and all(p.status.phase == "Running" for p in pods)

        _eventually(running, 60, "both pods Running on the hollow agent")
        yield TopEnv(node, namespace, custom, core)
    finally:
        agent.stop()
        core.delete_namespace(namespace)
        try:
            core.delete_node(node)
        except ApiException:
            pass


def _cpu(text: str) -> float:
    return float(parse_quantity(text))


def test_node_metrics_shape_with_the_python_client(top_env: TopEnv) -> None:
    def node_metrics() -> Obj:
        got: Obj = top_env.custom.get_cluster_custom_object(GROUP, VERSION, "nodes", top_env.node)
        return got

    metrics = _eventually(node_metrics, 30, "NodeMetrics for the hollow node")
    assert metrics["kind"] == "NodeMetrics"
    assert metrics["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert metrics["metadata"]["name"] == top_env.node
    assert metrics["timestamp"].endswith("Z")
    assert metrics["window"].endswith("s")
    assert metrics["usage"]["cpu"].endswith("n")
    assert metrics["usage"]["memory"].endswith("Ki")
    # 250m + 20m for the pods, 50m for the node itself (the hollow runtime's figures).
    assert 0.25 <= _cpu(metrics["usage"]["cpu"]) <= 0.40
    listed = top_env.custom.list_cluster_custom_object(GROUP, VERSION, "nodes")
    assert listed["kind"] == "NodeMetricsList"
    assert top_env.node in [item["metadata"]["name"] for item in listed["items"]]


def test_pod_metrics_shape_and_selectors_with_the_python_client(top_env: TopEnv) -> None:
    def burning() -> Obj:
        found: Obj = top_env.custom.list_namespaced_custom_object(
            GROUP, VERSION, top_env.namespace, "pods", label_selector="app=burn"
        )
        return found if found["items"] else {}

    listed = _eventually(burning, 30, "PodMetrics for the burning pod")
    assert listed["kind"] == "PodMetricsList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["burn"]
    pod = top_env.custom.get_namespaced_custom_object(
        GROUP, VERSION, top_env.namespace, "pods", "burn"
    )
    assert pod["kind"] == "PodMetrics"
    assert pod["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert pod["metadata"]["namespace"] == top_env.namespace
    assert pod["metadata"]["labels"] == {"app": "burn"}
    (container,) = pod["containers"]
    assert container["name"] == "main"
    assert container["usage"]["cpu"].endswith("n")
    assert 0.2 <= _cpu(container["usage"]["cpu"]) <= 0.3
    assert container["usage"]["memory"] == "16384Ki"  # a quarter of the 64Mi limit

    everything = top_env.custom.list_namespaced_custom_object(
        GROUP, VERSION, top_env.namespace, "pods"
    )
    assert sorted(i["metadata"]["name"] for i in everything["items"]) == ["burn", "idle"]
    with pytest.raises(ApiException) as missing:
        top_env.custom.get_namespaced_custom_object(
            GROUP, VERSION, top_env.namespace, "pods", "absent"
        )
    assert missing.value.status == 404
    body = json.loads(missing.value.body)
    assert body["reason"] == "NotFound"
    assert body["message"] == f'podmetrics.metrics.k8s.io "{top_env.namespace}/absent" not found'


def test_metrics_cannot_be_watched_or_written(top_env: TopEnv) -> None:
    with pytest.raises(ApiException) as watched:
        top_env.custom.list_namespaced_custom_object(
            GROUP, VERSION, top_env.namespace, "pods", watch=True, _preload_content=False
        )
    assert watched.value.status == 405
    with pytest.raises(ApiException) as written:
        top_env.custom.create_namespaced_custom_object(
            GROUP, VERSION, top_env.namespace, "pods", {"metadata": {"name": "x"}}
        )
    assert written.value.status == 405


def _kubectl(cluster: LocalCluster, tmp: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(tmp)}
    done = subprocess.run(
        [require_kubectl(), *args], env=env, capture_output=True, text=True, timeout=60
    )
    if not check and done.returncode != 0:
        return ""  # "metrics not available yet": asked again
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kubectl_top_pods_and_nodes(top_env: TopEnv, cluster: LocalCluster, tmp_path: Path) -> None:
    def top_pods() -> str:
        out = _kubectl(cluster, tmp_path, "top", "pods", "-n", top_env.namespace, check=False)
        return out if "burn" in out and "idle" in out else ""

    out = _eventually(top_pods, 30, "kubectl top pods shows both pods")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert 200 <= int(rows["burn"][1].removesuffix("m")) <= 300
    assert rows["burn"][2] == "16Mi"
    selected = _kubectl(cluster, tmp_path, "top", "pods", "-n", top_env.namespace, "-l", "app=idle")
    assert [line.split()[0] for line in selected.splitlines()[1:]] == ["idle"]
    containers = _kubectl(
        cluster, tmp_path, "top", "pod", "burn", "-n", top_env.namespace, "--containers"
    )
    assert "main" in containers
    nodes = _kubectl(cluster, tmp_path, "top", "nodes")
    assert top_env.node in nodes
    # Discovery lists the group, so kubectl can get the objects by their resource name.
    got = _kubectl(cluster, tmp_path, "get", "pods.metrics.k8s.io", "-n", top_env.namespace)
    assert "burn" in got and "idle" in got
    resources = _kubectl(cluster, tmp_path, "api-resources", "--api-group", "metrics.k8s.io")
    assert {line.split()[0] for line in resources.splitlines()[1:]} == {"nodes", "pods"}


def _usage_series(cluster: LocalCluster, path: str) -> Obj:
    request = urllib.request.Request(f"{cluster.url}{path}", headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, context=cluster.ssl_context(), timeout=10) as response:
        body: Obj = json.loads(response.read())
        return body


def test_console_series_grow_between_samples(top_env: TopEnv, cluster: LocalCluster) -> None:
    path = f"/usage/pods?namespace={top_env.namespace}"

    def burn_points() -> list[list[float]]:
        pods = {p["name"]: p for p in _usage_series(cluster, path)["pods"]}
        return pods["burn"]["points"] if "burn" in pods else []

    first = _eventually(burn_points, 30, "a series for the burning pod")
    second = _eventually(lambda: len(burn_points()) > len(first), 10, "a newer sample")
    assert second
    newest = burn_points()[-1]
    assert newest[0] > first[-1][0]
    assert 0.2 <= newest[1] <= 0.3  # cores
    nodes = {n["name"]: n for n in _usage_series(cluster, "/usage/nodes")["nodes"]}
    assert nodes[top_env.node]["points"]
    anonymous = urllib.request.Request(f"{cluster.url}/usage/nodes")
    no_certificate = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, context=no_certificate, timeout=10)
    refused.value.close()
    assert refused.value.code == 401


def _corral(cluster: LocalCluster, *args: str, check: bool = True) -> str:
    corral = str(Path(sys.executable).parent / "corral")
    done = subprocess.run(
        [corral, *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if not check and done.returncode != 0:
        return ""
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_corral_top_pods_and_nodes(top_env: TopEnv, cluster: LocalCluster) -> None:
    def top_pods() -> str:
        out = _corral(
            cluster, "top", "pods", "-n", top_env.namespace, "--sort-by", "cpu", check=False
        )
        return out if "burn" in out and "idle" in out else ""

    out = _eventually(top_pods, 30, "corral top pods shows both pods")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert [line[0] for line in lines[1:]] == ["burn", "idle"]  # highest CPU first
    assert 200 <= int(lines[1][1].removesuffix("m")) <= 300
    assert lines[1][2] == "16Mi"
    per_container = _corral(
        cluster, "top", "pod", "burn", "-n", top_env.namespace, "--containers"
    ).splitlines()
    assert per_container[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert per_container[1].split()[:2] == ["burn", "main"]
    nodes = [line.split() for line in _corral(cluster, "top", "nodes").splitlines()]
    assert nodes[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert top_env.node in [line[0] for line in nodes[1:]]


def _as_token(cluster: LocalCluster, token: str) -> k8s.CustomObjectsApi:
    configuration = k8s.Configuration()
    configuration.host = cluster.url
    configuration.ssl_ca_cert = str(cluster.pki.ca_cert)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return k8s.CustomObjectsApi(k8s.ApiClient(configuration))


def _series_status(cluster: LocalCluster, path: str, token: str) -> int:
    context = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    request = urllib.request.Request(
        f"{cluster.url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


def test_view_in_a_namespace_reads_its_pods_usage_and_not_the_nodes(
    top_env: TopEnv, cluster: LocalCluster
) -> None:
    namespace = top_env.namespace
    top_env.core.create_namespaced_service_account(namespace, {"metadata": {"name": "viewer"}})
    rbac = k8s.RbacAuthorizationV1Api(top_env.core.api_client)
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "viewer-view"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
        },
    )
    token = top_env.core.create_namespaced_service_account_token(
        "viewer", namespace, {"spec": {}}
    ).status.token
    viewer = _as_token(cluster, token)

    def listed() -> Obj:
        found: Obj = viewer.list_namespaced_custom_object(GROUP, VERSION, namespace, "pods")
        return found if found["items"] else {}

    assert _eventually(listed, 30, "the viewer lists its namespace's PodMetrics")
    with pytest.raises(ApiException) as refused:
        viewer.list_cluster_custom_object(GROUP, VERSION, "nodes")
    assert refused.value.status == 403
    assert _series_status(cluster, f"/usage/pods?namespace={namespace}", token) == 200
    assert _series_status(cluster, "/usage/pods", token) == 403
    assert _series_status(cluster, "/usage/nodes", token) == 403
