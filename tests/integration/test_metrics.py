"""Every component's /metrics, scraped from real processes and parsed as Prometheus would.

One cluster of its own: the API server with --metrics-port, a controller
manager and a scheduler serving theirs over TLS (the API server's
certificate, which names 127.0.0.1), and a node agent on the hollow runtime,
which serves over TLS with the node's serving certificate. Every scrape goes
through prometheus_client's text-format parser. The API server's /metrics
is read with the official Python client and with the real kubectl (whose
``get --raw`` speaks to any URL with the kubeconfig's credentials).
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

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client.parser import text_string_to_metric_families

from corralctl.processes import ManagedProcess, free_port, http_ok, wait_until
from tests.conftest import LocalCluster, require_kubectl, start_cluster, unique_name

Samples = dict[str, list[tuple[dict[str, str], float]]]

APISERVER_METRICS = (
    "apiserver_request_total",
    "apiserver_request_duration_seconds_bucket",
    "apiserver_current_inflight_requests",
    "apiserver_longrunning_requests",
    "apiserver_registered_watchers",
    "apiserver_storage_objects",
    "etcd_request_duration_seconds_bucket",
    "process_resident_memory_bytes",
)
CONTROLLER_METRICS = (
    "workqueue_depth",
    "workqueue_adds_total",
    "workqueue_retries_total",
    "workqueue_queue_duration_seconds_bucket",
    "workqueue_work_duration_seconds_bucket",
    "process_resident_memory_bytes",
)
SCHEDULER_METRICS = (
    "scheduler_schedule_attempts_total",
    "scheduler_scheduling_attempt_duration_seconds_bucket",
    "scheduler_pending_pods",
    "process_resident_memory_bytes",
)
AGENT_METRICS = (
    "kubelet_pod_start_duration_seconds_bucket",
    "kubelet_runtime_operations_duration_seconds_bucket",
    "kubelet_runtime_operations_total",
    "process_resident_memory_bytes",
)


def parse(text: str) -> Samples:
    """Samples by name: each one's labels and value."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, metric: str, **labels: str) -> float:
    """The sum of ``metric``'s samples whose labels include ``labels``."""
    return sum(
        v for have, v in samples.get(metric, []) if all(have.get(k) == w for k, w in labels.items())
    )


@dataclass
class Stack:
    cluster: LocalCluster
    apiserver_metrics: str
    endpoints: dict[str, tuple[str, ssl.SSLContext]]  # component -> (URL, trust)
    node: str
    root: Path


def _component(
    name: str, argv: list[str], root: Path, url: str, trust: ssl.SSLContext
) -> ManagedProcess:
    process = ManagedProcess(name, [sys.executable, "-m", *argv], root / f"{name}.log")
    process.start()
    wait_until(
        lambda: _ok(url.replace("/metrics", "/healthz"), trust),
        60,
        f"{name} serving /healthz",
        alive=process.running,
    )
    return process


def _ok(url: str, trust: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=trust) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("metrics")
    api_port = free_port()
    cluster = start_cluster(root / "cluster", apiserver_args=("--metrics-port", str(api_port)))
    pki = cluster.pki
    serving = ["--tls-cert-file", str(pki.apiserver_cert)]
    serving += ["--tls-private-key-file", str(pki.apiserver_key)]
    cluster_ca = _trusting(pki.ca_cert)
    processes: list[ManagedProcess] = []
    node = unique_name("metrics-node")
    endpoints: dict[str, tuple[str, ssl.SSLContext]] = {}
    try:
        cm_port, scheduler_port, agent_port = free_port(), free_port(), free_port()
        endpoints["controller-manager"] = (f"https://127.0.0.1:{cm_port}/metrics", cluster_ca)
        processes.append(
            _component(
                "controller-manager",
                [
                    "controlplane", "controller-manager",
                    "--kubeconfig", str(cluster.component_kubeconfig("controller-manager")),
                    "--leader-elect", "false",
                    "--metrics-bind-address", f"127.0.0.1:{cm_port}",
                    *serving,
                ],
                root,
                *endpoints["controller-manager"],
            )
        )  # fmt: skip
        endpoints["scheduler"] = (f"https://127.0.0.1:{scheduler_port}/metrics", cluster_ca)
        processes.append(
            _component(
                "scheduler",
                [
                    "scheduler",
                    "--kubeconfig", str(cluster.component_kubeconfig("scheduler")),
                    "--leader-elect", "false",
                    "--metrics-bind-address", f"127.0.0.1:{scheduler_port}",
                    *serving,
                ],
                root,
                *endpoints["scheduler"],
            )
        )  # fmt: skip
        agent_dir = root / "agent"
        agent = ManagedProcess(
            "agent",
            [
                sys.executable, "-m", "nodeagent", *cluster.agent_args(node),
                "--runtime", "hollow",
                "--data-dir", str(agent_dir),
                "--listen-port", str(free_port()),
                "--metrics-bind-address", f"127.0.0.1:{agent_port}",
            ],
            root / "agent.log",
        )  # fmt: skip
        agent.start()
        processes.append(agent)
        serving_ca = agent_dir / "pki" / "node-serving-ca.crt"
        wait_until(serving_ca.exists, 60, "the agent's serving certificate", alive=agent.running)
        trust = _trusting(serving_ca)
        # The serving certificate names the node and its address, not 127.0.0.1.
        trust.check_hostname = False
        endpoints["agent"] = (f"https://127.0.0.1:{agent_port}/metrics", trust)
        wait_until(
            lambda: _ok(f"https://127.0.0.1:{agent_port}/healthz", trust),
            60,
            "the agent serving /healthz",
            alive=agent.running,
        )
        yield Stack(cluster, f"https://127.0.0.1:{api_port}", endpoints, node, root)
    finally:
        for process in reversed(processes):
            process.stop()
        cluster.stop()


def scrape(url: str, trust: ssl.SSLContext) -> Samples:
    with urllib.request.urlopen(url, timeout=10, context=trust) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())


def _python_client(stack: Stack, host: str | None = None) -> k8s.ApiClient:
    api_client = k8s_config.new_client_from_config(config_file=str(stack.cluster.kubeconfig))
    if host is not None:
        api_client.configuration.host = host
    return api_client


def _python_scrape(api_client: k8s.ApiClient) -> Samples:
    request = api_client.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
    response = api_client.call_api(*request)
    response.read()
    assert response.status == 200
    return parse(response.data.decode())


def test_the_api_server_serves_kubernetes_names_and_counts_requests(stack: Stack) -> None:
    """Python client: every name is there, and apiserver_request_total rises with requests."""
    metrics_client = _python_client(stack, stack.apiserver_metrics)
    before = _python_scrape(metrics_client)
    for name in APISERVER_METRICS:
        assert name in before, f"{name} missing from the API server's /metrics"
    core = k8s.CoreV1Api(_python_client(stack))
    for _ in range(3):
        core.list_namespace()
    core.read_namespace("default")
    after = _python_scrape(metrics_client)
    lists = {"verb": "LIST", "resource": "namespaces", "scope": "cluster", "code": "200"}
    assert value(after, "apiserver_request_total", **lists) >= (
        value(before, "apiserver_request_total", **lists) + 3
    )
    gets = {"verb": "GET", "resource": "namespaces", "scope": "resource", "code": "200"}
    assert value(after, "apiserver_request_total", **gets) > value(
        before, "apiserver_request_total", **gets
    )
    assert value(after, "apiserver_request_duration_seconds_count", verb="LIST") > 0
    assert value(after, "apiserver_storage_objects", resource="namespaces") >= 4
    assert value(after, "etcd_request_duration_seconds_count", type="namespaces") > 0
    kinds = {labels["request_kind"] for labels, _ in after["apiserver_current_inflight_requests"]}
    assert kinds == {"readOnly", "mutating"}
    # A missing object is counted under its code; a made-up resource adds no series.
    with pytest.raises(k8s.ApiException):
        core.read_namespace(unique_name("absent"))
    final = _python_scrape(metrics_client)
    assert value(final, "apiserver_request_total", verb="GET", code="404") >= 1
    resources = {labels["resource"] for labels, _ in final["apiserver_request_total"]}
    assert all(not r.startswith("absent") for r in resources)


def test_a_watch_is_counted_while_it_lasts(stack: Stack) -> None:
    """apiserver_longrunning_requests and apiserver_registered_watchers follow a live watch."""
    metrics_client = _python_client(stack, stack.apiserver_metrics)
    watching = {"verb": "WATCH", "resource": "configmaps"}

    def live() -> float:
        return value(_python_scrape(metrics_client), "apiserver_longrunning_requests", **watching)

    before = live()
    trust = stack.cluster.ssl_context()
    url = stack.cluster.url + "/api/v1/configmaps?watch=true&timeoutSeconds=30"
    with urllib.request.urlopen(url, timeout=30, context=trust) as response:
        assert response.status == 200
        _eventually(lambda: live() == before + 1, 10, "the watch counted as long-running")
        samples = _python_scrape(metrics_client)
        assert value(samples, "apiserver_registered_watchers", kind="ConfigMap") >= 1
    _eventually(lambda: live() == before, 10, "the finished watch no longer counted")


def test_kubectl_reads_the_api_servers_metrics(stack: Stack, tmp_path: Path) -> None:
    require_kubectl()
    env = {
        **os.environ,
        "KUBECONFIG": str(stack.cluster.kubeconfig),
        "KUBECACHEDIR": str(tmp_path / "kubecache"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        ["kubectl", "--server", stack.apiserver_metrics, "get", "--raw", "/metrics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    samples = parse(result.stdout)
    for name in APISERVER_METRICS:
        assert name in samples
    # The metrics port serves nothing of the API itself.
    result = subprocess.run(
        ["kubectl", "--server", stack.apiserver_metrics, "get", "--raw", "/api/v1/namespaces"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "NotFound" in result.stderr + result.stdout


def _status_of(url: str, trust: ssl.SSLContext, token: str = "") -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=trust) as response:
            return response.status, {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_unauthenticated_scrape_gets_401_and_an_unprivileged_one_403(stack: Stack) -> None:
    trust = _trusting(stack.cluster.pki.ca_cert)
    url = stack.apiserver_metrics + "/metrics"
    code, status = _status_of(url, trust)
    assert code == 401
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"
    # A bootstrap token is a real identity (system:bootstrappers) without /metrics.
    code, status = _status_of(url, trust, stack.cluster.bootstrap_token)
    assert code == 403 and status["reason"] == "Forbidden"
    assert '"/metrics"' in str(status["message"])
    # Health checks stay public, as on the main port.
    assert http_ok(stack.apiserver_metrics + "/healthz", ca_file=stack.cluster.pki.ca_cert)


def test_the_controller_manager_reports_each_controllers_work_queue(stack: Stack) -> None:
    core = k8s.CoreV1Api(_python_client(stack))
    namespace = unique_name("metrics")
    core.create_namespace({"metadata": {"name": namespace}})
    # The namespace controller's work is a namespace being deleted.
    core.delete_namespace(namespace)
    url, trust = stack.endpoints["controller-manager"]

    def namespace_queue_worked() -> bool:
        samples = scrape(url, trust)
        return value(samples, "workqueue_work_duration_seconds_count", name="namespace") > 0

    _eventually(namespace_queue_worked, 30, "the namespace controller's queue to see work")
    samples = scrape(url, trust)
    for name in CONTROLLER_METRICS:
        assert name in samples, f"{name} missing from the controller manager's /metrics"
    queues = {labels["name"] for labels, _ in samples["workqueue_depth"]}
    assert {"deployment", "job", "namespace"} <= queues
    assert value(samples, "workqueue_adds_total", name="namespace") > 0
    assert value(samples, "workqueue_queue_duration_seconds_count", name="namespace") > 0


def test_the_scheduler_and_agent_report_attempts_and_pod_starts(stack: Stack) -> None:
    core = k8s.CoreV1Api(_python_client(stack))
    namespace = unique_name("metrics")
    core.create_namespace({"metadata": {"name": namespace}})
    _eventually(
        lambda: any(n.metadata.name == stack.node for n in core.list_node().items),
        60,
        "the agent's node",
    )
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    core.create_namespaced_pod(namespace, pod)
    _eventually(
        lambda: core.read_namespaced_pod("p", namespace).status.phase == "Running",
        60,
        "the pod running on the hollow agent",
    )
    url, trust = stack.endpoints["scheduler"]
    samples = scrape(url, trust)
    for name in SCHEDULER_METRICS:
        assert name in samples, f"{name} missing from the scheduler's /metrics"
    assert value(samples, "scheduler_schedule_attempts_total", result="scheduled") >= 1
    assert value(samples, "scheduler_scheduling_attempt_duration_seconds_count") >= 1
    url, trust = stack.endpoints["agent"]

    def started() -> bool:
        return value(scrape(url, trust), "kubelet_pod_start_duration_seconds_count") >= 1

    _eventually(started, 30, "the agent to observe the pod's start")
    samples = scrape(url, trust)
    for name in AGENT_METRICS:
        assert name in samples, f"{name} missing from the agent's /metrics"
    operations = {
        labels["operation_type"] for labels, _ in samples["kubelet_runtime_operations_total"]
    }
    assert {"run_sandbox", "create", "start"} <= operations
    core.delete_namespace(namespace)


def test_the_component_ports_refuse_plain_http(stack: Stack) -> None:
    """TLS where the component has certificates: a plain HTTP scrape gets nothing."""
    for component in ("controller-manager", "scheduler", "agent"):
        url, _ = stack.endpoints[component]
        plain = url.replace("https://", "http://")
        with (
            pytest.raises((urllib.error.URLError, ConnectionError, OSError)),
            urllib.request.urlopen(plain, timeout=5) as response,
        ):
            response.read()


def _eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
