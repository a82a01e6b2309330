"""Attacks through the query string: what is authorized must be what is served.

Each test talks to a real API server over HTTPS as an identity the cluster
CA issued. The first three are the reproduced attacks, each of which was
answered 200 with data the caller may not read: the front door read a
repeated parameter's first non-blank value, the handler its last value.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from corral import pki
from corral.client.rest import Client
from corral.objects import Obj
from tests.conftest import LocalCluster, start_cluster, unique_name
from tests.integration.test_security import (
    NODES,
    PODS,
    ROLEBINDINGS,
    ROLES,
    SECRETS,
    Caller,
    binding,
    busybox_pod,
    identity,
    node_identity,
    poll,
    wait_allowed,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def caller(cluster: LocalCluster, tmp_path: Path) -> Callable[..., Caller]:
    def make(pair: pki.KeyPair | None = None, token: str = "") -> Caller:
        return Caller(cluster, tmp_path, pair, token)

    return make


async def grant(client: Client, namespace: str, user: str, rule: Obj) -> None:
    name = unique_name("grant")
    await client.create(ROLES, {"metadata": {"name": name}, "rules": [rule]}, namespace)
    await client.create(ROLEBINDINGS, binding(name, "Role", name, user), namespace)


def assert_repeated(code: int, status: Obj, parameter: str) -> None:
    assert code == 400, status
    assert status["kind"] == "Status" and status["reason"] == "BadRequest", status
    assert [c["field"] for c in status["details"]["causes"]] == [parameter], status
    assert parameter in status["message"]


# --- (a) resourceNames, widened by a blank second fieldSelector ---------------------------


async def test_a_grant_on_one_secret_cannot_list_them_all_with_a_blank_second_selector(
    cluster: LocalCluster, client: Client, namespace: str, caller: Callable[..., Caller]
) -> None:
    for name, value in (("x", "mine"), ("other", "not-yours"), ("sa-token", "also-not")):
        await client.create(
            SECRETS, {"metadata": {"name": name}, "stringData": {"k": value}}, namespace
        )
    user = unique_name("one-secret")
    reader = caller(identity(cluster, user))
    rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
    await grant(client, namespace, user, {**rule, "resourceNames": ["x"]})
    base = f"/api/v1/namespaces/{namespace}/secrets"

    # The grant works for what it names, and only that.
    code, listed = await wait_allowed(reader, f"{base}?fieldSelector=metadata.name%3Dx")
    assert code == 200, listed
    assert [s["metadata"]["name"] for s in listed["items"]] == ["x"]
    code, _ = await reader("GET", base)
    assert code == 403

    code, status = await reader("GET", f"{base}?fieldSelector=metadata.name%3Dx&fieldSelector=")
    assert "items" not in status, "every secret in the namespace was served"
    assert_repeated(code, status, "fieldSelector")
    # The blank first: the same refusal, whichever order.
    code, status = await reader("GET", f"{base}?fieldSelector=&fieldSelector=metadata.name%3Dx")
    assert_repeated(code, status, "fieldSelector")


# --- (b) a watch-only grant turned into a list ---------------------------------------------


async def test_a_watch_only_grant_cannot_list_with_a_blank_second_watch(
    cluster: LocalCluster, client: Client, namespace: str, caller: Callable[..., Caller]
) -> None:
    await client.create(SECRETS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}}, namespace)
    user = unique_name("watcher")
    watcher = caller(identity(cluster, user))
    await grant(
        client, namespace, user, {"apiGroups": [""], "resources": ["secrets"], "verbs": ["watch"]}
    )
    base = f"/api/v1/namespaces/{namespace}/secrets"

    code, streamed = await wait_allowed(watcher, f"{base}?watch=true&timeoutSeconds=1")
    assert code == 200, streamed
    code, _ = await watcher("GET", base)
    assert code == 403

    for query in ("watch=true&watch=", "watch=1&watch=false", "watch=true&watch=true"):
        code, status = await watcher("GET", f"{base}?{query}")
        assert "items" not in status, (query, "a list was served to a watch-only grant")
        assert_repeated(code, status, "watch")


# --- (c) a node reading pods bound to another node -------------------------------------------


@pytest.fixture
async def two_nodes(client: Client, namespace: str) -> AsyncIterator[Obj]:
    a, b = unique_name("node-a"), unique_name("node-b")
    for node in (a, b):
        await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    await client.create(PODS, busybox_pod("on-a", a), namespace)
    await client.create(PODS, busybox_pod("on-b", b), namespace)
    yield {"a": a, "b": b, "ns": namespace}
    for node in (a, b):
        await client.delete(NODES, node)


async def test_a_node_cannot_read_another_nodes_pods_with_a_second_selector(
    cluster: LocalCluster, two_nodes: Obj, caller: Callable[..., Caller]
) -> None:
    a, ns = two_nodes["a"], two_nodes["ns"]
    node_a = caller(node_identity(cluster, a))
    mine = f"fieldSelector=spec.nodeName%3D{a}"
    code, listed = await wait_allowed(node_a, f"/api/v1/namespaces/{ns}/pods?{mine}")
    assert code == 200, listed
    assert [p["metadata"]["name"] for p in listed["items"]] == ["on-a"]

    for path in ("/api/v1/pods", f"/api/v1/namespaces/{ns}/pods"):
        for query in (f"{mine}&fieldSelector=", f"{mine}&fieldSelector=metadata.name%3Don-b"):
            code, status = await node_a("GET", f"{path}?{query}")
            assert "items" not in status, (path, query, "another node's pods were served")
            assert_repeated(code, status, "fieldSelector")
        code, status = await node_a("GET", f"{path}?{mine}&watch=true&watch=")
        assert code == 400, status


# --- repeated parameters, everywhere ---------------------------------------------------------


async def test_a_repeated_single_parameter_is_a_400_naming_it_on_every_verb(
    cluster: LocalCluster, client: Client, namespace: str, caller: Callable[..., Caller]
) -> None:
    admin = caller(token=cluster.pki.admin_token())
    await client.create(PODS, busybox_pod("web"), namespace)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    cases = [
        ("GET", f"{pods}?limit=1&limit=500", None, "limit"),
        ("GET", f"{pods}?labelSelector=a%3Db&labelSelector=", None, "labelSelector"),
        ("GET", f"{pods}?resourceVersion=0&resourceVersion=1", None, "resourceVersion"),
        ("GET", f"{pods}?continue=&continue=", None, "continue"),
        ("GET", f"{pods}/web?pretty=true&pretty=false", None, "pretty"),
        ("GET", f"{pods}/web/log?container=c&container=d", None, "container"),
        ("GET", f"{pods}/web/log?tailLines=1&follow=true&tailLines=", None, "tailLines"),
        ("POST", f"{pods}?fieldManager=a&fieldManager=b", busybox_pod("x"), "fieldManager"),
        (
            "PATCH",
            f"{pods}/web?fieldValidation=Strict&fieldValidation=Ignore",
            {},
            "fieldValidation",
        ),
        (
            "DELETE",
            f"{pods}/web?gracePeriodSeconds=0&gracePeriodSeconds=30",
            None,
            "gracePeriodSeconds",
        ),
        (
            "DELETE",
            f"{pods}?propagationPolicy=Orphan&propagationPolicy=",
            None,
            "propagationPolicy",
        ),
    ]
    for method, path, body, parameter in cases:
        code, status = await admin(method, path, body)
        assert_repeated(code, status, parameter)
    # Nothing was written or deleted by a refused request.
    code, pod = await admin("GET", f"{pods}/web")
    assert code == 200 and "deletionTimestamp" not in pod["metadata"]
    # List-valued parameters may repeat, as Kubernetes takes them.
    code, status = await admin("POST", f"{pods}?dryRun=All&dryRun=All", busybox_pod("dry"))
    assert code == 201, status
    code, _ = await admin("GET", f"{pods}/dry")
    assert code == 404, "a dry run was written"
    # A blank value is the parameter left out, for the authorizer and the handler alike.
    code, listed = await admin("GET", f"{pods}?fieldSelector=&labelSelector=&limit=&watch=")
    assert code == 200 and [p["metadata"]["name"] for p in listed["items"]] == ["web"], listed


# --- a cluster of its own: the watch cap and the audit log ------------------------------------


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Two watches per user, and an audit log."""
    root = tmp_path_factory.mktemp("capped")
    local = start_cluster(
        root,
        apiserver_args=(
            "--max-watches-per-user=2",
            "--audit-log-path",
            str(root / "audit.log"),
        ),
    )
    yield local
    local.stop()


def tls_as(cluster: LocalCluster, pair: pki.KeyPair, tmp: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    cert, key = tmp / f"{id(pair)}.crt", tmp / f"{id(pair)}.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    context.load_cert_chain(cert, key)
    return context


async def test_watches_beyond_the_per_user_cap_are_429_until_one_ends(
    capped: LocalCluster, tmp_path: Path
) -> None:
    ca = capped.pki.ca()
    first = tls_as(capped, pki.issue(ca, unique_name("watcher"), (pki.MASTERS_GROUP,)), tmp_path)
    second = tls_as(capped, pki.issue(ca, unique_name("other"), (pki.MASTERS_GROUP,)), tmp_path)
    watch = capped.url + "/api/v1/namespaces/default/configmaps?watch=true"

    streams: list[aiohttp.ClientResponse] = []
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())

        def cut_open_streams() -> None:
            # Close each stream's connection, so that neither its socket nor
            # aiohttp's Connection object outlives the test: a finalizer's
            # ResourceWarning would otherwise fail whichever test it lands in.
            for response in streams:
                response.close()

        stack.callback(cut_open_streams)

        async def open_watch(context: ssl.SSLContext, query: str = "") -> aiohttp.ClientResponse:
            response = await session.get(watch + query, ssl=context)
            streams.append(response)
            return response

        held = [await open_watch(first) for _ in range(2)]
        assert [r.status for r in held] == [200, 200]

        refused = await open_watch(first)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        status = json.loads(await refused.read())
        assert (status["kind"], status["code"], status["reason"]) == (
            "Status",
            429,
            "TooManyRequests",
        )
        assert "watches" in status["message"]
        # The cap is per user: another identity still watches, and plain reads still work.
        other = await open_watch(second)
        assert other.status == 200
        async with session.get(watch.split("?")[0], ssl=first) as listed:
            assert listed.status == 200

        # A client that goes away gives its slot back.
        held[0].close()

        async def reopen() -> int:
            async with session.get(watch + "&timeoutSeconds=1", ssl=first) as response:
                await response.read()
                return response.status

        assert await poll(reopen, lambda code: code == 200) == 200
        # So does a watch that ends on its own (timeoutSeconds above, and this one).
        async with session.get(watch + "&timeoutSeconds=1", ssl=first) as ended:
            assert ended.status == 200
            await ended.read()
        # The slot is free before the client sees the end: reconnecting at once works.
        again = await open_watch(first)
        assert again.status == 200
        assert (await open_watch(first)).status == 429
    # The closed TLS connections finish closing over the next turns of the loop.
    await asyncio.sleep(0.2)


async def test_secret_reads_are_audited_at_metadata_without_their_data(
    capped: LocalCluster,
) -> None:
    name = unique_name("audited")
    value = unique_name("sekrit-value")
    async with Client(capped.client_config()) as admin:
        await admin.create(
            SECRETS, {"metadata": {"name": name}, "stringData": {"k": value}}, "default"
        )
        await admin.get(SECRETS, name, "default")
        await admin.list(SECRETS, "default")
    audit = capped.root / "audit.log"

    def reads(events: list[Obj]) -> list[Obj]:
        return [
            e
            for e in events
            if e["verb"] in ("get", "list")
            and e.get("objectRef", {}).get("resource") == "secrets"
            and e["user"]["username"] == pki.ADMIN_USER
        ]

    async def written() -> list[Obj]:
        text = audit.read_text() if audit.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    events = await poll(written, lambda found: len(reads(found)) >= 2)
    found = reads(events)
    assert [e["verb"] for e in found] == ["get", "list"], found
    assert found[0]["objectRef"]["name"] == name
    for event in found:
        assert event["level"] == "Metadata"
        assert event["responseStatus"]["code"] == 200
        assert "requestObject" not in event and "responseObject" not in event
    assert value not in audit.read_text()
    assert not any(
        e["verb"] in ("get", "list") and e.get("objectRef", {}).get("resource") == "configmaps"
        for e in events
    ), "other reads stay out of the log"


async def test_a_refused_repeated_parameter_on_secrets_is_audited(capped: LocalCluster) -> None:
    path = "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Dx&fieldSelector="
    async with (
        aiohttp.ClientSession() as session,
        session.get(capped.url + path, ssl=capped.ssl_context()) as response,
    ):
        assert response.status == 400
    audit = capped.root / "audit.log"

    async def attempts() -> list[Obj]:
        text = audit.read_text() if audit.exists() else ""
        events = [json.loads(line) for line in text.splitlines()]
        return [e for e in events if e["requestURI"].endswith(path.split("?")[1])]

    (event,) = await poll(attempts, bool)
    assert event["responseStatus"]["code"] == 400
    assert event["objectRef"]["resource"] == "secrets"
