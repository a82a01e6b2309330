"""Protobuf request bodies (issue 17): kubectl's typed clients send them as protobuf.

Each object kubectl creates that way is compared with the same command's object
sent as JSON (``--dry-run=client -o json`` then ``kubectl create -f``) into a
second namespace: the stored objects must be equal but for identity and times.
"""

from __future__ import annotations

import base64
import difflib
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from corral.api import protobuf_encode
from corral.client.rest import Client
from tests.conftest import LocalCluster, unique_name
from tests.integration.test_kubectl import kubectl

PROTOBUF = "application/vnd.kubernetes.protobuf"


def _kubectl_stdin(env: dict[str, str], text: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", *args], env=env, input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def json_namespace(kubectl_env: dict[str, str]) -> Iterator[str]:
    name = unique_name("pbjson")
    kubectl(kubectl_env, "create", "namespace", name)
    yield name
    kubectl(kubectl_env, "delete", "namespace", name, "--wait=false", check=False)


_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _comparable(obj: dict[str, Any]) -> list[str]:
    """The object as lines of JSON, without what differs between any two creations."""
    meta = dict(obj["metadata"])
    for key in ("namespace", "uid", "resourceVersion", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    obj = {**obj, "metadata": meta}
    if obj["kind"] == "Service":  # each gets an address of its own
        obj["spec"] = {k: v for k, v in obj["spec"].items() if k not in ("clusterIP", "clusterIPs")}
    text = json.dumps(obj, indent=1, sort_keys=True)
    # Jobs label their pods with their own uid; a job from a cronjob names its owner's.
    return _UID.sub("<uid>", text).splitlines()


def _get(env: dict[str, str], resource: str, name: str, namespace: str) -> dict[str, Any]:
    out = kubectl(env, "get", resource, name, "-n", namespace, "-o", "json").stdout
    document: dict[str, Any] = json.loads(out)
    return document


def _create_both_ways(
    env: dict[str, str], namespace: str, json_namespace: str, resource: str, *command: str
) -> dict[str, Any]:
    """Run ``kubectl create *command`` (protobuf) in namespace, and its JSON in json_namespace."""
    created = kubectl(env, "create", *command, "-n", namespace, "-v=8")
    assert f"Content-Type: {PROTOBUF}" in created.stderr  # the protobuf path was taken
    dry = kubectl(env, "create", *command, "-n", json_namespace, "--dry-run=client", "-o", "json")
    via_json = _kubectl_stdin(env, dry.stdout, "create", "-f", "-", "-n", json_namespace, "-v=8")
    assert f"Content-Type: {PROTOBUF}" not in via_json.stderr
    name = command[2] if command[0] in ("secret", "service") else command[1]
    from_protobuf = _get(env, resource, name, namespace)
    from_json = _get(env, resource, name, json_namespace)
    left, right = _comparable(from_protobuf), _comparable(from_json)
    assert left == right, "\n".join(difflib.unified_diff(left, right, lineterm=""))
    return from_protobuf


def test_kubectl_create_sends_protobuf_and_stores_what_json_stores(
    kubectl_env: dict[str, str], namespace: str, json_namespace: str
) -> None:
    env, ns, other = kubectl_env, namespace, json_namespace
    config = _create_both_ways(
        env, ns, other, "configmap", "configmap", "cfg", "--from-literal=k=v"
    )
    assert config["data"] == {"k": "v"}
    secret = _create_both_ways(
        env, ns, other, "secret", "secret", "generic", "sec", "--from-literal=password=s3cr=t"
    )
    assert base64.b64decode(secret["data"]["password"]) == b"s3cr=t"
    assert secret["type"] == "Opaque"
    deployment = _create_both_ways(
        env, ns, other, "deployment", "deployment", "web", "--image=busybox", "--replicas=0"
    )
    assert deployment["spec"]["replicas"] == 0  # a pointer's explicit zero survives
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    job = _create_both_ways(env, ns, other, "job", "job", "once", "--image=busybox")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    schedule = ["--image=busybox", "--schedule=*/5 * * * *"]
    for where in (ns, other):
        kubectl(env, "create", "cronjob", "nightly", *schedule, "-n", where)
    manual = _create_both_ways(env, ns, other, "job", "job", "manual", "--from=cronjob/nightly")
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob"


def test_more_kubectl_create_commands_store_what_json_stores(
    kubectl_env: dict[str, str], namespace: str, json_namespace: str
) -> None:
    env, ns, other = kubectl_env, namespace, json_namespace
    service = _create_both_ways(
        env, ns, other, "service", "service", "clusterip", "web", "--tcp=80:8080"
    )
    assert service["spec"]["ports"][0]["targetPort"] == 8080  # IntOrString as an int
    _create_both_ways(env, ns, other, "serviceaccount", "serviceaccount", "robot")
    role = _create_both_ways(
        env, ns, other, "role", "role", "reader", "--verb=get", "--resource=pods"
    )
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    _create_both_ways(
        env,
        ns,
        other,
        "rolebinding",
        "rolebinding",
        "rb",
        "--role=reader",
        "--serviceaccount=x:robot",
    )
    pdb = _create_both_ways(
        env,
        ns,
        other,
        "pdb",
        "poddisruptionbudget",
        "pdb",
        "--selector=app=x",
        "--min-available=50%",
    )
    assert pdb["spec"]["minAvailable"] == "50%"
    registry = ["--docker-server=r.io", "--docker-username=u", "--docker-password=p"]
    pull = _create_both_ways(
        env, ns, other, "secret", "secret", "docker-registry", "reg", *registry
    )
    assert pull["type"] == "kubernetes.io/dockerconfigjson"


def test_kubectl_create_token_sends_a_protobuf_token_request(
    kubectl_env: dict[str, str], namespace: str
) -> None:
    kubectl(kubectl_env, "create", "serviceaccount", "robot", "-n", namespace)
    made = kubectl(
        kubectl_env, "create", "token", "robot", "-n", namespace, "--duration=1h", "-v=8"
    )
    assert f"Content-Type: {PROTOBUF}" in made.stderr
    token = made.stdout.strip()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:robot"
    assert 3500 <= claims["exp"] - claims["iat"] <= 3600


def _post(cluster: LocalCluster, path: str, body: bytes) -> tuple[int, Any]:
    """The official Python client sending raw bytes with the protobuf content type."""
    api_client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        request = api_client.param_serialize(
            "POST",
            path,
            header_params={"Content-Type": PROTOBUF, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = api_client.call_api(*request)
        response.read()
        return response.status, json.loads(response.data)
    finally:
        api_client.close()


async def test_python_client_protobuf_bodies(
    cluster: LocalCluster, namespace: str, client: Client
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pb", "labels": {"app": "pb"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                    "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "automountServiceAccountToken": False,
        },
    }
    status, created = _post(
        cluster, f"/api/v1/namespaces/{namespace}/pods", protobuf_encode.encode(pod)
    )
    assert status == 201, created
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    stored = core.api_client.sanitize_for_serialization(core.read_namespaced_pod("pb", namespace))
    spec = stored["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["volumes"][0] == {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert container["resources"]["limits"] == {"cpu": "250m", "memory": "64Mi"}

    status, body = _post(cluster, f"/api/v1/namespaces/{namespace}/pods", b"k8s\x00\xff\xff")
    assert status == 400 and body["reason"] == "BadRequest"
    assert "not valid protobuf" in body["message"]
    status, body = _post(cluster, f"/api/v1/namespaces/{namespace}/pods", b'{"kind": "Pod"}')
    assert status == 400 and "magic" in body["message"]
