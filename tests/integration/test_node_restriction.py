"""NodeRestriction against the real API server: what a node's certificate may change.

Node A holds a certificate for ``system:node:A`` in ``system:nodes``, exactly
what an agent gets when it joins. Each refusal is a 403 ``Status`` naming the
field; each allowed write is one the agent needs. The writes go through every
path admission must see: PUT, merge, strategic and JSON patches, ``/status``,
delete and eviction, and the agent's gRPC registration.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.rest import Client
from corral.objects import Obj
from corral.proto import agent_pb2, agent_pb2_grpc
from tests.conftest import LocalCluster, unique_name
from tests.integration.test_security import (
    Caller,
    _grpc_channel,
    busybox_pod,
    node_identity,
    poll,
    wait_allowed,
)

pytestmark = pytest.mark.integration

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
ADDRESSES = [{"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "a"}]
TAINT = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


def _rt(api_version: str, kind: str) -> ResourceType:
    rt = REGISTRY.by_kind(api_version, kind)
    assert rt is not None
    return rt


NODES = _rt("v1", "Node")
PODS = _rt("v1", "Pod")
CLUSTERROLES = _rt("rbac.authorization.k8s.io/v1", "ClusterRole")
CLUSTERROLEBINDINGS = _rt("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")


async def send(
    call: Caller, method: str, path: str, body: Any, content_type: str
) -> tuple[int, Obj]:
    """Like ``Caller``, with the patch type chosen (Caller always sends a merge patch)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            call.cluster.url + path,
            ssl=call.context,
            headers={**call.headers, "Content-Type": content_type},
            data=io.BytesIO(json.dumps(body).encode()),
        ) as response,
    ):
        raw = await response.read()
    return response.status, json.loads(raw) if raw else {}


def assert_forbidden(answer: tuple[int, Obj], field: str, *words: str) -> None:
    code, status = answer
    assert code == 403, status
    assert status["kind"] == "Status" and status["reason"] == "Forbidden", status
    fields = [cause.get("field") for cause in status.get("details", {}).get("causes", [])]
    assert field in fields, status
    for word in words:
        assert word in status["message"], status


@pytest.fixture
def as_node(cluster: LocalCluster, tmp_path: Path) -> Callable[[str], Caller]:
    """Raw HTTPS as node N, with the certificate an agent gets when it joins."""

    def make(node: str) -> Caller:
        return Caller(cluster, tmp_path, node_identity(cluster, node), "")

    return make


@pytest.fixture
async def nodes(client: Client, namespace: str) -> AsyncIterator[Obj]:
    """Node A (registered: an admin's role label and taint, its address) and node B."""
    a, b = unique_name("nr-a"), unique_name("nr-b")
    await client.create(
        NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": a,
                "labels": {"node-role.kubernetes.io/worker": "", "kubernetes.io/hostname": a},
            },
            "spec": {"taints": [TAINT]},
            "status": {"addresses": ADDRESSES},
        },
    )
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": b}})
    await client.create(PODS, busybox_pod("on-a", a), namespace)
    await client.create(PODS, busybox_pod("on-b", b), namespace)
    yield {"a": a, "b": b, "ns": namespace}
    for name in (a, b):
        try:
            await client.delete(NODES, name)
        except ApiError as error:
            if error.code != 404:
                raise


async def test_a_node_may_not_steer_workloads_to_itself_over_rest(
    cluster: LocalCluster, client: Client, nodes: Obj, as_node: Callable[[str], Caller]
) -> None:
    a, b = nodes["a"], nodes["b"]
    node_a = as_node(a)
    own = f"/api/v1/nodes/{a}"
    code, current = await wait_allowed(node_a, own)
    assert code == 200

    def label(key: str) -> str:
        return f"metadata.labels[{key}]"

    master, restricted = "node-role.kubernetes.io/master", "node-restriction.kubernetes.io/x"
    sub_restricted = "foo.node-restriction.kubernetes.io/x"
    worker = "node-role.kubernetes.io/worker"
    assert_forbidden(
        await send(node_a, "PATCH", own, {"metadata": {"labels": {master: ""}}}, MERGE),
        label(master),
        f'node "{a}" is not allowed to modify labels: {master}',
    )
    assert_forbidden(
        await send(node_a, "PATCH", own, {"metadata": {"labels": {restricted: "y"}}}, STRATEGIC),
        label(restricted),
    )
    add_sub = [
        {
            "op": "add",
            "path": "/metadata/labels/foo.node-restriction.kubernetes.io~1x",
            "value": "y",
        }
    ]
    assert_forbidden(await send(node_a, "PATCH", own, add_sub, JSON_PATCH), label(sub_restricted))
    assert_forbidden(
        await send(node_a, "PATCH", own, {"metadata": {"labels": {worker: None}}}, MERGE),
        label(worker),
    )
    replaced = {**current, "metadata": {**current["metadata"]}}
    replaced["metadata"]["labels"] = {**current["metadata"]["labels"], master: ""}
    assert_forbidden(await send(node_a, "PUT", own, replaced, "application/json"), label(master))
    assert_forbidden(
        await send(node_a, "PATCH", own, {"spec": {"taints": []}}, MERGE),
        "spec.taints",
        "is not allowed to modify taints",
    )
    assert_forbidden(
        await send(node_a, "PATCH", own, {"spec": {"unschedulable": True}}, STRATEGIC),
        "spec.unschedulable",
    )
    moved = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.6"}]}}
    assert_forbidden(await send(node_a, "PATCH", own + "/status", moved, MERGE), "status.addresses")
    # /status keeps metadata as stored, so labels cannot come in that way either.
    relabel = {"metadata": {"labels": {master: ""}}}
    code, answer = await send(node_a, "PATCH", own + "/status", relabel, MERGE)
    assert code == 200 and master not in answer["metadata"]["labels"], answer
    # Another node's Node: the node authorizer refuses before admission is asked.
    for method, path, body in (
        ("PATCH", f"/api/v1/nodes/{b}", {"metadata": {"labels": {"x": "y"}}}),
        ("DELETE", f"/api/v1/nodes/{b}", None),
    ):
        code, status = await node_a(method, path, body)
        assert code == 403 and status["reason"] == "Forbidden", (method, status)
        assert f"no relationship found between node '{a}' and this object" in status["message"]

    stored = await client.get(NODES, a)
    assert stored["metadata"]["labels"] == {worker: "", "kubernetes.io/hostname": a}
    assert stored["spec"]["taints"] == [TAINT]
    assert stored["status"]["addresses"] == ADDRESSES

    # What the agent needs still works: its own conditions, its kubelet labels.
    ready = {"type": "Ready", "status": "True", "reason": "AgentReady", "message": "ok"}
    code, status = await send(
        node_a, "PATCH", own + "/status", {"status": {"conditions": [ready]}}, STRATEGIC
    )
    assert code == 200, status
    hostname = {"metadata": {"labels": {"kubernetes.io/hostname": "a-renamed", "disk": "ssd"}}}
    code, status = await send(node_a, "PATCH", own, hostname, MERGE)
    assert code == 200, status
    stored = await client.get(NODES, a)
    assert stored["status"]["conditions"][0]["type"] == "Ready"
    assert stored["metadata"]["labels"]["kubernetes.io/hostname"] == "a-renamed"
    assert stored["metadata"]["labels"]["disk"] == "ssd"


async def test_a_node_registers_over_rest_only_with_kubelet_labels(
    cluster: LocalCluster, client: Client, as_node: Callable[[str], Caller]
) -> None:
    c = unique_name("nr-c")
    node_c = as_node(c)

    def body(labels: dict[str, str], name: str = c) -> Obj:
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}

    master = "node-role.kubernetes.io/master"
    assert_forbidden(
        await node_c("POST", "/api/v1/nodes", body({"kubernetes.io/hostname": c, master: ""})),
        f"metadata.labels[{master}]",
        f'node "{c}" is not allowed to set the following labels: {master}',
    )
    assert_forbidden(await node_c("POST", "/api/v1/nodes", body({}, c + "-other")), "metadata.name")
    pod_cidr = {**body({}), "spec": {"podCIDR": "10.244.250.0/24"}}
    assert_forbidden(await node_c("POST", "/api/v1/nodes", pod_cidr), "spec.podCIDR")
    code, created = await node_c("POST", "/api/v1/nodes", body({"kubernetes.io/hostname": c}))
    try:
        assert code == 201, created
        assert created["metadata"]["labels"] == {"kubernetes.io/hostname": c}
    finally:
        await client.delete(NODES, c)


@pytest.fixture
async def broad_grant(client: Client, nodes: Obj) -> AsyncIterator[None]:
    """An administrator's mistake: RBAC lets node A write nodes, pods, leases and events.

    The node authorizer has no opinion on these writes, so RBAC allows them;
    NodeRestriction is what still holds.
    """
    name = unique_name("nr-broad")
    group = "rbac.authorization.k8s.io"
    rule = {
        "apiGroups": ["", "coordination.k8s.io"],
        "resources": [
            "nodes",
            "nodes/status",
            "pods",
            "pods/status",
            "pods/eviction",
            "leases",
            "events",
        ],
        "verbs": ["*"],
    }
    await client.create(CLUSTERROLES, {"metadata": {"name": name}, "rules": [rule]})
    await client.create(
        CLUSTERROLEBINDINGS,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "User", "name": f"system:node:{nodes['a']}", "apiGroup": group}],
        },
    )
    yield
    await client.delete(CLUSTERROLEBINDINGS, name)
    await client.delete(CLUSTERROLES, name)


async def test_admission_holds_when_rbac_grants_a_node_too_much(
    cluster: LocalCluster,
    client: Client,
    nodes: Obj,
    broad_grant: None,
    as_node: Callable[[str], Caller],
) -> None:
    a, b, ns = nodes["a"], nodes["b"], nodes["ns"]
    node_a = as_node(a)
    # Listing every pod is RBAC's grant alone: once it answers, the grant counts.
    code, _ = await poll(
        lambda: node_a("GET", f"/api/v1/namespaces/{ns}/pods"), lambda r: r[0] == 200
    )
    assert code == 200

    assert_forbidden(
        await node_a("PATCH", f"/api/v1/nodes/{b}", {"metadata": {"labels": {"x": "y"}}}),
        "metadata.name",
        f'node "{a}" is not allowed to modify node "{b}"',
    )
    assert_forbidden(await node_a("DELETE", f"/api/v1/nodes/{b}", None), "metadata.name")
    assert (await client.get(NODES, b))["metadata"]["name"] == b

    pods = f"/api/v1/namespaces/{ns}/pods"
    assert_forbidden(
        await node_a("POST", pods, busybox_pod("sneaky", a)),
        "metadata.annotations",
        "can only create mirror pods",
    )
    code, status = await node_a("PATCH", f"{pods}/on-a", {"metadata": {"labels": {"app": "db"}}})
    assert code == 403 and "can only create and delete mirror pods" in status["message"], status
    assert_forbidden(
        await node_a("PATCH", f"{pods}/on-b/status", {"status": {"phase": "Failed"}}),
        "spec.nodeName",
    )
    assert_forbidden(await node_a("DELETE", f"{pods}/on-b", None), "spec.nodeName")
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "on-b"}}
    assert_forbidden(
        await node_a("POST", f"{pods}/on-b/eviction", eviction), "spec.nodeName", "can only evict"
    )
    pod_b = await client.get(PODS, "on-b", ns)
    assert "deletionTimestamp" not in pod_b["metadata"]

    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": b},
        "spec": {"holderIdentity": b},
    }
    assert_forbidden(
        await node_a(
            "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease
        ),
        "metadata.name",
    )

    def event(kind: str, name: str) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": unique_name("ev")},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns},
            "reason": "Test",
            "message": "about someone",
        }

    events = f"/api/v1/namespaces/{ns}/events"
    assert_forbidden(await node_a("POST", events, event("Node", b)), "involvedObject")
    assert_forbidden(await node_a("POST", events, event("Pod", "on-b")), "involvedObject")
    for allowed in (event("Node", a), event("Pod", "on-a")):
        code, status = await node_a("POST", events, allowed)
        assert code == 201, status

    # Its own pod it may still delete, as the agent confirms a graceful deletion.
    code, status = await node_a("DELETE", f"{pods}/on-a", None)
    assert code == 200, status


async def _register(
    cluster: LocalCluster, node: str, labels: dict[str, str], addresses: list[Obj]
) -> grpc.aio.AioRpcError | agent_pb2.RegisterResponse:
    async with _grpc_channel(cluster, node_identity(cluster, node)) as channel:
        stub = agent_pb2_grpc.NodeControlStub(channel)
        try:
            return await stub.Register(
                agent_pb2.RegisterRequest(
                    node_name=node,
                    labels=labels,
                    addresses=[agent_pb2.Address(**a) for a in addresses],
                    conditions=[agent_pb2.Condition(type="Ready", status="True", reason="R")],
                ),
                timeout=15,
            )
        except grpc.aio.AioRpcError as error:
            return error


async def test_grpc_registration_refuses_restricted_labels_and_moved_addresses(
    cluster: LocalCluster, client: Client, nodes: Obj
) -> None:
    a = nodes["a"]
    master = "node-role.kubernetes.io/master"
    refused = await _register(cluster, a, {"kubernetes.io/hostname": a, master: ""}, ADDRESSES)
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert master in (refused.details() or "")
    assert master not in (await client.get(NODES, a))["metadata"]["labels"]

    moved = [{"type": "InternalIP", "address": "10.0.0.99"}]
    refused = await _register(cluster, a, {"kubernetes.io/hostname": a}, moved)
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "status.addresses" in (refused.details() or "")

    registered = await _register(
        cluster, a, {"kubernetes.io/hostname": a, "disk": "ssd"}, ADDRESSES
    )
    assert isinstance(registered, agent_pb2.RegisterResponse), registered
    stored = await client.get(NODES, a)
    assert stored["metadata"]["labels"]["disk"] == "ssd"
    assert stored["metadata"]["labels"]["node-role.kubernetes.io/worker"] == ""
    assert stored["status"]["addresses"] == ADDRESSES
    assert stored["status"]["conditions"][0]["type"] == "Ready"

    # A node registering for the first time over gRPC is refused the same labels.
    fresh = unique_name("nr-d")
    refused = await _register(cluster, fresh, {"node-restriction.kubernetes.io/x": "y"}, ADDRESSES)
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "node-restriction.kubernetes.io/x" in (refused.details() or "")
    with pytest.raises(ApiError) as missing:
        await client.get(NODES, fresh)
    assert missing.value.code == 404
