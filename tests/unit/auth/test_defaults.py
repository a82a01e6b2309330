"""The default roles: what each may do, and the idempotent start-up step."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controlplane.apiserver.objects import Objects
from controlplane.apiserver.policywriter import ObjectsPolicyWriter
from controlplane.auth.attributes import RequestAttributes, UserInfo
from controlplane.auth.defaults import (
    AUTOUPDATE,
    cluster_role_bindings,
    cluster_roles,
    ensure_default_policy,
    reconcile,
)
from controlplane.auth.rbac import RBACAuthorizer, static_source
from controlplane.storage.store import Stored
from corral.api import errors
from corral.api.decode import decode
from corral.api.validate.meta import validate_object_meta
from corral.api.validate.rbac import rbac_name, validate_rbac
from corral.objects import Obj

from .helpers import REGISTRY, attrs, role_binding, subject, user

NS = "prod"


def defaults_with(*role_bindings: Obj) -> RBACAuthorizer:
    return RBACAuthorizer(
        static_source([], cluster_roles(), list(role_bindings), cluster_role_bindings())
    )


def bound_to(role_name: str) -> tuple[RBACAuthorizer, UserInfo]:
    who = user("dev")
    binding = role_binding("dev", NS, "ClusterRole", role_name, subject("User", "dev"))
    return defaults_with(binding), who


def can(auth: RBACAuthorizer, a: RequestAttributes) -> bool:
    return auth.authorize(a).allowed


@pytest.mark.parametrize(
    "obj", [*cluster_roles(), *cluster_role_bindings()], ids=lambda o: o["metadata"]["name"]
)
def test_every_default_object_is_valid(obj: Obj) -> None:
    rt = REGISTRY.by_kind(obj["apiVersion"], obj["kind"])
    assert rt is not None
    model = decode(rt, obj).model
    assert validate_rbac(rt, model) == []
    assert validate_object_meta(model.metadata, rbac_name, rt.namespaced) == []  # type: ignore[attr-defined]


def test_every_binding_points_at_a_default_role() -> None:
    names = {r["metadata"]["name"] for r in cluster_roles()}
    assert {b["roleRef"]["name"] for b in cluster_role_bindings()} <= names


def test_cluster_admin_through_its_binding_rules() -> None:
    auth = RBACAuthorizer(static_source([], cluster_roles(), [], cluster_role_bindings()))
    # Not the group short cut: the rules themselves cover everything.
    rules = auth.rules_for(UserInfo("x", ("system:masters",)), "")
    everything = attrs(user("x"), "delete", "nodes", name="n1")
    assert any(r.allows(everything) for r in rules)
    assert any(r.allows(attrs(user("x"), "get", path="/anything")) for r in rules)


@pytest.mark.parametrize(
    ("verb", "resource", "group", "sub", "expected"),
    [
        ("get", "pods", "", "", True),
        ("list", "pods", "", "", True),
        ("get", "pods", "", "log", True),
        ("watch", "deployments", "apps", "", True),
        ("get", "replicasets", "apps", "scale", True),
        ("get", "poddisruptionbudgets", "policy", "", True),
        ("get", "configmaps", "", "", True),
        ("get", "secrets", "", "", False),
        ("list", "secrets", "", "", False),
        ("create", "pods", "", "exec", False),
        ("create", "pods", "", "", False),
        ("get", "roles", "rbac.authorization.k8s.io", "", False),
        ("create", "serviceaccounts", "", "token", False),
    ],
)
def test_view(verb: str, resource: str, group: str, sub: str, expected: bool) -> None:
    auth, who = bound_to("view")
    a = attrs(who, verb, resource, namespace=NS, name="x", group=group, subresource=sub)
    assert can(auth, a) is expected


@pytest.mark.parametrize(
    ("verb", "resource", "group", "sub", "expected"),
    [
        ("get", "secrets", "", "", True),
        ("create", "secrets", "", "", True),
        ("patch", "deployments", "apps", "", True),
        ("update", "deployments", "apps", "scale", True),
        ("create", "pods", "", "exec", True),
        ("create", "pods", "", "eviction", True),
        ("create", "serviceaccounts", "", "token", True),
        ("delete", "pods", "", "", True),
        ("get", "pods", "", "", True),  # from view, through aggregation
        ("create", "rolebindings", "rbac.authorization.k8s.io", "", False),
        ("update", "pods", "", "status", False),
    ],
)
def test_edit(verb: str, resource: str, group: str, sub: str, expected: bool) -> None:
    auth, who = bound_to("edit")
    a = attrs(who, verb, resource, namespace=NS, name="x", group=group, subresource=sub)
    assert can(auth, a) is expected


def test_admin_manages_roles_in_its_namespace_only() -> None:
    auth, who = bound_to("admin")
    rbac = "rbac.authorization.k8s.io"
    assert can(auth, attrs(who, "create", "rolebindings", namespace=NS, group=rbac))
    assert can(auth, attrs(who, "delete", "deployments", namespace=NS, name="d", group="apps"))
    assert can(auth, attrs(who, "get", "pods", namespace=NS, name="p"))
    assert not can(auth, attrs(who, "create", "clusterrolebindings", group=rbac))
    assert not can(auth, attrs(who, "create", "rolebindings", namespace="other", group=rbac))


def test_a_label_extends_view() -> None:
    extra = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": "leases-view",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
        },
        "rules": [
            {"verbs": ["get"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}
        ],
    }
    binding = role_binding("dev", NS, "ClusterRole", "admin", subject("User", "dev"))
    auth = RBACAuthorizer(
        static_source([], [*cluster_roles(), extra], [binding], cluster_role_bindings())
    )
    lease = attrs(user("dev"), "get", "leases", namespace=NS, name="l", group="coordination.k8s.io")
    assert can(auth, lease)  # view -> edit -> admin


@pytest.mark.parametrize(
    "path",
    ["/api", "/api/v1", "/apis", "/apis/apps/v1", "/openapi/v3", "/version", "/healthz", "/docs"],
)
def test_discovery_for_every_authenticated_user(path: str) -> None:
    auth = defaults_with()
    assert can(auth, attrs(user("anyone"), "get", path=path))


def test_anonymous_users_see_only_public_paths() -> None:
    auth = defaults_with()
    anonymous = UserInfo("system:anonymous", ("system:unauthenticated",))
    assert can(auth, attrs(anonymous, "get", path="/healthz"))
    assert can(auth, attrs(anonymous, "get", path="/ui/index.html"))
    assert not can(auth, attrs(anonymous, "get", path="/api"))
    assert not can(auth, attrs(anonymous, "list", "pods", namespace=NS))


def test_discovery_is_read_only() -> None:
    auth = defaults_with()
    assert not can(auth, attrs(user("anyone"), "post", path="/api"))


def test_scheduler() -> None:
    auth = defaults_with()
    sched = UserInfo("system:kube-scheduler", ("system:authenticated",))
    assert can(auth, attrs(sched, "create", "pods", namespace=NS, name="p", subresource="binding"))
    assert can(auth, attrs(sched, "watch", "nodes"))
    assert can(auth, attrs(sched, "patch", "pods", namespace=NS, name="p", subresource="status"))
    lease = "coordination.k8s.io"
    assert can(
        auth,
        attrs(
            sched, "update", "leases", namespace="kube-system", name="corral-scheduler", group=lease
        ),
    )
    assert not can(
        auth, attrs(sched, "update", "leases", namespace="kube-system", name="other", group=lease)
    )
    assert not can(auth, attrs(sched, "get", "secrets", namespace=NS, name="s"))


def test_controller_manager() -> None:
    auth = defaults_with()
    kcm = UserInfo("system:kube-controller-manager", ("system:authenticated",))
    assert can(auth, attrs(kcm, "create", "replicasets", namespace=NS, group="apps"))
    assert can(auth, attrs(kcm, "delete", "pods", namespace=NS, name="p"))
    assert can(auth, attrs(kcm, "deletecollection", "secrets", namespace=NS))
    assert can(
        auth, attrs(kcm, "update", "namespaces", name=NS, namespace=NS, subresource="finalize")
    )
    assert can(auth, attrs(kcm, "update", "nodes", name="n1", subresource="status"))
    assert not can(auth, attrs(kcm, "create", "secrets", namespace=NS))
    assert not can(
        auth, attrs(kcm, "create", "clusterrolebindings", group="rbac.authorization.k8s.io")
    )


def test_bootstrappers_may_only_ask_for_certificates() -> None:
    auth = defaults_with()
    joining = UserInfo("system:bootstrap:abcdef", ("system:bootstrappers", "system:authenticated"))
    assert can(
        auth, attrs(joining, "create", "certificatesigningrequests", group="certificates.k8s.io")
    )
    assert not can(auth, attrs(joining, "list", "pods"))


def test_nodes_have_no_rbac_grants() -> None:
    auth = defaults_with()
    node = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
    assert not can(auth, attrs(node, "get", "pods", namespace=NS, name="p"))
    assert not can(auth, attrs(node, "get", "secrets", namespace=NS, name="s"))


# --- reconciliation -----------------------------------------------------------------------


def _default(name: str, kind: str = "ClusterRole") -> Obj:
    every = (*cluster_roles(), *cluster_role_bindings())
    return next(o for o in every if o["metadata"]["name"] == name and o["kind"] == kind)


def test_missing_object_is_created_as_the_default() -> None:
    assert reconcile(_default("view"), None) == _default("view")


def test_up_to_date_object_needs_nothing() -> None:
    existing = copy.deepcopy(_default("system:aggregate-to-view"))
    existing["metadata"]["resourceVersion"] = "5"
    assert reconcile(_default("system:aggregate-to-view"), existing) is None


def test_removed_rule_comes_back_and_added_rule_stays() -> None:
    existing = copy.deepcopy(_default("system:aggregate-to-view"))
    removed = existing["rules"].pop(0)
    extra = {"verbs": ["get"], "apiGroups": ["x"], "resources": ["y"]}
    existing["rules"].append(extra)
    fixed = reconcile(_default("system:aggregate-to-view"), existing)
    assert fixed is not None
    assert removed in fixed["rules"]
    assert extra in fixed["rules"]


def test_autoupdate_false_opts_out() -> None:
    existing = copy.deepcopy(_default("system:aggregate-to-view"))
    existing["rules"] = []
    existing["metadata"]["annotations"][AUTOUPDATE] = "false"
    assert reconcile(_default("system:aggregate-to-view"), existing) is None


def test_removed_label_and_aggregation_come_back() -> None:
    existing = copy.deepcopy(_default("edit"))
    existing["metadata"]["labels"] = {}
    existing["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    fixed = reconcile(_default("edit"), existing)
    assert fixed is not None
    assert fixed["aggregationRule"] == _default("edit")["aggregationRule"]
    assert fixed["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"


def test_binding_subjects_are_restored_and_kept() -> None:
    default = _default("system:discovery", "ClusterRoleBinding")
    existing = copy.deepcopy(default)
    existing["subjects"] = [subject("User", "extra")]
    fixed = reconcile(default, existing)
    assert fixed is not None
    assert fixed["subjects"] == [subject("User", "extra"), subject("Group", "system:authenticated")]


def test_binding_pointing_elsewhere_is_left_alone() -> None:
    default = _default("system:discovery", "ClusterRoleBinding")
    existing = copy.deepcopy(default)
    existing["roleRef"]["name"] = "something-else"
    assert reconcile(default, existing) is None


class MemoryWriter:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self.writes: list[str] = []

    async def get(self, kind: str, name: str) -> Obj | None:
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found is not None else None

    async def create(self, kind: str, obj: Obj) -> None:
        self.writes.append(f"create {kind}/{obj['metadata']['name']}")
        self.objects[(kind, obj["metadata"]["name"])] = obj

    async def update(self, kind: str, obj: Obj) -> None:
        self.writes.append(f"update {kind}/{obj['metadata']['name']}")
        self.objects[(kind, obj["metadata"]["name"])] = obj


async def test_ensure_default_policy_is_idempotent() -> None:
    writer = MemoryWriter()
    first = await ensure_default_policy(writer)
    assert len(first) == len(cluster_roles()) + len(cluster_role_bindings())
    assert all(w.startswith("create") for w in writer.writes)
    assert await ensure_default_policy(writer) == []
    writer.objects[("ClusterRole", "system:aggregate-to-edit")]["rules"].pop()
    assert await ensure_default_policy(writer) == ["ClusterRole/system:aggregate-to-edit"]
    assert writer.writes[-1] == "update ClusterRole/system:aggregate-to-edit"


class FakeObjects:
    """The three Objects methods ObjectsPolicyWriter uses."""

    def __init__(self, fail_with: int | None = None) -> None:
        self.stored: dict[str, Obj] = {}
        self.fail_with = fail_with

    async def get(self, rt: Any, namespace: str | None, name: str) -> Stored:
        if name not in self.stored:
            raise errors.not_found(rt.plural, name, rt.group)
        return Stored(self.stored[name], 1)

    async def create_object(self, rt: Any, obj: Obj) -> Stored:
        if self.fail_with is not None:
            raise errors.ApiError(self.fail_with, "X", "x")
        self.stored[obj["metadata"]["name"]] = obj
        return Stored(obj, 1)

    async def update(self, rt: Any, namespace: str | None, name: str, obj: Obj) -> Any:
        if self.fail_with is not None:
            raise errors.ApiError(self.fail_with, "X", "x")
        self.stored[name] = obj


async def test_objects_writer_reads_writes_and_tolerates_races() -> None:
    fake = FakeObjects()
    writer = ObjectsPolicyWriter(fake, REGISTRY)  # type: ignore[arg-type]
    assert await writer.get("ClusterRole", "view") is None
    await writer.create("ClusterRole", _default("view"))
    assert await writer.get("ClusterRole", "view") == _default("view")
    raced = ObjectsPolicyWriter(FakeObjects(fail_with=409), REGISTRY)  # type: ignore[arg-type]
    await raced.create("ClusterRole", _default("view"))  # another server won: fine
    await raced.update("ClusterRole", _default("view"))
    broken = ObjectsPolicyWriter(FakeObjects(fail_with=503), REGISTRY)  # type: ignore[arg-type]
    with pytest.raises(errors.ApiError):
        await broken.create("ClusterRole", _default("view"))


def test_objects_writer_needs_the_registry_entries() -> None:
    from corral.api.resources import RESOURCES, Registry

    writer = ObjectsPolicyWriter(
        Objects.__new__(Objects),
        Registry(r for r in RESOURCES if r.group != "rbac.authorization.k8s.io"),
    )
    with pytest.raises(LookupError):
        writer._rt("ClusterRole")
