"""Clients that survive losing an API server: two servers on one etcd.

A watch through the multi-server client must go on from its last
resourceVersion on the other server, with every event seen exactly once and
no relist, whether the first server is killed (SIGKILL) or frozen (SIGSTOP,
noticed by the watch's idle timeout). kubectl goes through the shipped
HAProxy configuration and keeps working when a server dies behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.client.rest import Client, ConnectionFailed
from corral.informer import Informer
from corral.objects import Obj, meta
from corralctl.processes import ApiServer, ManagedProcess, free_port, wait_until
from tests.conftest import LocalCluster, require_kubectl, start_cluster

REPO = Path(__file__).resolve().parents[2]
CONFIGMAPS = REGISTRY.resolve("configmaps")
NAMESPACES = REGISTRY.resolve("namespaces")
assert CONFIGMAPS is not None and NAMESPACES is not None
EVENTS = 60


class TwoServers:
    def __init__(self, root: Path) -> None:
        self.local: LocalCluster = start_cluster(root)
        assert self.local.etcd is not None
        self.second = ApiServer(
            [self.local.etcd.endpoint], log_path=root / "apiserver2.log", pki=self.local.pki
        )
        self.second.start()
        self.second.wait_ready()

    @property
    def first(self) -> ApiServer:
        return self.local.apiserver

    def config(self, *urls: str, namespace: str = "default") -> Any:
        base = self.local.client_config(namespace)
        return replace(base, server=urls[0], fallback_servers=tuple(urls[1:]))

    def stop(self) -> None:
        for server in (self.first, self.second):
            if server.pid is not None and server.running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server.pid, signal.SIGCONT)
        self.second.stop()
        self.local.stop()


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[TwoServers]:
    servers = TwoServers(tmp_path / "ha")
    try:
        yield servers
    finally:
        servers.stop()


class Recorder:
    """An informer on one namespace's ConfigMaps that notes every change and every list."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.informer = Informer(client, CONFIGMAPS, namespace, backoff_initial=0.1)
        self.versions: list[int] = []
        self.lists = 0
        self.all_seen = asyncio.Event()
        self.informer.add_handlers(on_add=self._seen, on_update=lambda _, new: self._seen(new))
        original = self.informer._list

        async def counted() -> None:
            self.lists += 1
            await original()

        self.informer._list = counted  # type: ignore[method-assign]

    def _seen(self, obj: Obj) -> None:
        self.versions.append(int(meta(obj)["resourceVersion"]))
        if len(self.informer.store) >= EVENTS:
            self.all_seen.set()


async def _create_all(
    client: Client, namespace: str, count: int, after: Callable[[int], Awaitable[None]]
) -> list[int]:
    """Create ``count`` ConfigMaps, retrying through outages; their versions as acknowledged."""
    acked: list[int] = []
    for i in range(count):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}}
        for _ in range(100):
            try:
                created = await client.create(CONFIGMAPS, body, namespace)
                acked.append(int(meta(created)["resourceVersion"]))
                break
            except ConnectionFailed:
                await asyncio.sleep(0.1)
            except ApiError as error:
                if error.code != 409:
                    raise
                # The broken attempt went through: its version is the object's.
                stored = await client.get(CONFIGMAPS, f"cm-{i}", namespace)
                acked.append(int(meta(stored)["resourceVersion"]))
                break
        else:
            raise AssertionError(f"cm-{i} never created")
        await after(i)
        await asyncio.sleep(0.05)
    return acked


async def _namespace(client: Client) -> str:
    name = f"ha-{os.getpid()}-{time.monotonic_ns() % 100000}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def _watch_across(servers: TwoServers, fault: Callable[[], None], idle: float | None) -> None:
    both = servers.config(servers.first.url, servers.second.url)
    only_second = servers.config(servers.second.url)
    async with (
        Client(both, watch_idle_timeout=idle) as watcher,
        Client(only_second) as writer,
    ):
        namespace = await _namespace(writer)
        recorder = Recorder(watcher, namespace)
        stop = asyncio.Event()
        task = asyncio.create_task(recorder.informer.run(stop))
        try:
            await asyncio.wait_for(recorder.informer.synced.wait(), 20)

            async def fault_at_a_third(i: int) -> None:
                if i == EVENTS // 3:
                    fault()

            acked = await _create_all(writer, namespace, EVENTS, fault_at_a_third)
            await asyncio.wait_for(recorder.all_seen.wait(), 60)
            await asyncio.sleep(0.5)  # room for a late duplicate to show
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        assert watcher.base == servers.second.url, "the watch never moved to the second server"
        # Every acknowledged write seen once, in resourceVersion order, no relist.
        assert recorder.versions == sorted(set(recorder.versions))
        assert recorder.versions == acked
        assert recorder.lists == 1


async def test_watch_resumes_on_the_other_server_when_one_is_killed(
    two_servers: TwoServers,
) -> None:
    await _watch_across(two_servers, two_servers.first.kill, idle=None)


async def test_a_frozen_server_is_noticed_by_the_watch_idle_timeout(
    two_servers: TwoServers,
) -> None:
    pid = two_servers.first.pid
    assert pid is not None
    # Events flow every ~0.1 s, so 3 s of silence can only mean the freeze.
    await _watch_across(two_servers, lambda: os.kill(pid, signal.SIGSTOP), idle=3.0)


async def test_requests_fail_over_to_the_next_server(two_servers: TwoServers) -> None:
    async with Client(two_servers.config(two_servers.first.url, two_servers.second.url)) as client:
        await client.list(NAMESPACES)
        two_servers.first.kill()
        # The pooled connection is dead: a read is replayed, refused, and
        # goes to the second server.
        await client.list(NAMESPACES)
        assert client.base == two_servers.second.url
        # A write too: a refused connection sent nothing, so it may go elsewhere.
        async with Client(
            two_servers.config(two_servers.first.url, two_servers.second.url)
        ) as fresh:
            namespace = await _namespace(fresh)
            assert fresh.base == two_servers.second.url
        assert (await client.get(NAMESPACES, namespace))["metadata"]["name"] == namespace


def _kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60)


def test_kubectl_through_haproxy_survives_a_server_kill(
    two_servers: TwoServers, tmp_path: Path
) -> None:
    # ./dev deps installs both; without them this fails rather than skips.
    require_kubectl()
    assert shutil.which("haproxy"), "haproxy is missing: ./dev deps installs it"
    lb_port = free_port()
    first, second = two_servers.first, two_servers.second
    haproxy = ManagedProcess(
        "haproxy",
        ["haproxy", "-db", "-f", str(REPO / "examples" / "ha" / "haproxy.cfg")],
        tmp_path / "haproxy.log",
        env={
            "CORRAL_LB_BIND": f"127.0.0.1:{lb_port}",
            "CORRAL_APISERVER_1": f"127.0.0.1:{first.port}",
            "CORRAL_APISERVER_2": f"127.0.0.1:{second.port}",
            # The third master of the example is missing here: its health
            # check fails and it gets no traffic.
            "CORRAL_APISERVER_3": f"127.0.0.1:{free_port()}",
        },
    )
    haproxy.start()
    try:
        lb = f"https://127.0.0.1:{lb_port}"
        from corral.client import kubeconfig

        config_path = tmp_path / "kubeconfig"
        kubeconfig.write(config_path, two_servers.local.pki.admin_kubeconfig(lb, "ha"))
        env = {
            **os.environ,
            "KUBECONFIG": str(config_path),
            "KUBECACHEDIR": str(tmp_path / "cache"),
            "HOME": str(tmp_path),
        }
        wait_until(lambda: _kubectl(env, "get", "--raw", "/readyz").returncode == 0, 20, "lb")
        assert _kubectl(env, "create", "namespace", "before-kill").returncode == 0
        first.kill()
        # Health checks every second, two failures to mark it down: within
        # a few seconds every request goes to the survivor.
        started = time.monotonic()
        for i in range(20):
            result = _kubectl(env, "create", "namespace", f"after-kill-{i}")
            assert result.returncode == 0, result.stderr
        got = _kubectl(env, "get", "namespaces", "-o", "name")
        assert "namespace/before-kill" in got.stdout
        assert all(f"namespace/after-kill-{i}" in got.stdout for i in range(20))
        assert time.monotonic() - started < 60
    finally:
        haproxy.stop()


async def test_an_agent_fails_over_to_the_other_servers_agent_port(
    two_servers: TwoServers, tmp_path: Path
) -> None:
    local, first, second = two_servers.local, two_servers.first, two_servers.second
    pods = REGISTRY.resolve("pods")
    assert pods is not None
    agent = ManagedProcess(
        "agent",
        [
            sys.executable, "-m", "nodeagent",
            "--server", f"{first.url},{second.url}",
            "--control", f"127.0.0.1:{first.agent_port},127.0.0.1:{second.agent_port}",
            "--ca-file", str(local.pki.ca_cert),
            "--bootstrap-token", local.bootstrap_token,
            "--node-name", "ha-node",
            "--runtime", "hollow",
            "--data-dir", str(tmp_path / "agent"),
            "--listen-port", str(free_port()),
        ],
        tmp_path / "agent.log",
    )  # fmt: skip
    agent.start()
    try:
        async with Client(two_servers.config(second.url)) as client:

            async def runs(name: str) -> None:
                pod = {
                    "metadata": {"name": name},
                    "spec": {"nodeName": "ha-node", "containers": [{"name": "c", "image": "x:1"}]},
                }
                await client.create(pods, pod, "default")
                async with asyncio.timeout(60):
                    while True:
                        got = await client.get(pods, name, "default")
                        if (got.get("status") or {}).get("phase") == "Running":
                            return
                        await asyncio.sleep(0.2)

            await runs("before")
            first.kill()
            # Assigned after the kill: the pod stream and the status reports
            # reach the agent only through the second server.
            await runs("after")
        assert f"switching to 127.0.0.1:{second.agent_port}" in agent.log_tail(200)
    finally:
        agent.stop()


def test_the_cli_takes_a_server_list(two_servers: TwoServers, tmp_path: Path) -> None:
    corral = Path(sys.executable).parent / "corral"
    dead = f"https://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [
            str(corral), "get", "namespaces", "-o", "name",
            "--kubeconfig", str(two_servers.local.kubeconfig),
            "-s", f"{dead},{two_servers.second.url}",
        ],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "namespace/default" in result.stdout
