"""Wire details real clients depend on, read through the official Python client and kubectl.

- Status bodies: kube-apiserver's key order and trailing newline, byte for byte.
- Services carry ``status: {loadBalancer: {}}``, also those stored before it was set.
- Partial object metadata: ``as=PartialObjectMetadata(List);g=meta.k8s.io;v=v1`` on
  gets, lists and watches, with Accept fallbacks as client-go sends them.
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.storage.etcd import EtcdClient
from tests.conftest import VENV_BIN, LocalCluster
from tools.kubectl import VERSION as PINNED_KUBECTL

STATUS_ORDER = ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
PARTIAL = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
PROTOBUF = "application/vnd.kubernetes.protobuf"
# What client-go's metadata client sends: protobuf first, which corral does not serve.
METADATA_CLIENT_LIST = (
    f"{PROTOBUF};as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,{PARTIAL_LIST},application/json"
)


def _api_client(cluster: LocalCluster) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))


def _raw(
    api: k8s.ApiClient,
    path: str,
    *,
    accept: str = "application/json",
    method: str = "GET",
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
) -> tuple[int, str]:
    """One request through the official client's transport: its status and exact body."""
    request = api.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params={"Accept": accept, "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    return response.status, response.read().decode()


def _keys(body: str) -> list[str]:
    return [key for key, _ in json.loads(body, object_pairs_hook=lambda pairs: pairs)]


def _kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


# --- the pinned kubectl ------------------------------------------------------------------------


def test_the_tests_drive_the_pinned_kubectl(kubectl_env: dict[str, str]) -> None:
    """./dev deps installs kubectl 1.32 into the venv (tools/kubectl.py); the fixtures use it."""
    found = shutil.which("kubectl", path=kubectl_env["PATH"])
    assert found is not None and Path(found).parent == VENV_BIN, found
    version = json.loads(_kubectl(kubectl_env, "version", "--client", "-o", "json"))
    client = version["clientVersion"]
    assert (client["major"], client["minor"]) == ("1", "32"), client
    assert client["gitVersion"] == PINNED_KUBECTL, client


# --- Status bodies ------------------------------------------------------------------------


def test_not_found_is_kube_apiservers_bytes(cluster: LocalCluster, namespace: str) -> None:
    code, body = _raw(_api_client(cluster), f"/api/v1/namespaces/{namespace}/pods/x")
    assert code == 404
    assert body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"pods \\"x\\" not found","reason":"NotFound",'
        '"details":{"name":"x","kind":"pods"},"code":404}\n'
    )


def test_every_error_path_keeps_the_order_and_newline(
    cluster: LocalCluster, namespace: str
) -> None:
    api = _api_client(cluster)
    invalid_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    bodies = {
        "invalid": _raw(
            api, f"/api/v1/namespaces/{namespace}/pods", method="POST", body=invalid_pod
        ),
        "bad request": _raw(
            api, f"/api/v1/namespaces/{namespace}/pods", method="POST", body=[1, 2]
        ),
        "unknown path": _raw(api, "/apis/nothing.example/v1/things"),
        "not acceptable": _raw(api, f"/api/v1/namespaces/{namespace}/pods", accept=PROTOBUF),
        "unauthorized": _anonymous_get(cluster, "/api/v1/pods"),
    }
    expected_codes = {
        "invalid": 422,
        "bad request": 400,
        "unknown path": 404,
        "not acceptable": 406,
        "unauthorized": 401,
    }
    for name, (code, body) in bodies.items():
        assert code == expected_codes[name], (name, code, body)
        assert body.endswith("}\n") and not body.endswith("\n\n"), (name, body)
        keys = _keys(body)
        assert keys == [k for k in STATUS_ORDER if k in keys], (name, keys)
        assert keys[-1] == "code", (name, keys)


def _anonymous_get(cluster: LocalCluster, path: str) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": "Bearer not-a-token"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


# --- Service status --------------------------------------------------------------------------


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
}


def test_service_status_has_a_load_balancer_from_both_clients(
    cluster: LocalCluster, namespace: str, kubectl_env: dict[str, str]
) -> None:
    _kubectl(kubectl_env, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(SERVICE))
    shown = json.loads(_kubectl(kubectl_env, "get", "-n", namespace, "svc/web", "-o", "json"))
    assert shown["status"] == {"loadBalancer": {}}

    core = k8s.CoreV1Api(_api_client(cluster))
    created = core.create_namespaced_service(namespace, {**SERVICE, "metadata": {"name": "py"}})
    assert created.status is not None and created.status.load_balancer is not None
    code, body = _raw(core.api_client, f"/api/v1/namespaces/{namespace}/services/py")
    assert code == 200 and json.loads(body)["status"] == {"loadBalancer": {}}
    listed = json.loads(_raw(core.api_client, f"/api/v1/namespaces/{namespace}/services")[1])
    assert [s["status"] for s in listed["items"]] == [{"loadBalancer": {}}] * 2


def test_status_subresource_semantics_are_unchanged(cluster: LocalCluster, namespace: str) -> None:
    core = k8s.CoreV1Api(_api_client(cluster))
    core.create_namespaced_service(namespace, SERVICE)
    ingress = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    core.patch_namespaced_service_status("web", namespace, {"status": ingress})
    # A write to the main resource keeps the stored status.
    core.patch_namespaced_service("web", namespace, {"metadata": {"labels": {"a": "b"}}})
    code, body = _raw(core.api_client, f"/api/v1/namespaces/{namespace}/services/web")
    assert code == 200 and json.loads(body)["status"] == ingress
    # A status write that leaves out the load balancer serializes it empty, as Kubernetes does.
    replaced = core.replace_namespaced_service_status("web", namespace, {**SERVICE, "status": {}})
    assert replaced.status.load_balancer is not None
    code, body = _raw(core.api_client, f"/api/v1/namespaces/{namespace}/services/web/status")
    assert code == 200 and json.loads(body)["status"] == {"loadBalancer": {}}


async def test_a_service_stored_without_status_reads_with_one(
    cluster: LocalCluster, namespace: str, kubectl_env: dict[str, str]
) -> None:
    """A Service an older corral stored (no status) is served as Kubernetes would show it."""
    assert cluster.etcd is not None
    old = {
        **SERVICE,
        "metadata": {"name": "old", "namespace": namespace, "uid": "0f0f0f0f-old"},
        "spec": {**SERVICE["spec"], "clusterIP": "None"},
    }
    etcd = EtcdClient([cluster.etcd.endpoint])
    try:
        revision = await etcd.put(f"/registry/services/{namespace}/old".encode(), orjson.dumps(old))
    finally:
        await etcd.close()
    api = _api_client(cluster)
    # resourceVersion=N: the watch cache has seen the write too.
    for query in ([], [("resourceVersion", str(revision))]):
        code, body = _raw(api, f"/api/v1/namespaces/{namespace}/services/old", query=query)
        assert code == 200 and json.loads(body)["status"] == {"loadBalancer": {}}, body
    shown = json.loads(_kubectl(kubectl_env, "get", "-n", namespace, "svc/old", "-o", "json"))
    assert shown["status"] == {"loadBalancer": {}}


# --- partial object metadata -------------------------------------------------------------------


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "meta"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
    }


@pytest.mark.parametrize("accept", [PARTIAL_LIST, METADATA_CLIENT_LIST])
def test_partial_metadata_lists(cluster: LocalCluster, namespace: str, accept: str) -> None:
    core = k8s.CoreV1Api(_api_client(cluster))
    for name in ("m1", "m2"):
        core.create_namespaced_pod(namespace, _pod(name))
    code, body = _raw(core.api_client, f"/api/v1/namespaces/{namespace}/pods", accept=accept)
    assert code == 200, body
    listed = json.loads(body)
    assert listed["kind"] == "PartialObjectMetadataList"
    assert listed["apiVersion"] == "meta.k8s.io/v1"
    assert listed["metadata"]["resourceVersion"]
    assert [sorted(item) for item in listed["items"]] == [["apiVersion", "kind", "metadata"]] * 2
    assert {item["kind"] for item in listed["items"]} == {"PartialObjectMetadata"}
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["m1", "m2"]
    assert listed["items"][0]["metadata"]["labels"] == {"app": "meta"}
    assert listed["items"][0]["metadata"]["uid"]


def test_partial_metadata_get_and_mismatches(cluster: LocalCluster, namespace: str) -> None:
    core = k8s.CoreV1Api(_api_client(cluster))
    created = core.create_namespaced_pod(namespace, _pod("one"))
    path = f"/api/v1/namespaces/{namespace}/pods/one"
    code, body = _raw(core.api_client, path, accept=f"{PROTOBUF};as=PartialObjectMetadata;"
                      f"g=meta.k8s.io;v=v1,{PARTIAL},application/json")  # fmt: skip
    assert code == 200, body
    assert json.loads(body) == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": json.loads(_raw(core.api_client, path)[1])["metadata"],
    }
    assert json.loads(body)["metadata"]["uid"] == created.metadata.uid
    # A list asked of one object, and one object asked of a list: 406, as Kubernetes answers.
    code, body = _raw(core.api_client, path, accept=f"{PARTIAL_LIST},application/json")
    assert code == 406 and json.loads(body)["reason"] == "NotAcceptable", body
    code, body = _raw(core.api_client, f"/api/v1/namespaces/{namespace}/pods", accept=PARTIAL)
    assert code == 406, body
    # An unknown conversion is skipped for the next choice.
    code, body = _raw(
        core.api_client,
        path,
        accept="application/json;as=Nothing;g=meta.k8s.io;v=v1,application/json",
    )
    assert code == 200 and json.loads(body)["kind"] == "Pod"


def test_partial_metadata_watch(cluster: LocalCluster, namespace: str) -> None:
    core = k8s.CoreV1Api(_api_client(cluster))
    before = core.list_namespaced_pod(namespace).metadata.resource_version
    core.create_namespaced_pod(namespace, _pod("w1"))
    core.delete_namespaced_pod("w1", namespace)
    code, body = _raw(
        core.api_client,
        f"/api/v1/namespaces/{namespace}/pods",
        accept=f"{PROTOBUF};as=PartialObjectMetadata;g=meta.k8s.io;v=v1,{PARTIAL},application/json",
        query=[("watch", "true"), ("resourceVersion", before), ("timeoutSeconds", "2")],
    )
    assert code == 200, body
    events = [json.loads(line) for line in body.splitlines() if line]
    assert [e["type"] for e in events] == ["ADDED", "DELETED"], events
    for event in events:
        assert event["object"]["kind"] == "PartialObjectMetadata"
        assert event["object"]["apiVersion"] == "meta.k8s.io/v1"
        assert sorted(event["object"]) == ["apiVersion", "kind", "metadata"]
        assert event["object"]["metadata"]["name"] == "w1"


# --- kubectl explain ----------------------------------------------------------------------------


def test_kubectl_explain_prints_kubernetes_descriptions(kubectl_env: dict[str, str]) -> None:
    replicas = _kubectl(kubectl_env, "explain", "deployment.spec.replicas")
    assert "FIELD: replicas <integer>" in replicas
    assert "Number of desired pods." in replicas
    pod = _kubectl(kubectl_env, "explain", "pods")
    assert "Pod is a collection of containers that can run on a host." in pod
    assert "spec\t<PodSpec> -required-" in pod
    assert "Specification of the desired behavior of the pod." in pod
    assert "<no description>" not in pod
    image = _kubectl(kubectl_env, "explain", "deployment.spec.template.spec.containers.image")
    assert "Container image name." in image
    missing = subprocess.run(
        ["kubectl", "explain", "deployment.spec.nothing"],
        env=kubectl_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and 'field "nothing" does not exist' in missing.stderr


def test_openapi_v3_schemas_carry_descriptions_and_kinds(cluster: LocalCluster) -> None:
    api = _api_client(cluster)
    code, body = _raw(api, "/openapi/v3/apis/apps/v1")
    assert code == 200
    schemas = json.loads(body)["components"]["schemas"]
    deployment = schemas["Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    replicas = schemas["DeploymentSpec"]["properties"]["replicas"]
    assert replicas["type"] == "integer" and replicas["description"].startswith("Number of")
    # An optional reference is the reference itself (not pydantic's anyOf with null).
    status = deployment["properties"]["status"]
    assert status["$ref"] == "#/components/schemas/DeploymentStatus" and "anyOf" not in status
    assert status["description"].startswith("Most recently observed status")
