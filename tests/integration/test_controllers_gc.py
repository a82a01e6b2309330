"""Cascading deletion by ownerReferences against a real API server.

Where a pod's graceful termination must be confirmed, the test plays the
node agent (see ``test_controllers_harness``).
"""

from __future__ import annotations

from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.replication import replication_controller
from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.client.rest import Client, resource_path
from corral.objects import Obj
from tests.integration.test_controllers_harness import (
    CONFIGMAPS,
    PODS,
    RCS,
    active_pods,
    bare_pod,
    bind,
    confirm_deletion,
    name_of,
    rc,
    running,
)
from tests.support import eventually


async def _exists(client: Client, rt: ResourceType, name: str, namespace: str) -> bool:
    try:
        await client.get(rt, name, namespace)
    except ApiError as error:
        if error.code == 404:
            return False
        raise
    return True


async def _delete(client: Client, rt: ResourceType, name: str, namespace: str, policy: str) -> None:
    await client.request(
        "DELETE",
        resource_path(rt, namespace, name),
        body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy},
    )


def _ref(owner: Obj, *, block: bool = False) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block,
    }


def _config_map(name: str, *owners: Obj) -> Obj:
    metadata: Obj = {"name": name}
    if owners:
        metadata["ownerReferences"] = list(owners)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


async def _no_pods(client: Client, namespace: str, selector: str) -> bool:
    return not (await client.list(PODS, namespace, label_selector=selector))["items"]


async def test_background_deletes_dependents_once_the_owner_is_gone(
    client: Client, namespace: str
) -> None:
    await client.create(RCS, rc("bg", 3), namespace)
    async with running(client, namespace, replication_controller, GarbageCollector):
        await eventually(lambda: _has(client, namespace, "app=bg", 3), message="3 pods from the RC")
        await _delete(client, RCS, "bg", namespace, "Background")
        assert not await _exists(client, RCS, "bg", namespace)
        await eventually(lambda: _no_pods(client, namespace, "app=bg"), message="pods collected")


async def test_foreground_removes_dependents_before_the_owner(
    client: Client, namespace: str
) -> None:
    """The test plays the scheduler (binding) and the agent (confirming terminations)."""
    await client.create(RCS, rc("fg", 2), namespace)
    async with running(client, namespace, replication_controller, GarbageCollector):
        await eventually(lambda: _has(client, namespace, "app=fg", 2), message="2 pods")
        for pod in await active_pods(client, namespace, "app=fg"):
            await bind(client, pod, "node-gc")
        await _delete(client, RCS, "fg", namespace, "Foreground")

        async def pods_terminating() -> list[Obj] | None:
            pods = (await client.list(PODS, namespace, label_selector="app=fg"))["items"]
            terminating = [p for p in pods if p["metadata"].get("deletionTimestamp")]
            return pods if pods and len(terminating) == len(pods) else None

        # Bound pods terminate gracefully; until the agent confirms, the RC waits.
        lingering: list[Obj] = await eventually(pods_terminating, message="pods terminating")
        owner = await client.get(RCS, "fg", namespace)
        assert "foregroundDeletion" in owner["metadata"]["finalizers"]
        assert owner["metadata"].get("deletionTimestamp")
        assert len(lingering) == 2  # no replacements for an RC being deleted

        for pod in lingering:
            await confirm_deletion(client, pod)
        await eventually(
            lambda: _gone(client, RCS, "fg", namespace), message="the RC removed after its pods"
        )


async def test_orphan_keeps_dependents_without_the_reference(
    client: Client, namespace: str
) -> None:
    await client.create(RCS, rc("orph", 2), namespace)
    async with running(client, namespace, replication_controller, GarbageCollector):
        await eventually(lambda: _has(client, namespace, "app=orph", 2), message="2 pods")
        await _delete(client, RCS, "orph", namespace, "Orphan")
        await eventually(lambda: _gone(client, RCS, "orph", namespace), message="the RC removed")
        pods = await active_pods(client, namespace, "app=orph")
        assert len(pods) == 2
        assert all(not p["metadata"].get("ownerReferences") for p in pods)


async def test_any_kind_cascades_and_surviving_owners_keep_a_dependent(
    client: Client, namespace: str
) -> None:
    parent = await client.create(CONFIGMAPS, _config_map("parent"), namespace)
    other = await client.create(CONFIGMAPS, _config_map("other"), namespace)
    await client.create(CONFIGMAPS, _config_map("child", _ref(parent)), namespace)
    await client.create(CONFIGMAPS, _config_map("shared", _ref(parent), _ref(other)), namespace)
    async with running(client, namespace, GarbageCollector):
        await _delete(client, CONFIGMAPS, "parent", namespace, "Background")
        await eventually(
            lambda: _gone(client, CONFIGMAPS, "child", namespace), message="the child collected"
        )

        async def shared_refs() -> list[str] | None:
            shared = await client.get(CONFIGMAPS, "shared", namespace)
            names = [r["name"] for r in shared["metadata"].get("ownerReferences") or []]
            return names if names == ["other"] else None

        await eventually(shared_refs, message="the dangling reference dropped")


async def test_dependent_of_an_owner_that_never_existed_is_collected(
    client: Client, namespace: str
) -> None:
    ghost = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "name": "ghost",
        "uid": "00000000-0000-0000-0000-000000000000",
    }
    pod = bare_pod("haunted")
    pod["metadata"]["ownerReferences"] = [ghost]
    await client.create(PODS, pod, namespace)
    keeper = bare_pod("kept")
    keeper["metadata"]["ownerReferences"] = [{**ghost, "kind": "NoSuchKind"}]
    await client.create(PODS, keeper, namespace)
    async with running(client, namespace, GarbageCollector):
        await eventually(
            lambda: _gone(client, PODS, "haunted", namespace), message="the pod collected"
        )
        # An owner kind the API does not serve cannot be resolved: never collected.
        assert await _exists(client, PODS, name_of(keeper), namespace)


async def _has(client: Client, namespace: str, selector: str, count: int) -> bool:
    return len(await active_pods(client, namespace, selector)) == count


async def _gone(client: Client, rt: ResourceType, name: str, namespace: str) -> bool:
    return not await _exists(client, rt, name, namespace)
