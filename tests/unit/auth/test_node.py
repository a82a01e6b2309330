"""The node authorizer: its own Node, its own pods, and what they reference."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from controlplane.auth.attributes import RequestAttributes, UserInfo
from controlplane.auth.authorizer import Chain
from controlplane.auth.defaults import cluster_role_bindings, cluster_roles
from controlplane.auth.node import NodeAuthorizer, node_name
from controlplane.auth.rbac import RBACAuthorizer, static_source
from corral.objects import Obj

from .helpers import attrs, request, user

N1 = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
N2 = UserInfo("system:node:n2", ("system:nodes", "system:authenticated"))


def pod(name: str, node: str | None, namespace: str = "prod", **spec: object) -> Obj:
    body: Obj = {"containers": [{"name": "c", "image": "i"}], **spec}
    if node is not None:
        body["nodeName"] = node
    return {"metadata": {"name": name, "namespace": namespace}, "spec": body}


PODS = [
    pod(
        "web",
        "n1",
        volumes=[{"name": "v", "secret": {"secretName": "web-tls"}}],
        imagePullSecrets=[{"name": "registry"}],
    ),
    pod(
        "db",
        "n2",
        containers=[
            {
                "name": "c",
                "image": "i",
                "env": [
                    {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db-pass", "key": "p"}}}
                ],
                "envFrom": [{"configMapRef": {"name": "db-config"}}],
            }
        ],
    ),
    pod("pending", None, volumes=[{"name": "v", "secret": {"secretName": "pending-secret"}}]),
]


def lookup(namespace: str, name: str) -> Obj | None:
    return next((p for p in PODS if p["metadata"] == {"name": name, "namespace": namespace}), None)


def on_node(node: str, namespace: str) -> Iterable[Obj]:
    return [
        p
        for p in PODS
        if p["spec"].get("nodeName") == node and p["metadata"]["namespace"] == namespace
    ]


AUTH = NodeAuthorizer(lookup, on_node)


def ok(a: RequestAttributes) -> bool:
    return AUTH.authorize(a).allowed


def test_node_identity_needs_name_and_group() -> None:
    assert node_name(N1) == "n1"
    assert node_name(UserInfo("system:node:n1")) is None
    assert node_name(UserInfo("mallory", ("system:nodes",))) is None
    assert node_name(UserInfo("system:node:", ("system:nodes",))) is None


def test_other_users_get_no_opinion() -> None:
    decision = AUTH.authorize(attrs(user("alice"), "get", "pods", namespace="prod", name="web"))
    assert decision.no_opinion and not decision.allowed


def test_get_own_pod() -> None:
    assert ok(attrs(N1, "get", "pods", namespace="prod", name="web"))


def test_get_another_nodes_pod() -> None:
    decision = AUTH.authorize(attrs(N1, "get", "pods", namespace="prod", name="db"))
    assert not decision.allowed
    assert decision.reason == "no relationship found between node 'n1' and this object"


def test_get_unscheduled_or_missing_pod() -> None:
    assert not ok(attrs(N1, "get", "pods", namespace="prod", name="pending"))
    assert not ok(attrs(N1, "get", "pods", namespace="prod", name="missing"))


def test_list_and_watch_need_its_node_name_selector() -> None:
    mine = request("GET", "/api/v1/pods", N1, watch="true", fieldSelector="spec.nodeName=n1")
    assert ok(mine)
    listed = request("GET", "/api/v1/namespaces/prod/pods", N1, fieldSelector="spec.nodeName=n1")
    assert ok(listed)
    others = request("GET", "/api/v1/pods", N1, fieldSelector="spec.nodeName=n2")
    assert not ok(others)
    everything = AUTH.authorize(request("GET", "/api/v1/pods", N1))
    assert not everything.allowed
    assert everything.reason == "can only list/watch pods with spec.nodeName field selector"


def test_not_equal_selector_is_not_enough() -> None:
    assert not ok(request("GET", "/api/v1/pods", N1, fieldSelector="spec.nodeName!=n2"))


def test_pod_status_of_own_pods_only() -> None:
    assert ok(attrs(N1, "update", "pods", namespace="prod", name="web", subresource="status"))
    assert ok(attrs(N1, "patch", "pods", namespace="prod", name="web", subresource="status"))
    assert not ok(attrs(N1, "update", "pods", namespace="prod", name="db", subresource="status"))


def test_delete_own_pod_only() -> None:
    assert ok(attrs(N1, "delete", "pods", namespace="prod", name="web"))
    assert not ok(attrs(N1, "delete", "pods", namespace="prod", name="db"))


@pytest.mark.parametrize("verb", ["create", "update", "patch", "deletecollection"])
def test_other_pod_writes_are_not_for_nodes(verb: str) -> None:
    assert not ok(attrs(N1, verb, "pods", namespace="prod", name="web"))


def test_no_eviction_or_exec() -> None:
    assert not ok(attrs(N1, "create", "pods", namespace="prod", name="web", subresource="eviction"))
    assert not ok(attrs(N1, "create", "pods", namespace="prod", name="web", subresource="exec"))


@pytest.mark.parametrize("name", ["web-tls", "registry"])
def test_read_secrets_own_pods_use(name: str) -> None:
    assert ok(attrs(N1, "get", "secrets", namespace="prod", name=name))


def test_secret_of_another_nodes_pod() -> None:
    assert ok(attrs(N2, "get", "secrets", namespace="prod", name="db-pass"))
    decision = AUTH.authorize(attrs(N1, "get", "secrets", namespace="prod", name="db-pass"))
    assert not decision.allowed
    assert "no relationship" in decision.reason


def test_secret_with_the_same_name_in_another_namespace() -> None:
    assert not ok(attrs(N1, "get", "secrets", namespace="staging", name="web-tls"))


def test_secret_of_an_unscheduled_pod() -> None:
    assert not ok(attrs(N1, "get", "secrets", namespace="prod", name="pending-secret"))


def test_configmaps_follow_the_same_rule() -> None:
    assert ok(attrs(N2, "get", "configmaps", namespace="prod", name="db-config"))
    assert not ok(attrs(N1, "get", "configmaps", namespace="prod", name="db-config"))


def test_listing_secrets_is_refused() -> None:
    assert not ok(attrs(N1, "list", "secrets", namespace="prod"))
    narrowed = request(
        "GET", "/api/v1/namespaces/prod/secrets", N1, fieldSelector="metadata.name=web-tls"
    )
    assert ok(narrowed)


def test_secrets_are_read_only() -> None:
    assert not ok(attrs(N1, "update", "secrets", namespace="prod", name="web-tls"))


def test_own_node() -> None:
    assert ok(attrs(N1, "get", "nodes", name="n1"))
    assert ok(attrs(N1, "update", "nodes", name="n1"))
    assert ok(attrs(N1, "patch", "nodes", name="n1", subresource="status"))
    assert ok(attrs(N1, "create", "nodes"))
    assert ok(request("GET", "/api/v1/nodes", N1, watch="1", fieldSelector="metadata.name=n1"))


def test_another_node() -> None:
    assert not ok(attrs(N1, "update", "nodes", name="n2"))
    assert not ok(attrs(N1, "update", "nodes", name="n2", subresource="status"))
    assert not ok(attrs(N1, "get", "nodes", name="n2"))
    assert not ok(attrs(N1, "list", "nodes"))
    assert not ok(attrs(N1, "delete", "nodes", name="n1"))


def test_own_lease() -> None:
    group = "coordination.k8s.io"
    assert ok(attrs(N1, "get", "leases", namespace="kube-node-lease", name="n1", group=group))
    assert ok(attrs(N1, "update", "leases", namespace="kube-node-lease", name="n1", group=group))
    assert ok(attrs(N1, "create", "leases", namespace="kube-node-lease", group=group))
    assert not ok(
        attrs(N1, "update", "leases", namespace="kube-node-lease", name="n2", group=group)
    )
    assert not ok(attrs(N1, "get", "leases", namespace="kube-system", name="n1", group=group))
    assert not ok(
        attrs(N1, "delete", "leases", namespace="kube-node-lease", name="n1", group=group)
    )


def test_events() -> None:
    assert ok(attrs(N1, "create", "events", namespace="prod"))
    assert ok(attrs(N1, "patch", "events", namespace="prod", name="e"))
    assert ok(attrs(N1, "create", "events", namespace="prod", group="events.k8s.io"))
    assert not ok(attrs(N1, "delete", "events", namespace="prod", name="e"))


def test_services_and_endpoints_are_readable() -> None:
    assert ok(attrs(N1, "watch", "services"))
    assert ok(attrs(N1, "list", "endpoints"))
    assert not ok(attrs(N1, "update", "services", namespace="prod", name="s"))


def test_everything_else_is_left_to_rbac() -> None:
    decision = AUTH.authorize(
        attrs(N1, "get", "deployments", namespace="prod", name="d", group="apps")
    )
    assert decision.no_opinion
    assert AUTH.authorize(attrs(N1, "get", path="/healthz")).no_opinion


def test_chained_with_the_default_policy() -> None:
    rbac = RBACAuthorizer(static_source([], cluster_roles(), [], cluster_role_bindings()))
    chain = Chain([AUTH, rbac])
    assert chain.authorize(attrs(N1, "get", "secrets", namespace="prod", name="web-tls")).allowed
    refused = chain.authorize(attrs(N1, "get", "secrets", namespace="prod", name="db-pass"))
    assert not refused.allowed
    assert refused.reason == "no relationship found between node 'n1' and this object"
    # Discovery comes from RBAC's system:authenticated grant.
    assert chain.authorize(attrs(N1, "get", path="/api")).allowed


def test_a_careless_pod_index_cannot_widen_access() -> None:
    # pods_on_node returning every pod of the namespace must not let n1 read
    # what a pod on n2 references.
    sloppy = NodeAuthorizer(lookup, lambda node, namespace: PODS)
    assert not sloppy.authorize(
        attrs(N1, "get", "secrets", namespace="prod", name="db-pass")
    ).allowed
    assert sloppy.authorize(attrs(N1, "get", "secrets", namespace="prod", name="web-tls")).allowed
