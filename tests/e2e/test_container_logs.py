"""Container logs with real dockerd: rotation, --previous, and the cluster log store.

The log store is the real systemd-journal-remote, started here as ``corral up``
starts it; agents ship to it over HTTP and ``corral logs`` reads it back
with journalctl after the pod's node is gone.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from corral.client.rest import Client
from corralctl import logstoreunits, logstoreup
from corralctl.processes import ManagedProcess, free_port, wait_until
from corralctl.units import Layout
from tests.conftest import LocalCluster
from tests.e2e.conftest import Agents, Dockerd, wait_for_node
from tests.e2e.test_agent import PODS, container_status, corral, pod, status_of
from tests.support import eventually

MiB = 1024 * 1024


@pytest.fixture
def log_store(cluster: LocalCluster, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """journal-remote over HTTPS, taking the cluster's node certificates, as corral up runs it."""
    directory, port = tmp_path / "logstore", free_port()
    tls = logstoreup.store_tls(cluster.pki, ["127.0.0.1"])
    process = logstoreup.start(directory, "127.0.0.1", port, tmp_path / "log-store.log", tls)
    yield f"https://127.0.0.1:{port}", directory
    process.stop(5)


def _log_files(dockerd: Dockerd, container_id: str) -> list[Path]:
    inspected = dockerd.client().api.inspect_container(container_id)
    current = Path(inspected["LogPath"])
    return sorted(current.parent.glob(current.name + "*"))


async def _container_id(client: Client, name: str, namespace: str) -> str:
    status = container_status(await status_of(client, name, namespace))
    return str(status.get("containerID", "")).removeprefix("docker://")


async def test_a_container_writing_50_mib_keeps_max_size_times_max_files(
    client: Client, namespace: str, agents: Agents, dockerd: Dockerd
) -> None:
    agent = agents.start(
        extra=("--container-log-max-size", "1Mi", "--container-log-max-files", "3")
    )
    wait_for_node(agents.cluster, agent.node)
    # 50 MiB of 1 KiB lines, then stay up so the files can be measured.
    line = "x" * 1023
    writer = f"yes {line} | head -c {50 * MiB}; echo done-writing; sleep 100000"
    await client.create(PODS, pod("chatty", agent.node, writer), namespace)

    async def written() -> bool:
        container_id = await _container_id(client, "chatty", namespace)
        if not container_id:
            return False
        logs = dockerd.client().api.logs(container_id, tail=1)
        return b"done-writing" in logs

    await eventually(written, timeout=180, message="50 MiB written")
    files = _log_files(dockerd, await _container_id(client, "chatty", namespace))
    total = sum(f.stat().st_size for f in files)
    assert 1 < len(files) <= 3, files
    # Docker rotates once a file passes max-size: a line's worth of slack.
    assert total <= 3 * MiB + 64 * 1024, total


async def test_previous_shows_the_crashed_container_and_400_without_one(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
    kubectl_env: dict[str, str],
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    # Crashes once, then runs: the emptyDir outlives the first container.
    crasher = "test -e /data/ran && exec sleep 100000; touch /data/ran; echo crashed-once; exit 3"
    await client.create(
        PODS,
        pod(
            "crasher",
            agent.node,
            crasher,
            volumes=[{"name": "data", "emptyDir": {}}],
            container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        ),
        namespace,
    )
    await client.create(PODS, pod("steady", agent.node, "echo hi; sleep 100000"), namespace)

    async def restarted() -> bool:
        status = container_status(await status_of(client, "crasher", namespace))
        return int(status.get("restartCount", 0)) >= 1 and "running" in status.get("state", {})

    await eventually(restarted, timeout=90, message="crasher restarted")
    env = kubectl_env
    previous = subprocess.run(
        ["kubectl", "logs", "crasher", "-n", namespace, "--previous"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    ).stdout
    assert previous == "crashed-once\n", previous
    # The official client reads the same terminated container.
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    assert api.read_namespaced_pod_log("crasher", namespace, previous=True) == previous
    ours = corral(cluster, "logs", "crasher", "-n", namespace, "-p")
    assert ours.returncode == 0 and ours.stdout == previous, ours.stderr

    refused = subprocess.run(
        ["kubectl", "logs", "steady", "-n", namespace, "--previous"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert refused.returncode != 0
    assert 'previous terminated container "main" in pod "steady" not found' in refused.stderr
    with pytest.raises(k8s.ApiException) as raised:
        api.read_namespaced_pod_log("steady", namespace, previous=True)
    assert raised.value.status == 400


async def test_a_gone_nodes_pod_log_is_read_back_from_the_store(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
    log_store: tuple[str, Path],
) -> None:
    url, directory = log_store
    agent = agents.start(extra=("--log-store", url))
    wait_for_node(cluster, agent.node)
    script = "for i in $(seq 1 200); do echo line-$i; done; echo needle-one; sleep 100000"
    web = pod("web-1", agent.node, script)
    web["metadata"]["labels"] = {"app": "shop", "tier": "web"}
    other = pod("db-1", agent.node, "echo needle-two; echo hay; sleep 100000")
    other["metadata"]["labels"] = {"app": "shop", "tier": "db"}
    await client.create(PODS, web, namespace)
    await client.create(PODS, other, namespace)

    def store(*args: str) -> subprocess.CompletedProcess[str]:
        return corral(cluster, "logs", "-n", namespace, "--log-store", str(directory), *args)

    def shipped() -> bool:
        found = store("web-1", "--from-store")
        return found.returncode == 0 and "needle-one" in found.stdout

    await eventually(shipped, timeout=60, message="the pod's lines in the store")
    agent.kill()
    # The node is gone: the API cannot reach its agent, corral logs falls back.
    found = store("web-1", "--tail", "2")
    assert found.returncode == 0, found.stderr
    assert found.stdout == "line-200\nneedle-one\n"
    assert "log store" in found.stderr
    # A search across pods: by label, time and text.
    search = store("-l", "app=shop", "--since", "1h", "--grep", "needle")
    assert search.returncode == 0, search.stderr
    assert sorted(search.stdout.splitlines()) == [
        "[pod/db-1/main] needle-two",
        "[pod/web-1/main] needle-one",
    ]
    narrowed = store("-l", "app=shop,tier!=web", "--grep", "needle")
    assert narrowed.stdout == "needle-two\n", narrowed.stderr

    # The agent comes back: it resumes each container where its shipment
    # ended, so nothing is sent twice.
    agent.start()
    await client.create(PODS, pod("late", agent.node, "echo late-line; sleep 100000"), namespace)

    def late_shipped() -> bool:
        return store("late", "--from-store").stdout == "late-line\n"

    await eventually(late_shipped, timeout=60, message="the restarted agent shipping")
    await asyncio.sleep(2)
    again = store("web-1", "--from-store")
    assert again.stdout.count("needle-one") == 1 and again.stdout.count("line-7\n") == 1
    assert len(again.stdout.splitlines()) == 201


def test_the_store_serves_tls_with_a_certificate_of_the_cluster_ca(
    cluster: LocalCluster, log_store: tuple[str, Path]
) -> None:
    url, _ = log_store
    entry = b"MESSAGE=over tls\nCORRAL_POD=probe\n\n"

    def upload(target: str, context: ssl.SSLContext | None) -> int:
        request = urllib.request.Request(
            target + "/upload",
            data=entry,
            headers={"Content-Type": "application/vnd.fdo.journal"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)

    # Verified against the cluster CA alone, for the address agents dial.
    assert upload(url, ssl.create_default_context(cafile=str(cluster.pki.ca_cert))) in (200, 202)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        upload(url.replace("https://", "http://"), None)


def _two_free_ports() -> int:
    """A port whose predecessor is free too (the installed store uses port - 1)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port - 1))
        except OSError:
            continue
        return port
    raise AssertionError("no two adjacent free ports")


@pytest.fixture
def installed_log_store(cluster: LocalCluster, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The units corral install master writes, run by their ExecStart lines."""
    layout = Layout(
        etc_dir=tmp_path / "etc", state_dir=tmp_path / "state", log_dir=tmp_path / "log"
    )
    layout.etc_dir.mkdir()
    port = _two_free_ports()
    written = logstoreunits.log_store_units(layout, cluster.pki, ["127.0.0.1"], port)
    started = []
    for name, text in written.items():
        exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
        argv = shlex.split(exec_start.removeprefix("ExecStart="))
        process = ManagedProcess(name, argv, tmp_path / f"{name}.log")
        process.start()
        started.append(process)
    wait_until(lambda: logstoreup.listening("127.0.0.1", port), 10, "stunnel")
    yield f"https://127.0.0.1:{port}", logstoreunits.store_directory(layout)
    for process in reversed(started):
        process.stop(5)


async def test_the_installed_store_takes_node_certificates_only(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
    installed_log_store: tuple[str, Path],
) -> None:
    url, directory = installed_log_store
    agent = agents.start(extra=("--log-store", url))
    wait_for_node(cluster, agent.node)
    await client.create(
        PODS, pod("shipped", agent.node, "echo via-stunnel; sleep 100000"), namespace
    )

    def stored() -> bool:
        found = corral(
            cluster,
            "logs",
            "shipped",
            "-n",
            namespace,
            "--from-store",
            "--log-store",
            str(directory),
        )
        return found.stdout == "via-stunnel\n"

    await eventually(stored, timeout=60, message="the line shipped through stunnel")
    # Without a client certificate of the cluster CA, stunnel refuses the upload.
    request = urllib.request.Request(
        url + "/upload",
        data=b"MESSAGE=forged\nCORRAL_POD=shipped\n\n",
        headers={"Content-Type": "application/vnd.fdo.journal"},
        method="POST",
    )
    anonymous = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(request, timeout=10, context=anonymous)
