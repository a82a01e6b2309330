"""The node agent with real dockerd: pods run, crash, get probed, survive agent restarts."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import subprocess
import sys
from datetime import datetime
from typing import Any

from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corral.clock import parse_rfc3339
from corral.objects import Obj
from tests.conftest import LocalCluster
from tests.e2e.conftest import (
    TEST_IMAGE,
    Agents,
    Dockerd,
    Registry,
    import_test_image,
    restart_dockerd,
    start_dockerd,
    stop_dockerd,
    wait_for_node,
)
from tests.support import eventually

PODS = REGISTRY.resolve("pods")
EVENTS = REGISTRY.resolve("events")
assert PODS is not None and EVENTS is not None


def pod(name: str, node: str, command: str, **spec: Any) -> Obj:
    container: Obj = {
        "name": "main",
        "image": TEST_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [container], **spec},
    }


async def status_of(client: Client, name: str, namespace: str) -> Obj:
    found: Obj = (await client.get(PODS, name, namespace)).get("status") or {}
    return found


def container_status(status: Obj, name: str = "main") -> Obj:
    for entry in status.get("containerStatuses") or []:
        if entry.get("name") == name:
            return dict(entry)
    return {}


def ready(status: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def corral(
    cluster: LocalCluster, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    # The kubeconfig goes right after the verb: anything after "--" is the command.
    verb, *rest = args
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "corralctl.main",
            verb,
            "--kubeconfig",
            str(cluster.kubeconfig),
            *rest,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def test_httpd_pod_runs_and_its_logs_stream(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
    tmp_path: Any,
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    command = (
        "echo started $(POD_NAME); mkdir -p /www; echo hello > /www/index.html; "
        "httpd -p 8080 -h /www; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; "
        "done"
    )
    body = pod(
        "web",
        agent.node,
        command,
        container={
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            "ports": [{"containerPort": 8080, "name": "http"}],
        },
    )
    await client.create(PODS, body, namespace)
    status = await eventually(
        lambda: _ready_status(client, "web", namespace), timeout=60, message="web Ready"
    )
    assert status["phase"] == "Running"
    assert container_status(status)["state"]["running"]["startedAt"]

    logs = corral(cluster, "logs", "web", "-n", namespace)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines()[0] == "started web"

    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "KUBECACHEDIR": str(tmp_path / "kc"),
        "HOME": str(tmp_path),
    }
    with subprocess.Popen(
        ["kubectl", "logs", "-f", "web", "-n", namespace, "--tail=1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as follower:
        assert follower.stdout is not None
        ticks = []
        for line in follower.stdout:
            if line.startswith("tick"):
                ticks.append(int(line.split()[1]))
            if len(ticks) >= 3:
                break
        follower.kill()
    # Following delivers new lines as they are written, in order.
    assert ticks == sorted(ticks) and ticks[-1] > ticks[0]


async def _ready_status(client: Client, name: str, namespace: str) -> Obj | None:
    status = await status_of(client, name, namespace)
    return status if ready(status) else None


async def test_crash_loop_backs_off_exponentially(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
) -> None:
    agent = agents.start(backoff_base=2.0)
    wait_for_node(cluster, agent.node)
    created = await client.create(PODS, pod("crash", agent.node, "exit 3"), namespace)
    uid = created["metadata"]["uid"]
    started_at: list[datetime] = []

    async def follow() -> None:
        async for event in client.watch(
            EVENTS, namespace, field_selector=f"involvedObject.uid={uid}"
        ):
            item = event["object"]
            if item.get("reason") != "Started":
                continue
            series = item.get("series") or {}
            if series.get("lastObservedTime"):
                started_at.append(parse_rfc3339(series["lastObservedTime"]))
            if len(started_at) >= 4:
                return

    await asyncio.wait_for(follow(), 90)
    intervals = [(b - a).total_seconds() for a, b in itertools.pairwise(started_at)]
    # Starts 2..5 follow waits of 4, 8 and 16 seconds (base 2 s, doubling).
    for measured, expected in zip(intervals, (4.0, 8.0, 16.0), strict=True):
        assert expected * 0.8 <= measured <= expected * 1.2, (intervals, expected)

    async def restarted_four_times() -> Obj | None:
        found = container_status(await status_of(client, "crash", namespace))
        return found if found.get("restartCount", 0) >= 4 else None

    main = await eventually(restarted_four_times, timeout=30, message="four restarts reported")
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["lastState"]["terminated"]["reason"] == "Error"
    print(f"\nCrashLoopBackOff intervals with a 2 s base: {[round(i, 2) for i in intervals]}")


async def test_probes_restart_and_toggle_readiness(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    body = pod(
        "probed",
        agent.node,
        "sleep 100000",
        container={
            "readinessProbe": {
                "exec": {"command": ["test", "-f", "/tmp/ready"]},
                "periodSeconds": 1,
                "failureThreshold": 1,
            },
            "livenessProbe": {
                "exec": {"command": ["test", "!", "-f", "/tmp/die"]},
                "periodSeconds": 1,
                "failureThreshold": 2,
            },
        },
    )
    await client.create(PODS, body, namespace)
    await eventually(lambda: _running(client, "probed", namespace), timeout=60, message="running")
    assert not ready(await status_of(client, "probed", namespace))

    def run(*command: str) -> None:
        result = corral(cluster, "exec", "probed", "-n", namespace, "--", *command)
        assert result.returncode == 0, result.stderr

    run("touch", "/tmp/ready")
    await eventually(
        lambda: _ready_status(client, "probed", namespace),
        timeout=30,
        message="Ready after the probe passes",
    )
    run("rm", "/tmp/ready")
    await eventually(
        lambda: _not_ready(client, "probed", namespace),
        timeout=30,
        message="not Ready after the probe fails",
    )
    run("touch", "/tmp/ready")
    await eventually(
        lambda: _ready_status(client, "probed", namespace), timeout=30, message="Ready again"
    )
    run("touch", "/tmp/die")
    status = await eventually(
        lambda: _restarted(client, "probed", namespace),
        timeout=60,
        message="a restart after the liveness probe fails",
    )
    assert container_status(status)["restartCount"] == 1
    events = await client.list(EVENTS, namespace, field_selector="involvedObject.name=probed")
    reasons = {e["reason"] for e in events["items"]}
    assert {"Unhealthy", "Killing"} <= reasons


async def _running(client: Client, name: str, namespace: str) -> Obj | None:
    status = await status_of(client, name, namespace)
    return status if container_status(status).get("state", {}).get("running") else None


async def _not_ready(client: Client, name: str, namespace: str) -> bool:
    return not ready(await status_of(client, name, namespace))


async def _restarted(client: Client, name: str, namespace: str) -> Obj | None:
    status = await status_of(client, name, namespace)
    main = container_status(status)
    return status if main.get("restartCount", 0) >= 1 and main["state"].get("running") else None


async def test_memory_hog_is_oom_killed(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    body = pod(
        "hog",
        agent.node,
        "x=$(yes | head -c 200000000); sleep 1000",
        restartPolicy="Never",
        container={"resources": {"limits": {"memory": "32Mi"}}},
    )
    await client.create(PODS, body, namespace)

    async def terminated() -> Obj | None:
        state = container_status(await status_of(client, "hog", namespace)).get("state", {})
        return state.get("terminated")

    final = await eventually(terminated, timeout=60, message="the hog to be killed")
    assert final["reason"] == "OOMKilled"
    assert (await status_of(client, "hog", namespace))["phase"] == "Failed"


async def test_agent_restart_restarts_no_container(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
    dockerd: Dockerd,
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    for index in range(3):
        body = pod(
            f"steady-{index}",
            agent.node,
            "sleep 100000",
            container={
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
            },
        )
        await client.create(PODS, body, namespace)
    for index in range(3):
        await eventually(
            lambda i=index: _ready_status(client, f"steady-{i}", namespace),
            timeout=60,
            message="steady pods Ready",
        )
    before = {i: await status_of(client, f"steady-{i}", namespace) for i in range(3)}
    docker_client = dockerd.client()

    def started() -> dict[str, str]:
        return {
            c.id: c.attrs["State"]["StartedAt"]
            for c in docker_client.containers.list(
                all=True, filters={"label": f"io.corral.node={agent.node}"}
            )
        }

    containers_before = started()
    renewed = await _lease_renew_time(client, agent.node)
    agent.kill()
    agent.start()
    # Two lease renewals by the new agent: it has registered, synced its pods
    # and run at least one full resync of each (heartbeats come after both).
    for _ in range(2):
        renewed = await eventually(
            lambda r=renewed: _renewed_after(client, agent.node, r),
            timeout=30,
            message="the restarted agent to heartbeat",
        )
    assert started() == containers_before
    for index in range(3):
        after = await status_of(client, f"steady-{index}", namespace)
        assert container_status(after) == container_status(before[index])
        assert after["phase"] == "Running" and ready(after)


LEASES = REGISTRY.resolve("leases")


async def _lease_renew_time(client: Client, node: str) -> str:
    assert LEASES is not None
    lease = await client.get(LEASES, node, "kube-node-lease")
    return str(lease["spec"]["renewTime"])


async def _renewed_after(client: Client, node: str, previous: str) -> str | None:
    current = await _lease_renew_time(client, node)
    return current if current != previous else None


async def test_pod_deleted_while_agent_was_down_is_removed(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
    dockerd: Dockerd,
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    await client.create(PODS, pod("orphan", agent.node, "sleep 100000"), namespace)
    await eventually(lambda: _running(client, "orphan", namespace), timeout=60, message="running")
    docker_client = dockerd.client()

    def containers() -> list[Any]:
        return docker_client.containers.list(
            all=True, filters={"label": "io.corral.pod.name=orphan"}
        )

    assert containers()
    agent.kill()
    await client.delete(PODS, "orphan", namespace, grace_period_seconds=0)
    agent.start()
    await eventually(
        lambda: not containers(), timeout=60, message="the deleted pod's containers to be removed"
    )


async def test_delete_stops_containers_within_the_grace_period(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
    dockerd: Dockerd,
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    # PID 1 ignores SIGTERM without a handler: the kill comes after the grace period.
    stubborn = pod("stubborn", agent.node, "sleep 100000", terminationGracePeriodSeconds=2)
    polite = pod(
        "polite",
        agent.node,
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        terminationGracePeriodSeconds=30,
    )
    for body in (stubborn, polite):
        await client.create(PODS, body, namespace)
    for name in ("stubborn", "polite"):
        await eventually(
            lambda n=name: _running(client, n, namespace), timeout=60, message=f"{name} running"
        )
    docker_client = dockerd.client()
    exits: dict[str, int] = {}

    def watch_exits() -> None:
        for event in docker_client.events(
            decode=True,
            filters={"type": "container", "event": "die", "label": "io.corral.container.role=app"},
        ):
            name = event["Actor"]["Attributes"].get("io.corral.pod.name", "")
            if name in ("stubborn", "polite"):
                exits[name] = int(event["Actor"]["Attributes"].get("exitCode", -1))
            if len(exits) == 2:
                return

    watcher = asyncio.get_running_loop().run_in_executor(None, watch_exits)
    await asyncio.sleep(0.5)
    for name in ("stubborn", "polite"):
        await client.delete(PODS, name, namespace)
    await asyncio.wait_for(watcher, 60)
    # The polite container exited on SIGTERM; the stubborn one was killed (137)
    # once its 2 second grace period was over.
    assert exits == {"polite": 0, "stubborn": 137}
    for name in ("stubborn", "polite"):
        await eventually(
            lambda n=name: _gone(client, n, namespace), timeout=30, message=f"{name} removed"
        )


async def _gone(client: Client, name: str, namespace: str) -> bool:
    try:
        await client.get(PODS, name, namespace)
    except Exception:
        return True
    return False


async def test_pull_secrets_let_a_pod_pull_from_a_private_registry(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
    registry: Registry,
) -> None:
    secrets = REGISTRY.resolve("secrets")
    assert secrets is not None
    config = {
        "auths": {registry.address: {"username": registry.username, "password": registry.password}}
    }
    await client.create(
        secrets,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
        },
        namespace,
    )
    agent = agents.start(backoff_base=1.0)
    wait_for_node(cluster, agent.node)
    image = f"{registry.address}/corral/private:1"
    allowed = pod(
        "allowed",
        agent.node,
        "sleep 100000",
        imagePullSecrets=[{"name": "pull"}],
        container={"image": image, "imagePullPolicy": "Always"},
    )
    refused = pod(
        "refused",
        agent.node,
        "sleep 100000",
        container={"image": image, "imagePullPolicy": "Always"},
    )
    for body in (allowed, refused):
        await client.create(PODS, body, namespace)
    await eventually(
        lambda: _running(client, "allowed", namespace),
        timeout=60,
        message="the pod with a pull secret to run",
    )

    async def waiting_reason() -> str | None:
        state = container_status(await status_of(client, "refused", namespace)).get("state", {})
        reason = (state.get("waiting") or {}).get("reason")
        return reason if reason == "ImagePullBackOff" else None

    await eventually(waiting_reason, timeout=60, message="ImagePullBackOff without the secret")
    events = await client.list(EVENTS, namespace, field_selector="involvedObject.name=refused")
    failures = [e["message"] for e in events["items"] if e["reason"] == "Failed"]
    assert any("failed to pull image" in message for message in failures), failures


async def test_docker_outage_marks_the_node_not_ready_and_loses_nothing(
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    agents: Agents,
) -> None:
    """A dockerd of the test's own is stopped under a running pod, then started again."""
    daemon = start_dockerd()
    try:
        import_test_image(daemon)
        agent = agents.start(docker_host=daemon.host)
        wait_for_node(cluster, agent.node)
        created = await client.create(PODS, pod("survivor", agent.node, "sleep 100000"), namespace)
        await eventually(
            lambda: _running(client, "survivor", namespace),
            timeout=60,
            message="running before the outage",
        )
        nodes = REGISTRY.resolve("nodes")
        assert nodes is not None

        async def node_ready(want: str) -> Obj | None:
            node = await client.get(nodes, agent.node)
            for condition in (node.get("status") or {}).get("conditions") or []:
                if condition["type"] == "Ready" and condition["status"] == want:
                    return dict(condition)
            return None

        stop_dockerd(daemon, clean=False)
        down = await eventually(
            lambda: node_ready("False"), timeout=60, message="the node to report its runtime down"
        )
        assert "container runtime is down" in down["message"]
        during = await client.get(PODS, "survivor", namespace)
        assert during["metadata"]["uid"] == created["metadata"]["uid"]
        assert during["spec"] == created["spec"]

        restart_dockerd(daemon)
        await eventually(lambda: node_ready("True"), timeout=60, message="Ready again")
        await eventually(
            lambda: _running(client, "survivor", namespace),
            timeout=60,
            message="the pod running again after the outage",
        )
    finally:
        for started in agents.started:
            started.process.stop(15)
        stop_dockerd(daemon, clean=True)
