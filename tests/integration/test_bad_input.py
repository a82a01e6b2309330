"""Bad input gets a 4xx Status that names the problem, and the CLI says so in one line."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.objects import Obj
from corralctl.main import main as corral_main
from tests.conftest import LocalCluster


def pod(**changes: Any) -> Obj:
    base: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1", "ports": [{"containerPort": 80}]}]
        },
    }
    return _apply(base, changes)


def rc(**changes: Any) -> Obj:
    base: Obj = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "bad"},
        "spec": {
            "replicas": 1,
            "selector": {"app": "a"},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
            },
        },
    }
    return _apply(base, changes)


def service(**changes: Any) -> Obj:
    base: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad"},
        "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]},
    }
    return _apply(base, changes)


def deployment(**changes: Any) -> Obj:
    base: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
            },
        },
    }
    return _apply(base, changes)


def _apply(base: Obj, changes: dict[str, Any]) -> Obj:
    """``spec__containers__0__image=None`` sets (None: deletes) a nested field."""
    out = copy.deepcopy(base)
    for path, value in changes.items():
        parts: list[Any] = [int(p) if p.isdigit() else p for p in path.split("__")]
        target: Any = out
        for part in parts[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return out


_DELETE = object()


@dataclass(frozen=True)
class Case:
    name: str
    body: Any
    code: int
    mentions: str  # the field path or phrase the answer must name
    path: str = "/api/v1/namespaces/{ns}/pods"
    content_type: str = "application/json"
    cli: bool = True  # also run through `corral create -f`
    # What the CLI's line must name when the CLI itself catches the problem.
    cli_mentions: str = ""


SVC = "/api/v1/namespaces/{ns}/services"
RC = "/api/v1/namespaces/{ns}/replicationcontrollers"
DEPLOY = "/apis/apps/v1/namespaces/{ns}/deployments"
CASES: list[Case] = [
    # --- malformed documents --------------------------------------------------------
    Case(
        "malformed JSON", b'{"apiVersion": "v1", "kind": "Pod",', 400, "not valid JSON", cli=False
    ),
    Case(
        "malformed YAML",
        b"kind: Pod\n  bad: [indent",
        400,
        "not valid YAML",
        content_type="application/yaml",
        cli=False,
    ),
    Case("empty body", b"", 400, "empty", cli=False),
    Case("array body", b"[1, 2]", 400, "JSON object", cli=False),
    Case(
        "unsupported media type",
        b"name=x",
        415,
        "unknown format",
        content_type="text/plain",
        cli=False,
    ),
    Case(
        "body over the size limit",
        b'{"x": "' + b"a" * (4 * 1024 * 1024) + b'"}',
        413,
        "limit",
        cli=False,
    ),
    # --- unknown kinds, versions, fields ----------------------------------------------
    Case("kind does not match the path", service(), 400, "kind", cli=False),
    Case("unknown apiVersion", pod(apiVersion="v2"), 400, "apiVersion", cli_mentions='"v2"'),
    Case("unknown top-level field", pod(color="blue"), 400, 'unknown field "color"'),
    Case(
        "unknown nested field",
        pod(spec__containers__0__imagee="x"),
        400,
        "spec.containers[0].imagee",
    ),
    Case("unknown metadata field", pod(metadata__lables={"a": "b"}), 400, "metadata.lables"),
    # --- wrong types -------------------------------------------------------------------
    Case("string for an integer", rc(spec__replicas="3"), 400, "spec.replicas", path=RC),
    Case(
        "string port",
        pod(spec__containers__0__ports__0__containerPort="80"),
        400,
        "spec.containers[0].ports[0].containerPort",
    ),
    Case("number label value", pod(metadata__labels={"a": 1}), 400, "metadata.labels[a]"),
    Case("object for a list", pod(spec__containers={"name": "c"}), 400, "spec.containers"),
    Case("list for an object", pod(metadata=[]), 400, "metadata", cli_mentions="metadata"),
    Case("string for a boolean", pod(spec__hostNetwork="yes"), 400, "spec.hostNetwork"),
    # --- required fields and enums -------------------------------------------------------
    Case("no containers field", pod(spec__containers=_DELETE), 422, "spec.containers"),
    Case("empty containers", pod(spec__containers=[]), 422, "spec.containers"),
    Case(
        "container without a name",
        pod(spec__containers__0__name=_DELETE),
        422,
        "spec.containers[0].name",
    ),
    Case(
        "container without an image",
        pod(spec__containers__0__image=_DELETE),
        422,
        "spec.containers[0].image",
    ),
    Case("no name at all", pod(metadata={}), 422, "metadata.name"),
    Case(
        "unsupported restartPolicy", pod(spec__restartPolicy="Sometimes"), 422, "spec.restartPolicy"
    ),
    Case(
        "unsupported protocol",
        pod(spec__containers__0__ports__0__protocol="ICMP"),
        422,
        "spec.containers[0].ports[0].protocol",
    ),
    Case("unsupported service type", service(spec__type="Magic"), 422, "spec.type", path=SVC),
    # --- names and labels ------------------------------------------------------------------
    Case("uppercase name", pod(metadata__name="Web"), 422, "metadata.name"),
    Case("name too long", pod(metadata__name="a" * 254), 422, "metadata.name"),
    Case(
        "service name with a dot",
        service(metadata__name="web.front"),
        422,
        "metadata.name",
        path=SVC,
    ),
    Case("bad label key", pod(metadata__labels={"a b": "c"}), 422, "metadata.labels"),
    Case("label value too long", pod(metadata__labels={"a": "v" * 64}), 422, "metadata.labels"),
    Case("bad annotation key", pod(metadata__annotations={"/x": "y"}), 422, "metadata.annotations"),
    # --- quantities, ports and references ------------------------------------------------------
    Case(
        "bad quantity",
        pod(spec__containers__0__resources={"requests": {"cpu": "lots"}}),
        422,
        "spec.containers[0].resources.requests[cpu]",
    ),
    Case(
        "negative memory",
        pod(spec__containers__0__resources={"limits": {"memory": "-1Mi"}}),
        422,
        "spec.containers[0].resources.limits[memory]",
    ),
    Case(
        "request above limit",
        pod(spec__containers__0__resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        422,
        "spec.containers[0].resources.requests",
    ),
    Case(
        "container port zero",
        pod(spec__containers__0__ports__0__containerPort=0),
        422,
        "spec.containers[0].ports[0].containerPort",
    ),
    Case(
        "container port too big",
        pod(spec__containers__0__ports__0__containerPort=70000),
        422,
        "spec.containers[0].ports[0].containerPort",
    ),
    Case(
        "duplicate container names",
        pod(spec__containers=[{"name": "c", "image": "a"}, {"name": "c", "image": "b"}]),
        422,
        "spec.containers[1].name",
    ),
    Case(
        "mount of a missing volume",
        pod(spec__containers__0__volumeMounts=[{"name": "data", "mountPath": "/data"}]),
        422,
        "spec.containers[0].volumeMounts[0].name",
    ),
    Case(
        "probe with two handlers",
        pod(
            spec__containers__0__readinessProbe={
                "exec": {"command": ["true"]},
                "tcpSocket": {"port": 80},
            }
        ),
        422,
        "spec.containers[0].readinessProbe",
    ),
    Case(
        "env with value and valueFrom",
        pod(
            spec__containers__0__env=[
                {
                    "name": "A",
                    "value": "1",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                }
            ]
        ),
        422,
        "spec.containers[0].env[0].valueFrom",
    ),
    Case(
        "toleration Exists with a value",
        pod(spec__tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
        422,
        "spec.tolerations[0]",
    ),
    # --- workloads and services ------------------------------------------------------------
    Case(
        "selector does not match the template",
        rc(spec__selector={"app": "b"}),
        422,
        "spec.template.metadata.labels",
        path=RC,
    ),
    Case("negative replicas", rc(spec__replicas=-1), 422, "spec.replicas", path=RC),
    Case(
        "service port zero", service(spec__ports=[{"port": 0}]), 422, "spec.ports[0].port", path=SVC
    ),
    Case(
        "deployment without a selector",
        deployment(spec__selector=_DELETE),
        422,
        "spec.selector",
        path=DEPLOY,
    ),
    Case(
        "surge and unavailable both zero",
        deployment(
            spec__strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0},
            }
        ),
        422,
        "spec.strategy.rollingUpdate.maxUnavailable",
        path=DEPLOY,
    ),
    Case(
        "secret data not base64",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": {"k": "!!"}},
        422,
        "data[k]",
        path="/api/v1/namespaces/{ns}/secrets",
    ),
    Case(
        "configmap key with a slash",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bad"},
            "data": {"a/b": "c"},
        },
        422,
        "data[a/b]",
        path="/api/v1/namespaces/{ns}/configmaps",
    ),
    Case(
        "budget with both limits",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "bad"},
            "spec": {"minAvailable": 1, "maxUnavailable": 1},
        },
        422,
        "spec",
        path="/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    ),
    # --- request-level problems ------------------------------------------------------------
    Case(
        "namespace does not match the path",
        pod(metadata__namespace="elsewhere"),
        400,
        "namespace",
        cli=False,
    ),
    Case(
        "unknown resource path",
        pod(),
        404,
        "could not find",
        path="/api/v1/namespaces/{ns}/widgets",
        cli=False,
    ),
]


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_bad_input_gets_a_status_naming_the_problem(
    client: Client, namespace: str, case: Case
) -> None:
    data = case.body if isinstance(case.body, bytes) else orjson.dumps(case.body)
    with pytest.raises(ApiError) as caught:
        await client.request_bytes(
            "POST", case.path.format(ns=namespace), data=data, content_type=case.content_type
        )
    error = caught.value
    assert error.code == case.code, error.message
    text = error.message + " " + " ".join(f"{c.field} {c.message}" for c in error.causes)
    assert case.mentions in text, text
    if error.code == 422:
        assert any(case.mentions in c.field for c in error.causes), error.causes
    listed = await client.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    assert listed["items"] == []


CLI_CASES = [c for c in CASES if c.cli]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_cli_prints_one_line(
    cluster: LocalCluster,
    namespace: str,
    case: Case,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = tmp_path / "bad.json"
    manifest.write_text(json.dumps(case.body))
    code = corral_main(
        ["create", "-f", str(manifest), "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    )
    captured = capsys.readouterr()
    assert code == 1
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert (case.cli_mentions or case.mentions) in lines[0], lines[0]


@pytest.mark.parametrize(
    "query",
    ["limit=40067144647188586496", "timeoutSeconds=99999999999999999999", "limit=-1"],
)
async def test_query_integers_out_of_range_are_400s(
    client: Client, namespace: str, query: str
) -> None:
    # Found by the schemathesis run: a limit beyond int64 once reached etcd's
    # protobuf encoder and came back a 500.
    with pytest.raises(ApiError) as caught:
        await client.request("GET", f"/api/v1/namespaces/{namespace}/pods?{query}")
    assert caught.value.code == 400, caught.value.message
    assert query.split("=")[0] in caught.value.message


async def test_an_integer_beyond_64_bits_in_a_body_is_a_400(client: Client, namespace: str) -> None:
    rc = (
        b'{"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"huge"},'
        b'"spec":{"replicas":40067144647188586496,"selector":{"a":"b"},"template":'
        b'{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}'
    )
    with pytest.raises(ApiError) as caught:
        await client.request_bytes(
            "POST", f"/api/v1/namespaces/{namespace}/replicationcontrollers", data=rc
        )
    assert caught.value.code in (400, 422), caught.value.message
    assert "replicas" in caught.value.message + " ".join(c.field for c in caught.value.causes)
