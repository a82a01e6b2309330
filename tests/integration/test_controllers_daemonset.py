"""The DaemonSet controller against a real API server, with the real scheduler and kubectl.

A cluster of the module's own (nodes are cluster-wide, and the scheduler
takes every pending pod it sees): plain Node objects stand in for nodes,
the scheduler runs in this process and binds the daemon pods the
controller pins to their nodes, and ``fake_agent`` plays the node agents
(pods reported Ready, graceful deletions confirmed). kubectl (apply,
rollout status, history and undo) and the official Python client
(AppsV1Api) drive it from outside.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.controllers.daemonset import DaemonSetController
from controlplane.controllers.garbagecollector import GarbageCollector
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.informer import Informer, wait_synced
from corral.objects import Obj
from corralctl.context import UsageError
from corralctl.processes import ManagedProcess, free_port
from scheduler.scheduler import Scheduler
from tests.conftest import LocalCluster, require_kubectl, start_cluster, unique_name
from tests.integration.test_controllers_deployment_standins import cli
from tests.integration.test_controllers_harness import (
    NAMESPACES,
    NODES,
    PODS,
    active_pods,
    fake_agent,
    rt,
    running,
)
from tests.support import eventually
from tests.unit.scheduler.builders import node

DAEMON_SETS = rt("DaemonSet", "apps/v1")
REVISIONS = rt("ControllerRevision", "apps/v1")


@pytest.fixture(scope="module")
def ds_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = start_cluster(tmp_path_factory.mktemp("daemonset-cluster"))
    yield local
    local.stop()


@pytest.fixture
def kubectl(ds_cluster: LocalCluster, tmp_path: Path) -> Any:
    require_kubectl()
    env = {
        **os.environ,
        "KUBECONFIG": str(ds_cluster.kubeconfig),
        "KUBECACHEDIR": str(tmp_path / "kubecache"),
        "HOME": str(tmp_path),
    }

    async def run(*args: str, stdin: str | None = None, timeout: float = 90) -> str:
        def call() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["kubectl", *args],
                input=stdin,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )

        done = await asyncio.to_thread(call)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    return run


@asynccontextmanager
async def running_scheduler(cluster: LocalCluster) -> AsyncIterator[Scheduler]:
    async with Client(cluster.client_config(), max_connections=40) as client:
        scheduler = Scheduler(client)
        stop = asyncio.Event()
        informers = asyncio.create_task(scheduler.run_informers(stop))
        loop = asyncio.create_task(scheduler.run(stop))
        try:
            await eventually(scheduler.synced, timeout=30, message="the scheduler's caches")
            yield scheduler
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(loop, informers), 30)


def is_ready(pod: Obj) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def manifest(name: str, image: str, **spec: Any) -> str:
    labels = {"app": name}
    body = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "agent", "image": image}],
                    "terminationGracePeriodSeconds": 5,
                },
            },
            **spec,
        },
    }
    return json.dumps(body)


async def placement(client: Client, namespace: str, app: str) -> dict[str, str]:
    """node -> image, for the app's bound, active pods (fails on two pods on one node)."""
    out: dict[str, str] = {}
    for pod in await active_pods(client, namespace, f"app={app}"):
        bound = pod["spec"].get("nodeName")
        if bound:
            assert bound not in out, f"two pods on {bound}"
            out[bound] = pod["spec"]["containers"][0]["image"]
    return out


@pytest.fixture
async def env(ds_cluster: LocalCluster) -> AsyncIterator[tuple[Client, str, list[str]]]:
    async with Client(ds_cluster.client_config(), max_connections=64) as client:
        namespace = unique_name("ds")
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        nodes: list[str] = []
        try:
            yield client, namespace, nodes
        finally:
            for name in nodes:
                try:
                    await client.delete(NODES, name)
                except ApiError as error:
                    if error.code != 404:
                        raise
            for pod in (await client.list(PODS, namespace))["items"]:
                try:
                    await client.delete(
                        PODS, pod["metadata"]["name"], namespace, grace_period_seconds=0
                    )
                except ApiError as error:
                    if error.code != 404:
                        raise


def apps_api(cluster: LocalCluster) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))


async def test_a_daemon_set_follows_nodes_and_rolls_out_and_back(
    ds_cluster: LocalCluster, env: tuple[Client, str, list[str]], kubectl: Any
) -> None:
    client, namespace, nodes = env

    async def add_node(suffix: str, **kwargs: Any) -> str:
        name = f"{namespace}-{suffix}"
        await client.create(NODES, node(name, **kwargs))
        nodes.append(name)
        return name

    for suffix in ("n1", "n2", "n3"):
        await add_node(suffix)
    # A node the set's defaults tolerate (cordoned), and one it does not.
    cordoned = await add_node("cordoned", unschedulable=True,
                              taints=[{"key": "node.kubernetes.io/unschedulable",
                                       "effect": "NoSchedule"}])  # fmt: skip
    tainted = await add_node("tainted", taints=[{"key": "dedicated", "effect": "NoSchedule"}])
    ns = ["-n", namespace]
    api = apps_api(ds_cluster)
    async with (
        running(client, namespace, DaemonSetController, GarbageCollector),
        running_scheduler(ds_cluster),
        fake_agent(client, namespace),
    ):
        await kubectl("apply", *ns, "-f", "-", stdin=manifest("agent", "busybox:1.36"))
        await kubectl("rollout", "status", *ns, "ds/agent", "--timeout=60s")
        placed = await placement(client, namespace, "agent")
        expected = {f"{namespace}-{s}" for s in ("n1", "n2", "n3")} | {cordoned}
        assert set(placed) == expected and tainted not in placed

        table = (await kubectl("get", "ds", *ns, "-o", "wide")).splitlines()
        assert table[0].split() == [
            "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
            "SELECTOR", "AGE", "CONTAINERS", "IMAGES", "SELECTOR",
        ]  # fmt: skip
        assert table[1].split()[:7] == ["agent", "4", "4", "4", "4", "4", "<none>"]
        read = await asyncio.to_thread(api.read_namespaced_daemon_set, "agent", namespace)
        assert read.status.desired_number_scheduled == 4
        assert read.status.number_ready == 4
        assert read.status.updated_number_scheduled == 4
        assert read.status.number_misscheduled == 0
        assert read.status.observed_generation == read.metadata.generation

        # A node joins: it gets its pod.
        joined = await add_node("n4")

        async def on_joined() -> bool:
            return joined in await placement(client, namespace, "agent")

        await eventually(on_joined, timeout=30, message="a pod on the new node")
        await kubectl("rollout", "status", *ns, "ds/agent", "--timeout=60s")
        assert (await client.get(DAEMON_SETS, "agent", namespace))["status"][
            "desiredNumberScheduled"
        ] == 5

        # A node is removed: its pod goes, and the set wants one fewer.
        gone = f"{namespace}-n2"
        await client.delete(NODES, gone)
        nodes.remove(gone)

        async def left() -> bool:
            status = (await client.get(DAEMON_SETS, "agent", namespace)).get("status") or {}
            placed = await placement(client, namespace, "agent")
            return gone not in placed and status.get("desiredNumberScheduled") == 4

        await eventually(left, timeout=30, message="the removed node's pod gone")

        # A new template rolls out one node at a time, then back with undo.
        await kubectl("apply", *ns, "-f", "-", stdin=manifest("agent", "busybox:1.37"))
        await kubectl("rollout", "status", *ns, "ds/agent", "--timeout=90s")
        assert set((await placement(client, namespace, "agent")).values()) == {"busybox:1.37"}
        history = await kubectl("rollout", "history", *ns, "ds/agent")
        assert history.split()[-4:] == ["1", "<none>", "2", "<none>"], history

        await kubectl("rollout", "undo", *ns, "ds/agent")
        await kubectl("rollout", "status", *ns, "ds/agent", "--timeout=90s")
        placed = await placement(client, namespace, "agent")
        assert set(placed.values()) == {"busybox:1.36"} and len(placed) == 4
        revisions = (await client.list(REVISIONS, namespace))["items"]
        # Going back made the first revision the newest rather than a copy of it.
        assert sorted(r["revision"] for r in revisions) == [2, 3]

        # The official client creates one that only some nodes take.
        body = json.loads(manifest("edge", "busybox:1.36"))
        body["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": joined}
        await asyncio.to_thread(api.create_namespaced_daemon_set, namespace, body)

        async def edge_placed() -> bool:
            return await placement(client, namespace, "edge") == {joined: "busybox:1.36"}

        await eventually(edge_placed, timeout=30, message="the edge daemon on its one node")
        edge = await asyncio.to_thread(api.read_namespaced_daemon_set_status, "edge", namespace)
        assert edge.status.desired_number_scheduled == 1
    api.api_client.close()


async def test_max_surge_starts_the_new_pod_before_the_old_one_goes(
    env: tuple[Client, str, list[str]], ds_cluster: LocalCluster, kubectl: Any
) -> None:
    client, namespace, nodes = env
    for suffix in ("s1", "s2"):
        name = f"{namespace}-{suffix}"
        await client.create(NODES, node(name))
        nodes.append(name)
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    ns = ["-n", namespace]
    async with (
        running(client, namespace, DaemonSetController, GarbageCollector),
        running_scheduler(ds_cluster),
        fake_agent(client, namespace),
    ):
        await kubectl(
            "apply",
            *ns,
            "-f",
            "-",
            stdin=manifest("surge", "busybox:1.36", updateStrategy=strategy),
        )
        await kubectl("rollout", "status", *ns, "ds/surge", "--timeout=60s")
        seen: dict[str, Obj] = {}
        ready_counts: list[int] = []

        def noted(pod: Obj, gone: bool = False) -> None:
            # Every state the watch shows, in order: the moment the new pod is
            # ready and the old one not yet going cannot slip between polls.
            if gone:
                seen.pop(pod["metadata"]["uid"], None)
            else:
                seen[pod["metadata"]["uid"]] = pod
            ready_counts.append(sum(1 for p in seen.values() if is_ready(p)))

        informer = Informer(client, PODS, namespace=namespace, label_selector="app=surge")
        informer.add_handlers(
            on_add=noted,
            on_update=lambda _old, new: noted(new),
            on_delete=lambda p: noted(p, gone=True),
        )
        stop = asyncio.Event()
        watching = asyncio.create_task(informer.run(stop))
        await wait_synced([informer], 10)
        ready_counts.clear()
        await kubectl(
            "apply",
            *ns,
            "-f",
            "-",
            stdin=manifest("surge", "busybox:1.37", updateStrategy=strategy),
        )
        await kubectl("rollout", "status", *ns, "ds/surge", "--timeout=60s")
        stop.set()
        await asyncio.wait_for(watching, 10)
        assert set((await placement(client, namespace, "surge")).values()) == {"busybox:1.37"}
        # Never fewer than two ready, and a moment with three: the surge pod.
        assert min(ready_counts) == 2 and max(ready_counts) == 3, ready_counts


async def test_invalid_daemon_sets_are_refused_naming_the_field(
    env: tuple[Client, str, list[str]],
) -> None:
    client, namespace, _ = env
    body = json.loads(manifest("bad", "busybox:1.36"))
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiError) as refused:
        await client.create(DAEMON_SETS, body, namespace)
    assert refused.value.code == 422
    assert "spec.template.metadata.labels" in refused.value.message

    body = json.loads(manifest("bad", "busybox:1.36"))
    body["spec"]["updateStrategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0},
    }
    with pytest.raises(ApiError) as refused:
        await client.create(DAEMON_SETS, body, namespace)
    assert refused.value.code == 422
    assert "spec.updateStrategy.rollingUpdate.maxUnavailable" in refused.value.message


async def test_corral_rollout_status_history_and_undo_for_a_daemon_set(
    env: tuple[Client, str, list[str]], ds_cluster: LocalCluster
) -> None:
    client, namespace, nodes = env
    for suffix in ("c1", "c2"):
        name = f"{namespace}-{suffix}"
        await client.create(NODES, node(name))
        nodes.append(name)
    async with (
        running(client, namespace, DaemonSetController, GarbageCollector),
        running_scheduler(ds_cluster),
        fake_agent(client, namespace),
        cli(ds_cluster, namespace) as corral,
    ):
        await client.create(DAEMON_SETS, json.loads(manifest("agent", "busybox:1.36")), namespace)
        assert await corral("rollout", "status", "ds/agent", "--timeout", "60s") == 0
        assert corral.take()[0].endswith('daemon set "agent" successfully rolled out\n')
        await client.patch(
            DAEMON_SETS,
            "agent",
            {
                "metadata": {"annotations": {"kubernetes.io/change-cause": "to 1.37"}},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "agent", "image": "busybox:1.37"}
                ]}}},
            },
            namespace,
        )  # fmt: skip
        assert await corral("rollout", "status", "daemonset", "agent", "--timeout", "60s") == 0
        out, _ = corral.take()
        assert "new pods have been updated" in out or "updated pods are available" in out
        assert set((await placement(client, namespace, "agent")).values()) == {"busybox:1.37"}

        assert await corral("rollout", "history", "ds/agent") == 0
        assert corral.take() == (
            "daemonset.apps/agent\nREVISION  CHANGE-CAUSE\n1         <none>\n2         to 1.37\n",
            "",
        )
        assert await corral("rollout", "history", "ds/agent", "--revision", "1") == 0
        out, _ = corral.take()
        assert out.startswith("daemonset.apps/agent with revision #1\nPod Template:\n")
        assert "busybox:1.36" in out

        assert await corral("rollout", "undo", "ds/agent", "--to-revision", "9") == 1
        assert corral.take()[1] == "error: unable to find specified revision 9 in history\n"
        assert await corral("rollout", "undo", "ds/agent", "--to-revision", "2") == 0
        assert corral.take()[0] == (
            "daemonset.apps/agent skipped rollback (current template already matches revision 2)\n"
        )
        assert await corral("rollout", "undo", "ds/agent") == 0
        assert corral.take() == ("daemonset.apps/agent rolled back\n", "")
        assert await corral("rollout", "status", "ds/agent", "--timeout", "60s") == 0
        assert set((await placement(client, namespace, "agent")).values()) == {"busybox:1.36"}

        with pytest.raises(UsageError, match="deployments, not"):
            await corral("rollout", "pause", "ds/agent")
        await client.patch(
            DAEMON_SETS, "agent", {"spec": {"updateStrategy": {"type": "OnDelete"}}}, namespace
        )
        assert await corral("rollout", "status", "ds/agent", "--watch=false") == 1
        assert corral.take()[1] == (
            "error: rollout status is only available for RollingUpdate strategy type\n"
        )


async def test_a_daemon_set_on_hollow_agents_follows_a_join_and_a_removal(
    env: tuple[Client, str, list[str]], ds_cluster: LocalCluster, tmp_path: Path, kubectl: Any
) -> None:
    """Real node agents (their hollow runtime) register the nodes and run the pods."""
    client, namespace, nodes = env
    agents: dict[str, ManagedProcess] = {}

    def start(suffix: str) -> str:
        name = f"{namespace}-{suffix}"
        agent = ManagedProcess(
            name,
            [
                sys.executable, "-m", "nodeagent", *ds_cluster.agent_args(name),
                "--runtime", "hollow",
                "--data-dir", str(tmp_path / name),
                "--listen-port", str(free_port()),
            ],
            tmp_path / f"{name}.log",
        )  # fmt: skip
        agent.start()
        agents[name] = agent
        nodes.append(name)
        return name

    async def ready_on() -> set[str]:
        pods = await active_pods(client, namespace, "app=agent")
        return {p["spec"]["nodeName"] for p in pods if is_ready(p) and p["spec"].get("nodeName")}

    async def registered() -> set[str]:
        ready = set()
        for item in (await client.list(NODES))["items"]:
            conditions = (item.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                ready.add(item["metadata"]["name"])
        return ready & set(agents)

    try:
        first = {start(s) for s in ("h1", "h2", "h3")}

        async def all_registered() -> bool:
            return await registered() == first

        await eventually(all_registered, timeout=60, message="three agents' nodes Ready")
        async with (
            running(client, namespace, DaemonSetController, GarbageCollector),
            running_scheduler(ds_cluster),
        ):
            await kubectl("apply", "-n", namespace, "-f", "-",
                          stdin=manifest("agent", "busybox:1.36"))  # fmt: skip
            await kubectl("rollout", "status", "-n", namespace, "ds/agent", "--timeout=90s")
            assert await ready_on() == first

            joined = start("h4")

            async def on_all() -> bool:
                return await ready_on() == {*first, joined}

            await eventually(on_all, timeout=60, message="a ready pod on the joined node")

            leaving = sorted(first)[0]
            agents.pop(leaving).stop()
            await client.delete(NODES, leaving)
            nodes.remove(leaving)

            async def without() -> bool:
                pods = await active_pods(client, namespace, "app=agent")
                status = (await client.get(DAEMON_SETS, "agent", namespace)).get("status") or {}
                return (
                    {p["spec"].get("nodeName") for p in pods} == {*first, joined} - {leaving}
                    and status.get("desiredNumberScheduled") == 3
                    and status.get("numberReady") == 3
                )

            await eventually(without, timeout=30, message="the removed node's pod gone")
            await kubectl("rollout", "status", "-n", namespace, "ds/agent", "--timeout=30s")
    finally:
        for agent in agents.values():
            agent.stop()
