"""Who gets in, to what: authentication, RBAC, node authorization, admission, secrets, audit.

Every test talks to a real API server over HTTPS (and its gRPC agent
service over mTLS), with identities issued by the cluster's own CA.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import grpc
import pytest

from corral import pki
from corral.api.resources import REGISTRY, ResourceType
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client
from corral.objects import Obj
from corral.proto import agent_pb2, agent_pb2_grpc
from tests.conftest import LocalCluster, unique_name

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _rt(api_version: str, kind: str) -> ResourceType:
    rt = REGISTRY.by_kind(api_version, kind)
    assert rt is not None
    return rt


PODS = _rt("v1", "Pod")
NODES = _rt("v1", "Node")
SECRETS = _rt("v1", "Secret")
NAMESPACES = _rt("v1", "Namespace")
ROLES = _rt("rbac.authorization.k8s.io/v1", "Role")
ROLEBINDINGS = _rt("rbac.authorization.k8s.io/v1", "RoleBinding")
SERVICEACCOUNTS = _rt("v1", "ServiceAccount")


def identity(cluster: LocalCluster, user: str, groups: tuple[str, ...] = ()) -> pki.KeyPair:
    """A client certificate from the cluster CA: CN is the user, O the groups."""
    return pki.issue(cluster.pki.ca(), user, groups)


def config_for(cluster: LocalCluster, pair: pki.KeyPair | None, token: str = "") -> ClientConfig:
    return ClientConfig(
        server=cluster.url,
        ca_data=cluster.pki.ca_cert.read_bytes(),
        client_cert_data=pair.cert_pem if pair else None,
        client_key_data=pair.key_pem if pair else None,
        token=token or None,
    )


class Caller:
    """Raw HTTPS requests as one identity, for status codes and Status bodies."""

    def __init__(self, cluster: LocalCluster, tmp: Path, pair: pki.KeyPair | None, token: str):
        self.cluster = cluster
        context = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
        if pair is not None:
            cert, key = tmp / f"{id(pair)}.crt", tmp / f"{id(pair)}.key"
            cert.write_bytes(pair.cert_pem)
            key.write_bytes(pair.key_pem)
            context.load_cert_chain(cert, key)
        self.context = context
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def __call__(self, method: str, path: str, body: Obj | None = None) -> tuple[int, Obj]:
        headers = dict(self.headers)
        if body is not None:
            patch = method == "PATCH"
            headers["Content-Type"] = (
                "application/merge-patch+json" if patch else "application/json"
            )
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method,
                self.cluster.url + path,
                ssl=self.context,
                headers=headers,
                data=io.BytesIO(json.dumps(body).encode()) if body is not None else None,
            ) as response,
        ):
            raw = await response.read()
        # The closed session's TLS connection says goodbye over the next few
        # turns of the loop; a test's loop that ends first leaves its socket to
        # a finalizer, whose ResourceWarning fails whichever test runs then.
        await asyncio.sleep(0.01)
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError:
            decoded = {"raw": raw.decode(errors="replace")}
        return response.status, decoded if isinstance(decoded, dict) else {"items": decoded}


@pytest.fixture
def caller(cluster: LocalCluster, tmp_path: Path) -> Callable[..., Caller]:
    def make(pair: pki.KeyPair | None = None, token: str = "") -> Caller:
        return Caller(cluster, tmp_path, pair, token)

    return make


def busybox_pod(name: str, node: str = "", **spec: Any) -> Obj:
    pod_spec: Obj = {"containers": [{"name": "c", "image": "busybox:1"}], **spec}
    if node:
        pod_spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec}


def binding(name: str, role_kind: str, role: str, user: str) -> Obj:
    group = "rbac.authorization.k8s.io"
    return {
        "apiVersion": f"{group}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": group, "kind": role_kind, "name": role},
        "subjects": [{"kind": "User", "name": user, "apiGroup": group}],
    }


async def poll(ask: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """Ask until ``done`` holds or 10 s pass; the last answer either way, for the asserts.

    RBAC and the token index read from the watch cache, so a write takes a
    moment to count.
    """
    deadline = time.monotonic() + 10
    while True:
        answer = await ask()
        if done(answer) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def wait_allowed(call: Caller, path: str) -> tuple[int, Obj]:
    return await poll(lambda: call("GET", path), lambda answer: answer[0] != 403)


# One path per endpoint group; {ns} is the test's namespace.
GROUP_PATHS = {
    "core": "/api/v1/namespaces/{ns}/pods",
    "apps": "/apis/apps/v1/namespaces/{ns}/deployments",
    "policy": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    "rbac": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "subresource": "/api/v1/namespaces/{ns}/pods/web/status",
    "log": "/api/v1/namespaces/{ns}/pods/web/log",
    "exec": "/api/v1/namespaces/{ns}/pods/web/exec?command=true&stdout=true",
}
# What each path needs granted, as an RBAC rule.
GROUP_RULES = {
    "core": {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    "apps": {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
    "policy": {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list"]},
    "rbac": {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["list"]},
    "subresource": {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get"]},
    "log": {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    "exec": {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
}


@pytest.mark.parametrize("group", sorted(GROUP_PATHS))
async def test_each_endpoint_group_answers_401_then_403_then_success(
    group: str,
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    caller: Callable[..., Caller],
) -> None:
    path = GROUP_PATHS[group].format(ns=namespace)
    await client.create(PODS, busybox_pod("web"), namespace)
    method = "POST" if group == "exec" else "GET"

    anonymous = caller()
    code, status = await anonymous(method, path)
    assert code == 401, status
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"

    user = unique_name("dev")
    alice = caller(identity(cluster, user, ("developers",)))
    code, status = await alice(method, path)
    assert code == 403, status
    assert status["reason"] == "Forbidden" and user in status["message"]

    await client.create(
        ROLES,
        {"metadata": {"name": "only-this"}, "rules": [GROUP_RULES[group]]},
        namespace,
    )
    await client.create(
        ROLEBINDINGS,
        binding("only-this", "Role", "only-this", user),
        namespace,
    )
    code, status = await poll(lambda: alice(method, path), lambda answer: answer[0] != 403)
    if group in ("log", "exec"):
        # Authorized: the request goes on to the pod, which no node runs here.
        # The e2e tests stream real logs and exec through an agent.
        assert code not in (401, 403), status
        assert status.get("kind") == "Status" and status["code"] == code, status
    else:
        assert code == 200, status
    # The grant is for this namespace only.
    code, _ = await alice(method, GROUP_PATHS[group].format(ns="default"))
    assert code == 403


async def test_anonymous_reaches_only_health_and_version(caller: Callable[..., Caller]) -> None:
    anonymous = caller()
    for path in ("/healthz", "/readyz", "/version", "/livez"):
        code, _ = await anonymous("GET", path)
        assert code == 200, path
    for path in ("/api", "/apis", "/openapi/v2", "/api/v1/namespaces", "/metrics"):
        code, _ = await anonymous("GET", path)
        assert code == 401, path


async def test_a_wrong_token_and_a_foreign_certificate_are_refused(
    cluster: LocalCluster, caller: Callable[..., Caller]
) -> None:
    code, status = await caller(token="not-a-token")("GET", "/api/v1/namespaces")
    assert code == 401, status
    stranger_ca = pki.new_ca("stranger")
    forged = pki.issue(stranger_ca, "corral-admin", (pki.MASTERS_GROUP,))
    with pytest.raises(aiohttp.ClientError):
        # TLS itself refuses a certificate the cluster CA did not sign.
        await caller(forged)("GET", "/api/v1/namespaces")


async def test_static_and_service_account_tokens_authenticate_and_revoke(
    cluster: LocalCluster, client: Client, namespace: str, caller: Callable[..., Caller]
) -> None:
    admin = caller(token=cluster.pki.admin_token())
    code, _ = await admin("GET", "/api/v1/namespaces")
    assert code == 200

    await client.create(SERVICEACCOUNTS, {"metadata": {"name": "ci"}}, namespace)
    # A TokenRequest bound to a Secret: deleting the Secret revokes the token.
    await client.create(SECRETS, {"metadata": {"name": "ci-token"}}, namespace)
    answer = await client.subresource(
        SERVICEACCOUNTS,
        "ci",
        "token",
        {"spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "ci-token"}}},
        namespace,
    )
    token = answer["status"]["token"]
    ci = caller(token=token)
    code, status = await wait_allowed(ci, f"/api/v1/namespaces/{namespace}/pods")
    assert code == 403 and f"system:serviceaccount:{namespace}:ci" in status["message"]

    await client.delete(SECRETS, "ci-token", namespace)
    code, _ = await poll(
        lambda: ci("GET", f"/api/v1/namespaces/{namespace}/pods"), lambda a: a[0] == 401
    )
    assert code == 401, "a deleted token still authenticates"


async def test_default_roles_view_edit_and_escalation(
    cluster: LocalCluster, client: Client, namespace: str, caller: Callable[..., Caller]
) -> None:
    user = unique_name("viewer")
    viewer = caller(identity(cluster, user))
    await client.create(
        ROLEBINDINGS,
        binding("view", "ClusterRole", "view", user),
        namespace,
    )
    code, _ = await wait_allowed(viewer, f"/api/v1/namespaces/{namespace}/pods")
    assert code == 200
    code, _ = await viewer("POST", f"/api/v1/namespaces/{namespace}/pods", busybox_pod("x"))
    assert code == 403
    code, _ = await viewer("GET", f"/api/v1/namespaces/{namespace}/secrets")
    assert code == 403, "view must not read secrets"

    # A viewer who may create rolebindings still cannot grant itself edit.
    await client.create(
        ROLES,
        {
            "metadata": {"name": "binder"},
            "rules": [
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["rolebindings"],
                    "verbs": ["create"],
                }
            ],
        },
        namespace,
    )
    await client.create(
        ROLEBINDINGS,
        binding("binder", "Role", "binder", user),
        namespace,
    )
    grab = binding("grab", "ClusterRole", "edit", user)
    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"
    code, status = await poll(
        lambda: viewer("POST", path, grab),
        lambda answer: "not currently held" in str(answer[1].get("message")),
    )
    assert code == 403, status
    assert "attempting to grant RBAC permissions not currently held" in status["message"]


# --- node authorization, REST and gRPC ----------------------------------------------------


def node_identity(cluster: LocalCluster, node: str) -> pki.KeyPair:
    return identity(cluster, f"{pki.NODE_USER_PREFIX}{node}", (pki.NODES_GROUP,))


@pytest.fixture
async def two_nodes(cluster: LocalCluster, client: Client, namespace: str) -> AsyncIterator[Obj]:
    a, b = unique_name("node-a"), unique_name("node-b")
    for node in (a, b):
        await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    await client.create(
        SECRETS, {"metadata": {"name": "b-secret"}, "stringData": {"k": "v"}}, namespace
    )
    await client.create(PODS, busybox_pod("on-a", a), namespace)
    pod_b = busybox_pod("on-b", b)
    pod_b["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "b-secret"}}]
    await client.create(PODS, pod_b, namespace)
    yield {"a": a, "b": b, "ns": namespace}
    for node in (a, b):
        await client.delete(NODES, node)


async def test_node_a_cannot_read_or_change_node_b_over_rest(
    cluster: LocalCluster, two_nodes: Obj, caller: Callable[..., Caller]
) -> None:
    a, b, ns = two_nodes["a"], two_nodes["b"], two_nodes["ns"]
    node_a = caller(node_identity(cluster, a))
    code, _ = await wait_allowed(node_a, f"/api/v1/namespaces/{ns}/pods/on-a")
    assert code == 200
    code, _ = await node_a("GET", f"/api/v1/nodes/{a}")
    assert code == 200
    code, _ = await node_a("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{a}")
    assert code == 200

    refused = [
        ("GET", f"/api/v1/namespaces/{ns}/pods/on-b", None),
        ("PATCH", f"/api/v1/namespaces/{ns}/pods/on-b/status", {"status": {"phase": "Failed"}}),
        ("DELETE", f"/api/v1/namespaces/{ns}/pods/on-b", None),
        ("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{b}", None),
        ("GET", "/api/v1/pods", None),
        ("GET", f"/api/v1/nodes/{b}", None),
        ("PATCH", f"/api/v1/nodes/{b}", {"metadata": {"labels": {"x": "y"}}}),
        ("PATCH", f"/api/v1/nodes/{b}/status", {"status": {"phase": "Running"}}),
        ("GET", f"/api/v1/namespaces/{ns}/secrets/b-secret", None),
    ]
    for method, path, body in refused:
        code, status = await node_a(method, path, body)
        assert code == 403, (method, path, status)
    # Node A may not create a Node object named B either (NodeRestriction).
    code, status = await node_a(
        "POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": b + "x"}}
    )
    assert code == 403, status
    node_b = caller(node_identity(cluster, b))
    code, secret = await node_b("GET", f"/api/v1/namespaces/{ns}/secrets/b-secret")
    assert code == 200 and secret["data"]["k"] == base64.b64encode(b"v").decode()


def _grpc_channel(cluster: LocalCluster, pair: pki.KeyPair | None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=cluster.pki.ca_cert.read_bytes(),
        private_key=pair.key_pem if pair else None,
        certificate_chain=pair.cert_pem if pair else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{cluster.apiserver.agent_port}", credentials)


async def _get_object(
    cluster: LocalCluster, pair: pki.KeyPair | None, node: str, ns: str, name: str
) -> grpc.StatusCode:
    async with _grpc_channel(cluster, pair) as channel:
        stub = agent_pb2_grpc.NodeControlStub(channel)
        try:
            reply = await stub.GetObject(
                agent_pb2.ObjectRef(node_name=node, kind="Secret", namespace=ns, name=name),
                timeout=10,
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        assert reply.found
        return grpc.StatusCode.OK


async def test_node_a_cannot_act_for_node_b_over_grpc(
    cluster: LocalCluster, two_nodes: Obj
) -> None:
    a, b, ns = two_nodes["a"], two_nodes["b"], two_nodes["ns"]
    node_b = node_identity(cluster, b)
    node_a = node_identity(cluster, a)
    # The gRPC groups' 401, 403 and success: no certificate, the wrong one, the right one.
    assert await _get_object(cluster, None, b, ns, "b-secret") == grpc.StatusCode.UNAVAILABLE
    stranger = identity(cluster, unique_name("user"), ("developers",))
    assert await _get_object(cluster, stranger, b, ns, "b-secret") == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert await _get_object(cluster, node_a, b, ns, "b-secret") == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert await _get_object(cluster, node_a, a, ns, "b-secret") == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert await _get_object(cluster, node_b, b, ns, "b-secret") == grpc.StatusCode.OK

    async with _grpc_channel(cluster, node_a) as channel:
        stub = agent_pb2_grpc.NodeControlStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ConfirmPodDeleted(
                agent_pb2.PodRef(node_name=b, namespace=ns, name="on-b"), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --- admission -------------------------------------------------------------------------


async def test_baseline_refuses_privileged_and_host_path_naming_each_rule(
    client: Client, namespace: str, caller: Callable[..., Caller], cluster: LocalCluster
) -> None:
    pod = busybox_pod("bad", volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    admin = caller(token=cluster.pki.admin_token())
    code, status = await admin("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert code == 403, status
    message = status["message"]
    assert 'violates PodSecurity "baseline:latest"' in message
    assert "privileged" in message and "hostPath" in message
    assert "root" in message and '"c"' in message  # the volume and the container, by name

    # The same pod is admitted where the namespace's label allows it.
    privileged = unique_name("priv")
    await client.create(
        NAMESPACES,
        {
            "metadata": {
                "name": privileged,
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
            }
        },
    )
    code, status = await admin("POST", f"/api/v1/namespaces/{privileged}/pods", pod)
    assert code == 201, status

    # Restricted asks for more: non-root, no escalation, dropped capabilities, seccomp.
    restricted = unique_name("strict")
    await client.create(
        NAMESPACES,
        {
            "metadata": {
                "name": restricted,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        },
    )
    code, status = await admin("POST", f"/api/v1/namespaces/{restricted}/pods", busybox_pod("p"))
    assert code == 403
    for rule in ("allowPrivilegeEscalation", "runAsNonRoot", "capabilities", "seccompProfile"):
        assert rule in status["message"], rule


async def test_a_stateful_set_with_a_privileged_template_is_refused_like_a_deployment(
    caller: Callable[..., Caller], cluster: LocalCluster, namespace: str
) -> None:
    template = busybox_pod("t")
    template["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": template["spec"]},
        },
    }
    admin = caller(token=cluster.pki.admin_token())
    code, status = await admin("POST", f"/apis/apps/v1/namespaces/{namespace}/statefulsets", sts)
    assert code == 403, status
    assert 'statefulsets.apps "db" is forbidden: violates PodSecurity' in status["message"]


async def test_huge_bodies_are_refused_whole(
    caller: Callable[..., Caller], cluster: LocalCluster, namespace: str
) -> None:
    admin = caller(token=cluster.pki.admin_token())
    big = {"metadata": {"name": "big"}, "data": {"k": "x" * (4 * 1024 * 1024)}}
    code, status = await admin("POST", f"/api/v1/namespaces/{namespace}/configmaps", big)
    assert code == 413, status
    code, _ = await admin("GET", f"/api/v1/namespaces/{namespace}/configmaps/big")
    assert code == 404


# --- secrets at rest, the audit log, kubectl ------------------------------------------------


def _etcdctl(endpoint: str, key: str) -> bytes:
    return subprocess.run(
        ["etcdctl", "--endpoints", endpoint, "get", key, "--print-value-only"],
        check=True,
        capture_output=True,
        env={**os.environ, "ETCDCTL_API": "3"},
        timeout=30,
    ).stdout


def _encryption_tool(*argv: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "controlplane", "encryption", *argv],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def secure_cluster(cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> LocalCluster:
    """A cluster of its own with secrets encrypted at rest and an audit log."""
    keys = tmp_path / "encryption.yaml"
    _encryption_tool("new-config", "--out", str(keys))
    return cluster_factory(
        apiserver_args=(
            "--encryption-provider-config",
            str(keys),
            "--audit-log-path",
            str(tmp_path / "audit.log"),
        )
    )


async def test_secrets_are_ciphertext_in_etcd_and_survive_key_rotation(
    secure_cluster: LocalCluster, tmp_path: Path
) -> None:
    plaintext = "hunter2-" + unique_name("pw")
    async with Client(secure_cluster.client_config()) as admin:
        await admin.create(
            SECRETS, {"metadata": {"name": "db"}, "stringData": {"password": plaintext}}, "default"
        )
        endpoint = secure_cluster.etcd.endpoint
        stored = _etcdctl(endpoint, "/registry/secrets/default/db")
        assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
        assert plaintext.encode() not in stored
        assert base64.b64encode(plaintext.encode()) not in stored

        keys = tmp_path / "encryption.yaml"
        _encryption_tool("add-key", "--config", str(keys), "--key-name", "key2")
        secure_cluster.restart_apiserver()
        _encryption_tool("rewrite", "--config", str(keys), "--etcd", endpoint)
        assert _etcdctl(endpoint, "/registry/secrets/default/db").startswith(
            b"k8s:enc:aesgcm:v1:key2:"
        )
    async with Client(secure_cluster.client_config()) as admin:
        secret = await admin.get(SECRETS, "db", "default")
    assert base64.b64decode(secret["data"]["password"]).decode() == plaintext
    log = secure_cluster.apiserver.log_path.read_text()
    assert plaintext not in log


async def test_every_mutating_request_is_audited(
    secure_cluster: LocalCluster, tmp_path: Path
) -> None:
    name = unique_name("audited")
    async with Client(secure_cluster.client_config()) as admin:
        await admin.create(
            SECRETS, {"metadata": {"name": name}, "stringData": {"k": "sekrit-value"}}, "default"
        )
        await admin.delete(SECRETS, name, "default")
        await admin.get(NAMESPACES, "default")
    audit = tmp_path / "audit.log"

    def mine(events: list[Obj]) -> list[Obj]:
        # A create names no object in its URL, so its objectRef has no name.
        ref = {"resource": "secrets", "namespace": "default", "apiVersion": "v1"}
        return [e for e in events if e.get("objectRef", {}).items() >= ref.items()]

    async def written() -> list[Obj]:
        text = audit.read_text() if audit.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    events = await poll(written, lambda found: len(mine(found)) >= 2)
    found = mine(events)
    assert [e["verb"] for e in found] == ["create", "delete"], found
    assert found[1]["objectRef"]["name"] == name
    for event in found:
        assert event["user"]["username"] == pki.ADMIN_USER
        assert event["responseStatus"]["code"] in (200, 201)
        assert event["requestReceivedTimestamp"] and event["auditID"]
    assert not any(e["verb"] == "get" for e in events), "reads are not audited"
    assert "sekrit-value" not in audit.read_text()


CONFIGMAPS = _rt("v1", "ConfigMap")


async def test_a_burst_is_audited_whole_through_a_graceful_stop(
    secure_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Every create of a burst has its line, the last ones written by the shutdown's flush."""
    burst = 300
    namespace = unique_name("audit-burst")
    async with Client(secure_cluster.client_config()) as admin:
        await admin.create(NAMESPACES, {"metadata": {"name": namespace}})
        gate = asyncio.Semaphore(32)

        async def create(n: int) -> None:
            async with gate:
                await admin.create(CONFIGMAPS, {"metadata": {"name": f"c{n}"}}, namespace)

        await asyncio.gather(*(create(n) for n in range(burst)))
    audit = tmp_path / "audit.log"
    before = len(audit.read_text().splitlines()) if audit.exists() else 0
    # Straight away, SIGTERM: the last of the burst is still in the buffer (written
    # every 0.2 s), for the shutdown's flush. uvicorn re-raises the signal once it
    # has shut down, so the exit code is -15 either way.
    secure_cluster.apiserver.stop()
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    creates = [
        e
        for e in events
        if e["verb"] == "create"
        and e.get("objectRef", {}).get("resource") == "configmaps"
        and e["objectRef"].get("namespace") == namespace
    ]
    print(f"audit: {len(creates)} of {burst} creates logged; {before} of {len(events)} lines")
    print("were written before the stop, the rest by the shutdown's flush")
    assert len(creates) == burst
    assert len({e["auditID"] for e in creates}) == burst


def test_kubectl_with_a_token_and_tls_verification(cluster: LocalCluster, tmp_path: Path) -> None:
    config = tmp_path / "token.kubeconfig"
    ca = tmp_path / "ca.crt"
    ca.write_bytes(cluster.pki.ca_cert.read_bytes())
    env = {**os.environ, "KUBECONFIG": str(config), "HOME": str(tmp_path)}

    def kubectl(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *argv], capture_output=True, text=True, env=env, timeout=60
        )

    for argv in (
        ("config", "set-cluster", "c", f"--server={cluster.url}", f"--certificate-authority={ca}"),
        ("config", "set-credentials", "u", f"--token={cluster.pki.admin_token()}"),
        ("config", "set-context", "c", "--cluster=c", "--user=u"),
        ("config", "use-context", "c"),
    ):
        assert kubectl(*argv).returncode == 0
    done = kubectl("get", "namespaces", "-o", "name")
    assert done.returncode == 0, done.stderr
    assert "namespace/default" in done.stdout

    # Verification is on: a different CA makes kubectl refuse the server.
    other = tmp_path / "other-ca.crt"
    other.write_bytes(pki.new_ca("other").cert_pem)
    assert kubectl("config", "set-cluster", "c", f"--certificate-authority={other}").returncode == 0
    refused = kubectl("get", "namespaces")
    assert refused.returncode != 0
    assert "certificate" in refused.stderr
    # And a wrong token is a 401.
    kubectl("config", "set-cluster", "c", f"--certificate-authority={ca}")
    kubectl("config", "set-credentials", "u", "--token=wrong")
    refused = kubectl("get", "namespaces")
    assert refused.returncode != 0 and "must be logged in" in refused.stderr
