"""The StatefulSet controller against a real API server.

The test plays the node agent (pods are made Running and Ready by hand, or
by ``fake_agent``), as the other controller tests do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.statefulset import StatefulSetController
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.informer import Informer, wait_synced
from corral.objects import Obj
from tests.integration.test_controllers_harness import (
    PODS,
    active_pods,
    fake_agent,
    name_of,
    pod_template,
    rt,
    running,
    set_ready,
)
from tests.support import eventually

STS = rt("StatefulSet", "apps/v1")
REVISIONS = rt("ControllerRevision", "apps/v1")
SERVICES = rt("Service")


def stateful_set(
    name: str,
    replicas: int,
    *,
    policy: str = "OrderedReady",
    partition: int | None = None,
    claims: list[Obj] | None = None,
) -> Obj:
    labels = {"app": name}
    spec: Obj = {
        "replicas": replicas,
        "serviceName": name,
        "selector": {"matchLabels": labels},
        "template": pod_template(labels, grace=5),
        "podManagementPolicy": policy,
    }
    if partition is not None:
        spec["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"partition": partition},
        }
    if claims:
        spec["volumeClaimTemplates"] = claims
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": spec,
    }


async def names(client: Client, namespace: str, app: str) -> list[str]:
    return sorted(name_of(p) for p in await active_pods(client, namespace, f"app={app}"))


async def status_of(client: Client, namespace: str, name: str) -> Obj:
    found: Obj = (await client.get(STS, name, namespace)).get("status") or {}
    return found


async def observed(client: Client, namespace: str, name: str, **wanted: Any) -> bool:
    current = await client.get(STS, name, namespace)
    status = current.get("status") or {}
    if status.get("observedGeneration") != current["metadata"].get("generation"):
        return False
    # Zero counts are left out of a status, as Kubernetes' JSON leaves them out.
    return all(status.get(k, 0 if isinstance(v, int) else None) == v for k, v in wanted.items())


async def make_ready(client: Client, namespace: str, name: str, ip: str) -> None:
    pod = await client.get(PODS, name, namespace)
    await set_ready(client, pod, ip)


@contextlib.asynccontextmanager
async def deletions(client: Client, namespace: str) -> AsyncIterator[list[str]]:
    """The names of pods as they start terminating, in order."""
    seen: list[str] = []
    uids: set[str] = set()
    informer = Informer(client, PODS, namespace=namespace)

    def noted(pod: Obj, gone: bool = False) -> None:
        # Unbound pods are deleted at once (no agent to wait for): some are
        # only ever seen gone, never terminating.
        uid = pod["metadata"]["uid"]
        if (gone or pod["metadata"].get("deletionTimestamp")) and uid not in uids:
            uids.add(uid)
            seen.append(name_of(pod))

    informer.add_handlers(
        on_add=noted,
        on_update=lambda _old, new: noted(new),
        on_delete=lambda p: noted(p, gone=True),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    try:
        await wait_synced([informer], 10)
        yield seen
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_ordered_creation_waits_for_each_pod_to_be_ready(
    client: Client, namespace: str
) -> None:
    await client.create(STS, stateful_set("db", 3), namespace)
    async with running(client, namespace, StatefulSetController):
        await eventually(lambda: observed(client, namespace, "db", replicas=1), message="db-0")
        # The controller has seen its own create: it waits for db-0 to be Ready.
        assert await names(client, namespace, "db") == ["db-0"]
        first = await client.get(PODS, "db-0", namespace)
        owner = await client.get(STS, "db", namespace)
        labels = first["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == "db-0"
        assert labels["apps.kubernetes.io/pod-index"] == "0"
        assert labels["controller-revision-hash"] == owner["status"]["updateRevision"]
        assert first["spec"]["hostname"] == "db-0" and first["spec"]["subdomain"] == "db"
        assert [r["uid"] for r in first["metadata"]["ownerReferences"]] == [
            owner["metadata"]["uid"]
        ]

        await make_ready(client, namespace, "db-0", "10.250.0.1")
        await eventually(lambda: observed(client, namespace, "db", replicas=2), message="db-1")
        assert await names(client, namespace, "db") == ["db-0", "db-1"]
        await make_ready(client, namespace, "db-1", "10.250.0.2")
        await eventually(lambda: observed(client, namespace, "db", replicas=3), message="db-2")
        await make_ready(client, namespace, "db-2", "10.250.0.3")
        await eventually(
            lambda: observed(client, namespace, "db", readyReplicas=3, updatedReplicas=3),
            message="3 ready",
        )
        status = await status_of(client, namespace, "db")
        assert status["currentRevision"] == status["updateRevision"]
        assert status["currentReplicas"] == 3 and status["availableReplicas"] == 3
        revisions = await client.list(REVISIONS, namespace)
        assert [name_of(r) for r in revisions["items"]] == [status["updateRevision"]]


async def test_parallel_creates_all_at_once(client: Client, namespace: str) -> None:
    await client.create(STS, stateful_set("par", 3, policy="Parallel"), namespace)
    async with running(client, namespace, StatefulSetController):
        await eventually(
            lambda: observed(client, namespace, "par", replicas=3), message="3 pods at once"
        )
        assert await names(client, namespace, "par") == ["par-0", "par-1", "par-2"]


async def test_scale_down_goes_from_the_highest_ordinal_one_at_a_time(
    client: Client, namespace: str
) -> None:
    await client.create(STS, stateful_set("web", 4), namespace)
    async with fake_agent(client, namespace), running(client, namespace, StatefulSetController):
        await eventually(
            lambda: observed(client, namespace, "web", readyReplicas=4), message="4 ready"
        )
        async with deletions(client, namespace) as seen:
            await client.patch(
                STS, "web", {"spec": {"replicas": 1}}, namespace, subresource="scale"
            )
            await eventually(
                lambda: observed(client, namespace, "web", replicas=1, readyReplicas=1),
                message="scaled to 1",
            )
        assert seen == ["web-3", "web-2", "web-1"]
        assert await names(client, namespace, "web") == ["web-0"]


async def test_a_deleted_or_failed_pod_comes_back_with_the_same_name(
    client: Client, namespace: str
) -> None:
    await client.create(STS, stateful_set("keep", 2), namespace)
    async with fake_agent(client, namespace), running(client, namespace, StatefulSetController):
        await eventually(
            lambda: observed(client, namespace, "keep", readyReplicas=2), message="2 ready"
        )
        before = await client.get(PODS, "keep-1", namespace)
        await client.delete(PODS, "keep-1", namespace)

        async def replaced(old_uid: str) -> bool:
            try:
                pod = await client.get(PODS, "keep-1", namespace)
            except ApiError:
                return False
            return bool(pod["metadata"]["uid"] != old_uid and pod.get("status", {}).get("podIP"))

        await eventually(lambda: replaced(before["metadata"]["uid"]), message="a new keep-1")
        again = await client.get(PODS, "keep-1", namespace)
        assert again["spec"]["hostname"] == "keep-1"

        # A pod that failed is deleted and recreated under its name.
        await client.patch(
            PODS,
            "keep-1",
            {"status": {"phase": "Failed", "conditions": []}},
            namespace,
            patch_type="merge",
            subresource="status",
        )
        await eventually(lambda: replaced(again["metadata"]["uid"]), message="failed keep-1 back")


async def test_partitioned_rolling_update_from_the_highest_ordinal(
    client: Client, namespace: str
) -> None:
    await client.create(STS, stateful_set("roll", 3, partition=2), namespace)
    async with fake_agent(client, namespace), running(client, namespace, StatefulSetController):
        await eventually(
            lambda: observed(client, namespace, "roll", readyReplicas=3), message="3 ready"
        )
        old = (await status_of(client, namespace, "roll"))["currentRevision"]
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "v2"}]}}}}
        async with deletions(client, namespace) as seen:
            await client.patch(STS, "roll", patch, namespace, patch_type="strategic")
            await eventually(
                lambda: observed(client, namespace, "roll", updatedReplicas=1, readyReplicas=3),
                message="roll-2 updated",
            )
            status = await status_of(client, namespace, "roll")
            new = status["updateRevision"]
            assert new != old and status["currentRevision"] == old
            assert seen == ["roll-2"]
            images = {
                name_of(p): p["spec"]["containers"][0]["image"]
                for p in await active_pods(client, namespace, "app=roll")
            }
            assert images == {"roll-0": "busybox:1.36", "roll-1": "busybox:1.36", "roll-2": "v2"}

            # Below the partition, a recreated pod keeps the old revision.
            await client.delete(PODS, "roll-0", namespace)

            async def back_old() -> bool:
                pods = {name_of(p): p for p in await active_pods(client, namespace, "app=roll")}
                pod = pods.get("roll-0")
                return bool(pod and pod.get("status", {}).get("podIP")) and (
                    pod["metadata"]["labels"]["controller-revision-hash"] == old
                )

            await eventually(back_old, message="roll-0 recreated at the old revision")

            await client.patch(
                STS,
                "roll",
                {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
                namespace,
                patch_type="merge",
            )
            await eventually(
                lambda: observed(
                    client,
                    namespace,
                    "roll",
                    updatedReplicas=3,
                    readyReplicas=3,
                    currentRevision=new,
                ),
                message="rollout complete",
                timeout=20,
            )
        assert seen == ["roll-2", "roll-0", "roll-1", "roll-0"]
        revisions = await client.list(REVISIONS, namespace)
        numbers = sorted((r["revision"], name_of(r)) for r in revisions["items"])
        assert numbers == [(1, old), (2, new)]


async def test_on_delete_changes_a_pod_only_when_it_is_deleted(
    client: Client, namespace: str
) -> None:
    sts = stateful_set("od", 2)
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    await client.create(STS, sts, namespace)
    async with fake_agent(client, namespace), running(client, namespace, StatefulSetController):
        await eventually(lambda: observed(client, namespace, "od", readyReplicas=2), message="2")
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "v2"}]}}}}
        await client.patch(STS, "od", patch, namespace, patch_type="strategic")
        await eventually(
            lambda: observed(client, namespace, "od", updatedReplicas=0, currentReplicas=2),
            message="spec seen, nothing replaced",
        )
        await client.delete(PODS, "od-0", namespace)
        await eventually(
            lambda: observed(client, namespace, "od", updatedReplicas=1, readyReplicas=2),
            message="od-0 on the new revision",
        )


async def test_garbage_collection_takes_pods_and_revisions(client: Client, namespace: str) -> None:
    await client.create(STS, stateful_set("gone", 2, policy="Parallel"), namespace)
    async with (
        fake_agent(client, namespace),
        running(client, namespace, StatefulSetController, GarbageCollector),
    ):
        await eventually(lambda: observed(client, namespace, "gone", readyReplicas=2), message="2")
        await client.delete(STS, "gone", namespace)

        async def all_gone() -> bool:
            revisions = await client.list(REVISIONS, namespace)
            return not await names(client, namespace, "gone") and not revisions["items"]

        await eventually(all_gone, message="pods and revisions collected", timeout=20)


def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


async def test_kubectl_get_scale_and_rollout_status(
    client: Client, namespace: str, kubectl_env: dict[str, str]
) -> None:
    ns = ["-n", namespace]
    await client.create(STS, stateful_set("kc", 2), namespace)
    async with fake_agent(client, namespace), running(client, namespace, StatefulSetController):
        await eventually(lambda: observed(client, namespace, "kc", readyReplicas=2), message="2")
        table = await asyncio.to_thread(kubectl, kubectl_env, "get", "sts", *ns)
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["NAME", "READY", "AGE"]
        assert lines[1].split()[:2] == ["kc", "2/2"]
        rolled = await asyncio.to_thread(
            kubectl, kubectl_env, "rollout", "status", "sts/kc", "--timeout=30s", *ns
        )
        assert "partitioned roll out complete: 2 new pods have been updated" in rolled.stdout
        scaled = await asyncio.to_thread(
            kubectl, kubectl_env, "scale", "sts", "kc", "--replicas=3", *ns
        )
        assert "statefulset.apps/kc scaled" in scaled.stdout
        await eventually(lambda: observed(client, namespace, "kc", readyReplicas=3), message="3")
        history = await asyncio.to_thread(
            kubectl, kubectl_env, "rollout", "history", "statefulset/kc", *ns
        )
        assert history.stdout.split("\n")[1].split() == ["REVISION", "CHANGE-CAUSE"]
        assert history.stdout.split("\n")[2].split() == ["1", "<none>"]
        image = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "v2"}]}}}}
        await client.patch(STS, "kc", image, namespace, patch_type="strategic")
        await eventually(
            lambda: observed(client, namespace, "kc", updatedReplicas=3, readyReplicas=3),
            message="rolled to v2",
            timeout=20,
        )
        undone = await asyncio.to_thread(kubectl, kubectl_env, "rollout", "undo", "sts/kc", *ns)
        assert "statefulset.apps/kc rolled back" in undone.stdout
        back = await client.get(STS, "kc", namespace)
        assert back["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
        await eventually(
            lambda: observed(client, namespace, "kc", updatedReplicas=3, readyReplicas=3),
            message="rolled back",
            timeout=20,
        )
        revisions = (await client.list(REVISIONS, namespace))["items"]
        # Going back reuses revision 1's object, renumbered 3.
        assert sorted(r["revision"] for r in revisions) == [2, 3]
        shown = json.loads(
            (
                await asyncio.to_thread(kubectl, kubectl_env, "get", "sts", "kc", "-o", "json", *ns)
            ).stdout
        )
        assert shown["status"]["replicas"] == 3


async def test_python_client_apps_v1(client: Client, namespace: str, cluster: Any) -> None:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    def create_and_read() -> tuple[str, int]:
        api = k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
        body = stateful_set("pyc", 1)
        api.create_namespaced_stateful_set(namespace, body)
        api.patch_namespaced_stateful_set_scale(
            namespace=namespace, name="pyc", body={"spec": {"replicas": 2}}
        )
        read = api.read_namespaced_stateful_set("pyc", namespace)
        listed = api.list_namespaced_stateful_set(namespace)
        assert [s.metadata.name for s in listed.items] == ["pyc"]
        return read.spec.service_name, read.spec.replicas

    assert await asyncio.to_thread(create_and_read) == ("pyc", 2)
    async with fake_agent(client, namespace), running(client, namespace, StatefulSetController):
        await eventually(lambda: observed(client, namespace, "pyc", readyReplicas=2), message="2")

    def revisions() -> list[str]:
        api = k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
        return [r.metadata.name for r in api.list_namespaced_controller_revision(namespace).items]

    assert len(await asyncio.to_thread(revisions)) == 1


async def test_invalid_and_immutable_fields_are_422_naming_the_field(
    client: Client, namespace: str
) -> None:
    bad = stateful_set("bad", -1)
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    try:
        await client.create(STS, bad, namespace)
    except ApiError as error:
        assert error.code == 422
        fields = {c.field for c in error.causes}
        assert {"spec.replicas", "spec.template.metadata.labels"} <= fields, fields
    else:
        raise AssertionError("an invalid StatefulSet was accepted")
    await client.create(STS, stateful_set("fixed", 1), namespace)
    try:
        await client.patch(STS, "fixed", {"spec": {"serviceName": "other"}}, namespace)
    except ApiError as error:
        assert error.code == 422 and "serviceName" in error.message and "spec" in error.message
    else:
        raise AssertionError("serviceName changed")
    await client.patch(STS, "fixed", {"spec": {"replicas": 0}}, namespace)


CLAIMS = rt("PersistentVolumeClaim")
DATA = {
    "metadata": {"name": "data", "labels": {"tier": "db"}},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}


async def test_each_ordinal_gets_its_own_claims_and_keeps_them(
    client: Client, namespace: str
) -> None:
    await client.create(STS, stateful_set("cl", 2, claims=[DATA]), namespace)
    async with fake_agent(client, namespace), running(client, namespace, StatefulSetController):
        await eventually(lambda: observed(client, namespace, "cl", readyReplicas=2), message="2")
        claims = {name_of(c): c for c in (await client.list(CLAIMS, namespace))["items"]}
        assert sorted(claims) == ["data-cl-0", "data-cl-1"]
        assert claims["data-cl-0"]["metadata"]["labels"] == {"tier": "db", "app": "cl"}
        assert claims["data-cl-0"]["spec"]["resources"]["requests"]["storage"] == "1Gi"
        # Retain (the default): the claims belong to nobody, so nothing collects them.
        assert not claims["data-cl-0"]["metadata"].get("ownerReferences")
        pod = await client.get(PODS, "cl-1", namespace)
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "data-cl-1"}

        await client.patch(STS, "cl", {"spec": {"replicas": 1}}, namespace, subresource="scale")
        await eventually(lambda: observed(client, namespace, "cl", replicas=1), message="1 pod")
        await client.patch(STS, "cl", {"spec": {"replicas": 2}}, namespace, subresource="scale")
        await eventually(lambda: observed(client, namespace, "cl", readyReplicas=2), message="2")
        after = {name_of(c): c for c in (await client.list(CLAIMS, namespace))["items"]}
        assert sorted(after) == ["data-cl-0", "data-cl-1"]
        # The same claim, not a new one: cl-1's data waited for the next cl-1.
        assert after["data-cl-1"]["metadata"]["uid"] == claims["data-cl-1"]["metadata"]["uid"]
