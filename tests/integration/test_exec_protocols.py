"""Who may open exec and port-forward WebSockets, and what a refusal looks like.

The streams themselves, through a real agent and container, are in
tests/e2e/test_streams.py; here the pod has no node, so an authorized
request goes as far as the pod and stops there with kube-apiserver's 400.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import orjson
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from corral import pki
from corral.api.errors import ApiError
from corral.client.rest import Client
from tests.conftest import LocalCluster, unique_name
from tests.integration.test_security import (
    PODS,
    ROLEBINDINGS,
    ROLES,
    binding,
    busybox_pod,
    identity,
)
from tests.support import eventually

STREAMS = {
    "portforward": ("portforward?ports=80", "SPDY/3.1+portforward.k8s.io"),
    "portforward-channels": ("portforward?ports=80", "v4.channel.k8s.io"),
    "exec": ("exec?command=true&stdout=true", "v5.channel.k8s.io"),
}


def _ssl_for(cluster: LocalCluster, pair: pki.KeyPair, tmp_path: Path) -> ssl.SSLContext:
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    context = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    context.load_cert_chain(cert, key)
    return context


async def _refusal(url: str, context: ssl.SSLContext, protocol: str) -> tuple[int, dict]:
    # The protocol as a plain header: websockets' client refuses kubectl's
    # "SPDY/3.1+..." as a subprotocol name, and these requests never open.
    header = {"Sec-WebSocket-Protocol": protocol}
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, ssl=context, additional_headers=header):
            pass
    response = refused.value.response
    return response.status_code, orjson.loads(response.body)


@pytest.mark.parametrize("stream", sorted(STREAMS))
async def test_streams_need_create_and_refuse_with_a_status(
    stream: str, cluster: LocalCluster, client: Client, namespace: str, tmp_path: Path
) -> None:
    suffix, protocol = STREAMS[stream]
    subresource = suffix.split("?")[0]
    await client.create(PODS, busybox_pod("web"), namespace)
    user = unique_name("dev")
    context = _ssl_for(cluster, identity(cluster, user), tmp_path)
    url = f"{cluster.url.replace('https://', 'wss://')}/api/v1/namespaces/{namespace}/pods/web/{suffix}"
    rule = {"apiGroups": [""], "resources": [f"pods/{subresource}"], "verbs": ["get"]}
    role = {"metadata": {"name": "streams"}, "rules": [rule]}
    await client.create(ROLES, role, namespace)
    await client.create(ROLEBINDINGS, binding("streams", "Role", "streams", user), namespace)

    # get alone opens nothing: a WebSocket GET on these is authorized as create too.
    async def refused_for_create() -> tuple[int, dict] | None:
        code, status = await _refusal(url, context, protocol)
        return (code, status) if "cannot create" in status.get("message", "") else None

    code, status = await eventually(refused_for_create, timeout=10)
    assert code == 403 and status["reason"] == "Forbidden"
    assert f'cannot create resource "pods/{subresource}"' in status["message"]

    rule["verbs"] = ["get", "create"]
    stored = await client.get(ROLES, "streams", namespace)
    stored["rules"] = [rule]
    await client.replace(ROLES, stored, namespace)

    async def past_authorization() -> tuple[int, dict] | None:
        code, status = await _refusal(url, context, protocol)
        return (code, status) if code != 403 else None

    code, status = await eventually(past_authorization, timeout=10)
    assert code == 400 and status["kind"] == "Status"
    assert status["message"] == "pod web does not have a host assigned"


async def test_port_forward_refuses_bad_requests_with_kube_apiserver_s_400(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    base = f"{cluster.url.replace('https://', 'wss://')}/api/v1/namespaces/{namespace}/pods/web"
    await client.create(PODS, busybox_pod("web", unique_name("node")), namespace)
    context = cluster.ssl_context()
    v4 = "v4.channel.k8s.io"
    refusals = {
        f"{base}/portforward?ports=99999": (v4, "port 99999 must be between 1 and 65535"),
        f"{base}/portforward?ports=80,http": (v4, 'unable to parse "http" as a port'),
        f"{base}/portforward": (v4, 'query parameter "ports" is required'),
        f"{base}/portforward?ports=80": ("v9.channel.k8s.io", "SPDY/3.1+portforward.k8s.io"),
        f"{base}/exec?command=true": ("v9.channel.k8s.io", "v5.channel.k8s.io"),
        f"{base}/exec": (v4, "you must specify at least one command"),
    }
    for url, (protocol, message) in refusals.items():
        code, status = await _refusal(url, context, protocol)
        assert code == 400 and status["kind"] == "Status", (url, status)
        assert message in status["message"], (url, status)
    # A plain request (no upgrade) is refused as well, naming what is served.
    with pytest.raises(ApiError) as plain:
        await client.request("POST", f"/api/v1/namespaces/{namespace}/pods/web/portforward")
    assert plain.value.code == 400 and "WebSocket" in plain.value.message
