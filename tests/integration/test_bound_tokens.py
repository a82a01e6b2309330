"""Bound service account tokens against the real API server: TokenRequest, and who they stop.

Each token comes from ``POST .../serviceaccounts/<name>/token`` over HTTPS
and is then used as a bearer token on the same server. The refusals (wrong
audience, expired, bound object gone, ServiceAccount replaced, a Secret
that tries to mint a token) are 401s with a Status body.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from controlplane.auth.serviceaccounttokens import (
    DEFAULT_ISSUER,
    TokenSigner,
    load_signing_key,
    new_claims,
)
from corral.client.rest import Client
from corral.clock import SystemClock
from corral.objects import Obj
from tests.conftest import LocalCluster
from tests.integration.test_security import (
    PODS,
    ROLEBINDINGS,
    SECRETS,
    SERVICEACCOUNTS,
    Caller,
    busybox_pod,
    identity,
    poll,
    wait_allowed,
)

pytestmark = pytest.mark.integration

GROUP = "rbac.authorization.k8s.io"


def _claims(token: str) -> Obj:
    """The payload, unverified: what the server put in it."""
    payload = token.split(".")[1]
    decoded: Obj = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _view_binding(account: str, namespace: str) -> Obj:
    return {
        "metadata": {"name": f"{account}-view"},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }


def _token_request(**spec: Any) -> Obj:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


async def _viewer_account(client: Client, namespace: str, name: str = "robot") -> Obj:
    """A ServiceAccount bound to ``view`` in the namespace: it may list pods, not secrets."""
    account = await client.create(SERVICEACCOUNTS, {"metadata": {"name": name}}, namespace)
    await client.create(ROLEBINDINGS, _view_binding(name, namespace), namespace)
    return account


async def _request_token(admin: Caller, namespace: str, account: str, **spec: Any) -> str:
    code, body = await admin(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        _token_request(**spec),
    )
    assert code == 201, body
    token = body["status"]["token"]
    assert isinstance(token, str)
    return token


@pytest.fixture
def admin(cluster: LocalCluster, tmp_path: Path) -> Caller:
    return Caller(cluster, tmp_path, cluster.pki.admin(), "")


async def test_a_requested_token_authenticates_as_the_service_account(
    cluster: LocalCluster, client: Client, namespace: str, admin: Caller, tmp_path: Path
) -> None:
    account = await _viewer_account(client, namespace)
    code, answer = await admin(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/robot/token",
        _token_request(expirationSeconds=1200),
    )
    assert code == 201, answer
    assert answer["kind"] == "TokenRequest"
    assert answer["spec"]["audiences"] == [DEFAULT_ISSUER]
    assert answer["spec"]["expirationSeconds"] == 1200
    assert answer["status"]["expirationTimestamp"].endswith("Z")
    token = answer["status"]["token"]

    claims = _claims(token)
    assert claims["iss"] == DEFAULT_ISSUER
    assert claims["aud"] == [DEFAULT_ISSUER]
    assert claims["sub"] == f"system:serviceaccount:{namespace}:robot"
    assert claims["exp"] - claims["iat"] == 1200 and claims["nbf"] == claims["iat"]
    assert claims["jti"]
    assert claims["kubernetes.io"] == {
        "namespace": namespace,
        "serviceaccount": {"name": "robot", "uid": account["metadata"]["uid"]},
    }

    robot = Caller(cluster, tmp_path, None, token)
    code, listed = await wait_allowed(robot, f"/api/v1/namespaces/{namespace}/pods")
    assert code == 200, listed
    code, refused = await robot("GET", f"/api/v1/namespaces/{namespace}/secrets")
    assert code == 403
    assert f'User "system:serviceaccount:{namespace}:robot"' in refused["message"]


async def test_a_token_for_another_audience_is_refused(
    cluster: LocalCluster, client: Client, namespace: str, admin: Caller, tmp_path: Path
) -> None:
    await _viewer_account(client, namespace)
    token = await _request_token(admin, namespace, "robot", audiences=["https://vault.example"])
    assert _claims(token)["aud"] == ["https://vault.example"]
    code, status = await Caller(cluster, tmp_path, None, token)(
        "GET", f"/api/v1/namespaces/{namespace}/pods"
    )
    assert code == 401, status
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"


async def test_an_expired_token_is_refused_and_a_fresh_one_from_the_same_key_is_not(
    cluster: LocalCluster, client: Client, namespace: str, tmp_path: Path
) -> None:
    """Signed here with the cluster's own key, so only the times differ between the two."""
    account = await _viewer_account(client, namespace)
    signer = TokenSigner(load_signing_key(cluster.pki.service_account_key))
    now = SystemClock().now()

    def token(issued: timedelta) -> str:
        claims = new_claims(
            issuer=DEFAULT_ISSUER,
            audiences=[DEFAULT_ISSUER],
            service_account=account,
            now=now - issued,
            expiration_seconds=600,
        )
        return signer.sign(claims)

    path = f"/api/v1/namespaces/{namespace}/pods"
    code, _ = await wait_allowed(Caller(cluster, tmp_path, None, token(timedelta(0))), path)
    assert code == 200
    # Ten minutes of life, issued an hour ago: past any leeway.
    code, status = await Caller(cluster, tmp_path, None, token(timedelta(hours=1)))("GET", path)
    assert code == 401, status


async def test_a_pod_bound_token_dies_with_its_pod(
    cluster: LocalCluster, client: Client, namespace: str, admin: Caller, tmp_path: Path
) -> None:
    await _viewer_account(client, namespace)
    pod = await client.create(PODS, busybox_pod("web", serviceAccountName="robot"), namespace)
    uid = pod["metadata"]["uid"]
    token = await _request_token(
        admin,
        namespace,
        "robot",
        boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": uid},
    )
    assert _claims(token)["kubernetes.io"]["pod"] == {"name": "web", "uid": uid}
    robot = Caller(cluster, tmp_path, None, token)
    path = f"/api/v1/namespaces/{namespace}/pods"
    code, _ = await wait_allowed(robot, path)
    assert code == 200

    await client.delete(PODS, "web", namespace)
    code, _ = await poll(lambda: robot("GET", path), lambda answer: answer[0] == 401)
    assert code == 401, "a token bound to a deleted pod still authenticates"
    # A new pod of the same name is another pod: the token stays dead.
    await client.create(PODS, busybox_pod("web", serviceAccountName="robot"), namespace)
    code, _ = await robot("GET", path)
    assert code == 401


async def test_a_token_dies_when_its_service_account_is_replaced(
    cluster: LocalCluster, client: Client, namespace: str, admin: Caller, tmp_path: Path
) -> None:
    await _viewer_account(client, namespace)
    token = await _request_token(admin, namespace, "robot")
    robot = Caller(cluster, tmp_path, None, token)
    path = f"/api/v1/namespaces/{namespace}/pods"
    code, _ = await wait_allowed(robot, path)
    assert code == 200

    await client.delete(SERVICEACCOUNTS, "robot", namespace)
    await client.create(SERVICEACCOUNTS, {"metadata": {"name": "robot"}}, namespace)
    code, _ = await poll(lambda: robot("GET", path), lambda answer: answer[0] == 401)
    assert code == 401, "a token outlived its ServiceAccount (same name, new uid)"


async def test_token_requests_are_checked(
    cluster: LocalCluster, client: Client, namespace: str, admin: Caller, tmp_path: Path
) -> None:
    await _viewer_account(client, namespace)
    await client.create(SERVICEACCOUNTS, {"metadata": {"name": "other"}}, namespace)
    pod = await client.create(PODS, busybox_pod("web", serviceAccountName="other"), namespace)
    base = f"/api/v1/namespaces/{namespace}/serviceaccounts"

    code, status = await admin("POST", f"{base}/robot/token", _token_request(expirationSeconds=60))
    assert code == 422 and status["details"]["causes"][0]["field"] == "spec.expirationSeconds"
    code, status = await admin(
        "POST", f"{base}/robot/token", _token_request(expirationSeconds=10**7)
    )
    assert code == 201 and status["spec"]["expirationSeconds"] == 48 * 3600, "not clamped"
    code, status = await admin("POST", f"{base}/missing/token", _token_request())
    assert code == 404, status
    bound = {"kind": "Pod", "apiVersion": "v1", "name": "web"}
    code, status = await admin("POST", f"{base}/robot/token", _token_request(boundObjectRef=bound))
    assert code == 400 and "different serviceaccount" in status["message"]
    stale = {**bound, "uid": "not-" + pod["metadata"]["uid"]}
    code, status = await admin("POST", f"{base}/other/token", _token_request(boundObjectRef=stale))
    assert code == 409, status
    code, status = await admin(
        "POST", f"{base}/robot/token", _token_request(boundObjectRef={"kind": "Node", "name": "n"})
    )
    assert code == 400, status
    code, status = await admin("POST", f"{base}/robot/token", {"spec": {"audiences": "x"}})
    assert code == 400, status

    # view may read ServiceAccounts but not mint their tokens; edit may.
    viewer = Caller(cluster, tmp_path, identity(cluster, f"viewer-{namespace}"), "")
    await client.create(
        ROLEBINDINGS,
        {
            "metadata": {"name": "viewer"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": f"viewer-{namespace}", "apiGroup": GROUP}],
        },
        namespace,
    )
    await wait_allowed(viewer, f"/api/v1/namespaces/{namespace}/serviceaccounts")
    code, status = await viewer("POST", f"{base}/robot/token", _token_request())
    assert code == 403 and "serviceaccounts/token" in status["message"], status
    editor = Caller(cluster, tmp_path, identity(cluster, f"editor-{namespace}"), "")
    await client.create(
        ROLEBINDINGS,
        {
            "metadata": {"name": "editor"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": f"editor-{namespace}", "apiGroup": GROUP}],
        },
        namespace,
    )
    code, _ = await poll(
        lambda: editor("POST", f"{base}/robot/token", _token_request()),
        lambda answer: answer[0] != 403,
    )
    assert code == 201


async def test_a_node_gets_tokens_only_for_its_own_pods(
    cluster: LocalCluster, client: Client, namespace: str, tmp_path: Path
) -> None:
    await _viewer_account(client, namespace)
    mine = await client.create(
        PODS, busybox_pod("mine", node="tok-node-a", serviceAccountName="robot"), namespace
    )
    theirs = await client.create(
        PODS, busybox_pod("theirs", node="tok-node-b", serviceAccountName="robot"), namespace
    )
    node = Caller(
        cluster, tmp_path, identity(cluster, "system:node:tok-node-a", ("system:nodes",)), ""
    )
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/robot/token"

    def bound_to(pod: Obj) -> Obj:
        ref = {"kind": "Pod", "apiVersion": "v1"}
        ref.update(name=pod["metadata"]["name"], uid=pod["metadata"]["uid"])
        return _token_request(boundObjectRef=ref)

    code, answer = await poll(
        lambda: node("POST", path, bound_to(mine)), lambda answer: answer[0] != 403
    )
    assert code == 201, answer
    assert _claims(answer["status"]["token"])["kubernetes.io"]["node"]["name"] == "tok-node-a"
    code, status = await node("POST", path, bound_to(theirs))
    assert code == 403 and "different node" in status["message"], status
    code, status = await node("POST", path, _token_request())
    assert code == 403, "a node minted an unbound token"
    code, status = await node(
        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/other/token", bound_to(mine)
    )
    assert code == 403, "a node minted a token for a ServiceAccount none of its pods runs as"


def _token_secret(name: str, account: str, chosen: str = "") -> Obj:
    secret: Obj = {
        "metadata": {
            "name": name,
            "annotations": {"kubernetes.io/service-account.name": account},
        },
        "type": "kubernetes.io/service-account-token",
    }
    if chosen:
        secret["stringData"] = {"token": chosen}
    return secret


async def test_a_secret_cannot_mint_a_token_for_a_service_account(
    cluster: LocalCluster, client: Client, namespace: str, tmp_path: Path
) -> None:
    """Whoever may create Secrets must not become any ServiceAccount (issue 15)."""
    await _viewer_account(client, namespace)
    created = await client.create(SECRETS, _token_secret("robot-token", "robot"), namespace)
    assert "token" not in (created.get("data") or {}), "the server filled a legacy token"
    chosen = "attacker-chosen-token-0123456789abcdef"
    await client.create(SECRETS, _token_secret("chosen-token", "robot", chosen), namespace)
    path = f"/api/v1/namespaces/{namespace}/pods"
    # Give the server's watch cache time to see the Secret before asking.
    await poll(lambda: client.get(SECRETS, "chosen-token", namespace), bool)
    code, status = await Caller(cluster, tmp_path, None, chosen)("GET", path)
    assert code == 401, status


async def test_the_legacy_flag_restores_secret_tokens(
    cluster_factory: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    legacy = cluster_factory(apiserver_args=("--legacy-service-account-token-secrets",))
    async with Client(legacy.client_config()) as client:
        await _viewer_account(client, "default", "legacy")
        created = await client.create(SECRETS, _token_secret("legacy-token", "legacy"), "default")
        token = base64.b64decode(created["data"]["token"]).decode()
    assert token
    code, _ = await wait_allowed(
        Caller(legacy, tmp_path, None, token), "/api/v1/namespaces/default/pods"
    )
    assert code == 200


def test_the_official_python_client_requests_a_token(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    api_client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = k8s.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="py"))
    )
    answer = core.create_namespaced_service_account_token(
        "py",
        namespace,
        k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=900)
        ),
    )
    assert answer.spec.expiration_seconds == 900
    assert answer.status.expiration_timestamp is not None
    claims = _claims(answer.status.token)
    assert claims["sub"] == f"system:serviceaccount:{namespace}:py"
    # The token works with the same client library: the 403 names the account.
    configuration = k8s.Configuration()
    configuration.host = cluster.url
    configuration.ssl_ca_cert = str(cluster.pki.ca_cert)
    configuration.api_key = {"authorization": answer.status.token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    as_py = k8s.CoreV1Api(k8s.ApiClient(configuration))
    with pytest.raises(k8s.ApiException) as refused:
        as_py.list_namespaced_secret(namespace)
    assert refused.value.status == 403
    assert f"system:serviceaccount:{namespace}:py" in str(refused.value.body)
