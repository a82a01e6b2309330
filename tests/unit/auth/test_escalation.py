"""Escalation prevention on Role, ClusterRole and binding writes."""

from __future__ import annotations

from controlplane.auth.authorizer import Chain
from controlplane.auth.defaults import cluster_role_bindings, cluster_roles
from controlplane.auth.escalation import check_rbac_write, uncovered
from controlplane.auth.rbac import RBACAuthorizer, static_source
from controlplane.auth.rules import Rule
from corral.objects import Obj

from .helpers import cluster_role, role, role_binding, rule, subject, user

RBAC = "rbac.authorization.k8s.io"
DEV = user("dev")


def setup(*extra_bindings: Obj, extra_roles: list[Obj] | None = None) -> RBACAuthorizer:
    """dev is admin in prod (defaults), plus whatever is added."""
    bindings = [
        role_binding("dev-admin", "prod", "ClusterRole", "admin", subject("User", "dev")),
        *extra_bindings,
    ]
    return RBACAuthorizer(
        static_source(extra_roles or [], cluster_roles(), bindings, cluster_role_bindings())
    )


def write(rbac: RBACAuthorizer, kind: str, obj: Obj, who: object = DEV) -> str | None:
    error = check_rbac_write(Chain([rbac]), rbac, who, kind, obj)  # type: ignore[arg-type]
    return None if error is None else error.message


def test_a_role_within_what_one_holds() -> None:
    rbac = setup()
    obj = role("reader", "prod", rule(["get", "list"], [""], ["pods"]))
    assert write(rbac, "Role", obj) is None


def test_a_role_beyond_what_one_holds() -> None:
    rbac = setup()
    obj = role("nodes", "prod", rule(["update"], [""], ["pods/status"]))
    message = write(rbac, "Role", obj)
    assert message is not None
    assert message.startswith(
        'roles.rbac.authorization.k8s.io "nodes" is forbidden: user "dev" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        "currently held: "
    )
    assert "pods/status" in message


def test_wildcard_verbs_need_wildcard_verbs() -> None:
    rbac = setup()
    assert write(rbac, "Role", role("all", "prod", rule(["*"], [""], ["pods"]))) is not None


def test_escalate_verb_lifts_the_check() -> None:
    grant = role("escalator", "prod", rule(["escalate"], [RBAC], ["roles"]))
    rbac = setup(
        role_binding("esc", "prod", "Role", "escalator", subject("User", "dev")),
        extra_roles=[grant],
    )
    obj = role("big", "prod", rule(["*"], ["*"], ["*"]))
    assert write(rbac, "Role", obj) is None


def test_binding_admin_in_own_namespace_is_fine() -> None:
    rbac = setup()
    obj = role_binding("friend", "prod", "ClusterRole", "admin", subject("User", "friend"))
    assert write(rbac, "RoleBinding", obj) is None


def test_binding_cluster_admin_is_refused() -> None:
    rbac = setup()
    obj = role_binding("me", "prod", "ClusterRole", "cluster-admin", subject("User", "dev"))
    message = write(rbac, "RoleBinding", obj)
    assert message is not None
    assert "attempting to grant RBAC permissions not currently held" in message


def test_bind_verb_on_the_role_allows_binding_it() -> None:
    grant = cluster_role(
        "binder", rule(["bind"], [RBAC], ["clusterroles"], resourceNames=["cluster-admin"])
    )
    rbac = RBACAuthorizer(
        static_source(
            [],
            [*cluster_roles(), grant],
            [role_binding("b", "prod", "ClusterRole", "binder", subject("User", "dev"))],
            cluster_role_bindings(),
        )
    )
    ok = role_binding("x", "prod", "ClusterRole", "cluster-admin", subject("User", "dev"))
    assert write(rbac, "RoleBinding", ok) is None
    other = role_binding("x", "prod", "ClusterRole", "edit", subject("User", "dev"))
    assert write(rbac, "RoleBinding", other) is not None


def test_binding_a_missing_role() -> None:
    rbac = setup()
    obj = role_binding("x", "prod", "Role", "ghost", subject("User", "dev"))
    message = write(rbac, "RoleBinding", obj)
    assert message is not None and 'cannot bind role "ghost"' in message


def test_cluster_role_needs_cluster_wide_rules() -> None:
    rbac = setup()  # dev's grants are all inside prod
    obj = cluster_role("reader", rule(["get"], [""], ["pods"]))
    assert write(rbac, "ClusterRole", obj) is not None


def test_aggregation_rule_is_for_masters_only() -> None:
    rbac = setup()
    obj = cluster_role("agg", aggregate=[{"matchLabels": {"a": "b"}}])
    message = write(rbac, "ClusterRole", obj)
    assert message is not None and "aggregationRule" in message
    assert write(rbac, "ClusterRole", obj, user("root", "system:masters")) is None


def test_other_kinds_are_not_checked() -> None:
    rbac = setup()
    assert write(rbac, "Pod", {"metadata": {"name": "p"}}) is None


def test_cover_rules() -> None:
    owner = [
        Rule.from_dict(rule(["get"], [""], ["pods"], resourceNames=["a", "b"])),
        Rule.from_dict(rule(["update"], ["apps"], ["*/scale"])),
        Rule.from_dict({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}),
    ]

    def held(r: Obj) -> bool:
        return not uncovered(owner, [Rule.from_dict(r)])

    assert held(rule(["get"], [""], ["pods"], resourceNames=["a"]))
    assert not held(rule(["get"], [""], ["pods"]))  # every pod is more than pods a and b
    assert held(rule(["update"], ["apps"], ["deployments/scale"]))
    assert not held(rule(["update"], ["apps"], ["deployments"]))
    assert held({"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]})
    assert not held({"verbs": ["get"], "nonResourceURLs": ["/api"]})


def test_the_documented_refusal() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "security.md").read_text()
    obj = role_binding("me", "prod", "ClusterRole", "cluster-admin", subject("User", "dev"))
    assert f"Error from server (Forbidden): {write(setup(), 'RoleBinding', obj)}\n" in doc
