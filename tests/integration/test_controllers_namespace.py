"""Namespace deletion against a real API server.

Where a bound pod's graceful termination must be confirmed, the test plays
the node agent (see ``test_controllers_harness``).
"""

from __future__ import annotations

from controlplane.controllers.namespace import NamespaceController
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.objects import Obj
from tests.conftest import unique_name
from tests.integration.test_controllers_harness import (
    CONFIGMAPS,
    NAMESPACES,
    PODS,
    RCS,
    bare_pod,
    bind,
    confirm_deletion,
    rc,
    running,
)
from tests.support import eventually


async def _namespace(client: Client) -> str:
    name = unique_name("doomed")
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def _gone(client: Client, name: str) -> bool:
    try:
        await client.get(NAMESPACES, name)
    except ApiError as error:
        if error.code == 404:
            return True
        raise
    return False


def _condition(namespace: Obj, kind: str) -> Obj:
    for condition in (namespace.get("status") or {}).get("conditions") or []:
        if condition["type"] == kind:
            found: Obj = condition
            return found
    return {}


async def test_deleting_a_namespace_empties_and_removes_it(client: Client) -> None:
    name = await _namespace(client)
    await client.create(RCS, rc("web", 2), name)
    await client.create(CONFIGMAPS, {"metadata": {"name": "settings"}, "data": {"a": "b"}}, name)
    await client.create(PODS, bare_pod("loose"), name)
    async with running(client, name, NamespaceController):
        await client.delete(NAMESPACES, name)
        await eventually(lambda: _gone(client, name), message="the namespace removed")
    for rt in (RCS, CONFIGMAPS, PODS):
        assert (await client.list(rt, name))["items"] == []


async def test_namespace_waits_for_graceful_pods_and_finalizers(client: Client) -> None:
    """The test plays the scheduler (binding) and the agent (confirming the termination)."""
    name = await _namespace(client)
    bound = await client.create(PODS, bare_pod("bound"), name)
    await bind(client, bound, "node-ns")
    held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {}}
    await client.create(CONFIGMAPS, held, name)
    async with running(client, name, NamespaceController):
        await client.delete(NAMESPACES, name)

        async def waiting() -> Obj | None:
            namespace = await client.get(NAMESPACES, name)
            remaining = _condition(namespace, "NamespaceContentRemaining")
            finalizers = _condition(namespace, "NamespaceFinalizersRemaining")
            if remaining.get("status") == "True" and finalizers.get("status") == "True":
                return namespace
            return None

        namespace: Obj = await eventually(waiting, message="conditions saying what remains")
        assert namespace["status"]["phase"] == "Terminating"
        message = _condition(namespace, "NamespaceFinalizersRemaining")["message"]
        assert "example.com/hold in 1 resource instances" in message
        pod = await client.get(PODS, "bound", name)
        assert pod["metadata"].get("deletionTimestamp")  # deleted, terminating gracefully

        await confirm_deletion(client, pod)
        await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, name)
        await eventually(lambda: _gone(client, name), timeout=15, message="the namespace removed")


async def test_nothing_can_be_created_in_a_terminating_namespace(client: Client) -> None:
    name = await _namespace(client)
    held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {}}
    await client.create(CONFIGMAPS, held, name)
    async with running(client, name, NamespaceController):
        await client.delete(NAMESPACES, name)
        try:
            await client.create(CONFIGMAPS, {"metadata": {"name": "late"}}, name)
        except ApiError as error:
            assert error.code == 403
        else:
            raise AssertionError("created an object in a terminating namespace")
        await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, name)
        await eventually(lambda: _gone(client, name), timeout=15, message="the namespace removed")
