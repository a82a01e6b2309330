"""The pod worker and its parts, on the in-memory (hollow) runtime and a manual clock."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from corral.clock import ManualClock
from corral.objects import Obj
from nodeagent.backoff import Backoff
from nodeagent.podworker import PodWorker
from nodeagent.registryauth import auth_for, registry_of
from nodeagent.restartpolicy import should_restart
from nodeagent.runtime.base import ContainerRecord, ImageAuth, ImagePullError
from nodeagent.runtime.hollow import HollowRuntime

BACKOFF_BASE = 10.0


class Host:
    """A PodHost that keeps what the worker tells the agent."""

    def __init__(self, pods_dir: Path, runtime: HollowRuntime) -> None:
        self.runtime = runtime
        self.clock = ManualClock()
        self.pods_dir = pods_dir
        self.host_ip = "10.0.0.1"
        self.node_allocatable: Obj = {"cpu": "2", "memory": "1Gi"}
        self.restarts = Backoff(BACKOFF_BASE, 300.0, 600.0)
        self.pulls = Backoff(BACKOFF_BASE, 300.0, 600.0)
        self.events: list[tuple[str, str]] = []
        self.statuses: list[Obj] = []
        self.deleted: list[str] = []
        self.teardown_error: Exception | None = None
        self.secrets: dict[str, Obj] = {}

    async def get_configmap(self, namespace: str, name: str) -> Obj | None:
        return None

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        return self.secrets.get(name)

    async def event(
        self, pod: Obj, kind: str, reason: str, message: str, field_path: str = ""
    ) -> None:
        self.events.append((reason, message))

    def report_status(self, pod: Obj, status: Obj) -> None:
        self.statuses.append(status)

    async def confirm_deleted(self, pod: Obj) -> None:
        self.deleted.append(pod["metadata"]["uid"])

    async def network_setup(self, pod: Obj, netns: str) -> str:
        return ""

    async def network_teardown(self, pod: Obj) -> None:
        if self.teardown_error is not None:
            raise self.teardown_error

    async def extra_env(self, pod: Obj) -> dict[str, str]:
        return {}

    def resolv_conf(self, pod: Obj) -> str | None:
        return None

    def reasons(self, reason: str) -> int:
        return sum(1 for r, _ in self.events if r == reason)


class NoRegistry(HollowRuntime):
    """No image is present, and every pull fails until ``reachable``."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.reachable = False
        self.auths: list[ImageAuth | None] = []

    async def image_present(self, image: str) -> bool:
        return False

    async def pull(self, image: str, auth: ImageAuth | None) -> str:
        self.auths.append(auth)
        if not self.reachable:
            raise ImagePullError("ErrImagePull", f"pull access denied for {image}")
        return await super().pull(image, auth)


def make_pod(restart_policy: str = "Always", **container: Any) -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-0001"},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": "main", "image": "busybox", **container}],
        },
    }


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path / "pods", HollowRuntime("n1"))


def worker_for(host: Host, pod: Obj) -> PodWorker:
    worker = PodWorker(host, pod["metadata"]["uid"], resync=30.0)
    worker.update(pod)
    return worker


def main_status(status: Obj) -> Obj:
    (found,) = [c for c in status["containerStatuses"] if c["name"] == "main"]
    return dict(found)


def crash(host: Host, worker: PodWorker, exit_code: int = 1) -> ContainerRecord:
    """The app container exits now, as the runtime would report it."""
    record = worker.apps["main"].current
    assert record is not None
    record.state = "exited"
    record.exit_code = exit_code
    record.started_at = host.clock.now() - timedelta(seconds=1)
    record.finished_at = host.clock.now()
    return record


async def test_a_pod_runs_ready_and_an_unchanged_status_is_reported_once(host: Host) -> None:
    worker = worker_for(host, make_pod())
    assert await worker.reconcile() is False
    status = host.statuses[-1]
    assert status["phase"] == "Running"
    assert main_status(status)["ready"] is True
    assert worker.running_container_id("main") == worker.apps["main"].current.id  # type: ignore[union-attr]
    await worker.reconcile()
    assert len(host.statuses) == 1


async def test_a_pods_start_is_logged_once_with_where_its_time_went(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    worker = worker_for(host, make_pod())
    with caplog.at_level(logging.INFO, logger="nodeagent.agentmetrics"):
        await worker.reconcile()
        await worker.reconcile()
    lines = [r.getMessage() for r in caplog.records if "after it was seen" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("pod default/web running")
    for step in ("sandbox", "network", "image", "create", "start"):
        assert f"{step} " in lines[0]
    assert set(worker.start_clock.steps) >= {"sandbox", "network", "create", "start"}


async def test_a_crashed_container_backs_off_with_one_event_then_restarts(host: Host) -> None:
    worker = worker_for(host, make_pod())
    await worker.reconcile()
    first = crash(host, worker)
    await worker.reconcile()
    await worker.reconcile()
    waiting = main_status(host.statuses[-1])["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"
    assert f"back-off {BACKOFF_BASE:g}s" in waiting["message"]
    assert host.reasons("BackOff") == 1
    host.clock.advance(BACKOFF_BASE - 1)
    await worker.reconcile()
    assert worker.apps["main"].current is first
    host.clock.advance(1)
    await worker.reconcile()
    restarted = main_status(host.statuses[-1])
    assert restarted["restartCount"] == 1 and "running" in restarted["state"]
    assert restarted["lastState"]["terminated"]["exitCode"] == 1


async def test_restart_policy_never_leaves_a_failed_pod_failed(host: Host) -> None:
    worker = worker_for(host, make_pod("Never"))
    await worker.reconcile()
    crash(host, worker, exit_code=3)
    host.clock.advance(1000)
    await worker.reconcile()
    status = host.statuses[-1]
    assert status["phase"] == "Failed"
    assert main_status(status)["state"]["terminated"]["exitCode"] == 3
    assert host.reasons("Started") == 1


def test_the_restart_policy_table() -> None:
    assert should_restart("Always", "app", 0)
    assert should_restart("OnFailure", "app", 1) and not should_restart("OnFailure", "app", 0)
    assert not should_restart("Never", "app", 1)
    assert should_restart("Always", "init", 1) and not should_restart("Always", "init", 0)
    assert not should_restart("Never", "init", 1)


async def test_a_failing_pull_backs_off_then_pulls_with_the_pull_secret(tmp_path: Path) -> None:
    runtime = NoRegistry("n1")
    host = Host(tmp_path / "pods", runtime)
    host.secrets["regcred"] = dockerconfig("registry.example:5000", "alice", "s3cret")
    pod = make_pod(image="registry.example:5000/app:1", imagePullPolicy="IfNotPresent")
    pod["spec"]["imagePullSecrets"] = [{"name": "regcred"}, {"name": "missing"}]
    worker = worker_for(host, pod)
    await worker.reconcile()
    assert main_status(host.statuses[-1])["state"]["waiting"]["reason"] == "ErrImagePull"
    await worker.reconcile()
    assert main_status(host.statuses[-1])["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert len(runtime.auths) == 1
    runtime.reachable = True
    host.clock.advance(BACKOFF_BASE)
    await worker.reconcile()
    assert host.statuses[-1]["phase"] == "Running"
    assert runtime.auths[-1] == ImageAuth("alice", "s3cret", "registry.example:5000")


def dockerconfig(server: str, username: str, password: str) -> Obj:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = {"auths": {f"https://{server}/v1/": {"auth": token}}}
    return {"data": {".dockerconfigjson": base64.b64encode(orjson.dumps(config)).decode()}}


def test_registry_auth_matches_the_registry_and_skips_malformed_secrets() -> None:
    assert registry_of("busybox") == "docker.io"
    assert registry_of("localhost/app") == "localhost"
    assert registry_of("library/app") == "docker.io"
    malformed = {"data": {".dockerconfigjson": base64.b64encode(b"{not json").decode()}}
    other = dockerconfig("quay.io", "bob", "pw")
    hub = dockerconfig("index.docker.io", "carol", "pw2")
    assert auth_for("quay.io/x/y", [malformed, other, hub]) == ImageAuth("bob", "pw", "quay.io")
    assert auth_for("busybox", [malformed, other, hub]) == ImageAuth("carol", "pw2", "docker.io")
    assert auth_for("ghcr.io/x", [other]) is None
    # A Docker Hub login goes to Docker Hub only: not to any registry a pod
    # names, nor to a host whose name merely ends in docker.io.
    assert auth_for("evil.example.com/x", [hub]) is None
    assert auth_for("evildocker.io/x", [dockerconfig("evildocker.io", "eve", "pw3")]) == (
        ImageAuth("eve", "pw3", "evildocker.io")
    )
    assert auth_for("busybox", [dockerconfig("evildocker.io", "eve", "pw3")]) is None


async def test_a_deleted_pod_is_torn_down_and_a_teardown_error_is_logged(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    pod = make_pod()
    worker = worker_for(host, pod)
    worker.start()
    assert worker.started and not worker.done
    for _ in range(20):
        await asyncio.sleep(0)
    assert host.runtime.containers, "the pod's containers should be running"
    host.teardown_error = OSError("veth busy")
    deleted = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    with caplog.at_level(logging.WARNING, logger="nodeagent.podworker"):
        worker.update(deleted)
        await asyncio.wait_for(worker.wait(), 5)
    assert worker.done
    assert host.runtime.containers == {}
    assert host.deleted == ["uid-0001"]
    assert "network teardown failed: OSError: veth busy" in caplog.text
    await worker.stop()
