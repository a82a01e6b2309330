"""The RBAC authorizer: Kubernetes' rule matching, bindings, aggregation and messages."""

from __future__ import annotations

import pytest

from controlplane.auth.attributes import RequestAttributes, UserInfo
from controlplane.auth.authorizer import (
    Chain,
    Decision,
    allow,
    authorize_request,
    deny,
    forbidden_error,
    no_opinion,
    require,
)
from controlplane.auth.rbac import PolicySource, RBACAuthorizer, static_source
from corral.api.errors import ApiError
from corral.objects import Obj

from .helpers import (
    attrs,
    cluster_role,
    cluster_role_binding,
    request,
    role,
    role_binding,
    rule,
    subject,
    user,
)

CI = user("ci")
ALICE = user("alice")


def authorizer(
    roles: list[Obj] | None = None,
    cluster_roles: list[Obj] | None = None,
    role_bindings: list[Obj] | None = None,
    cluster_role_bindings: list[Obj] | None = None,
) -> RBACAuthorizer:
    return RBACAuthorizer(
        static_source(
            roles or [], cluster_roles or [], role_bindings or [], cluster_role_bindings or []
        )
    )


def one_role(*rules: Obj, who: Obj | None = None, namespace: str = "prod") -> RBACAuthorizer:
    """A Role in ``namespace`` with ``rules``, bound to ``who`` (the user ci)."""
    return authorizer(
        roles=[role("r", namespace, *rules)],
        role_bindings=[role_binding("b", namespace, "Role", "r", who or subject("User", "ci"))],
    )


def allowed(auth: RBACAuthorizer | Chain, a: RequestAttributes) -> bool:
    return auth.authorize(a).allowed


# --- matching -------------------------------------------------------------------------


def test_exact_rule_allows() -> None:
    auth = one_role(rule(["get"], [""], ["pods"]))
    decision = auth.authorize(attrs(CI, "get", "pods", namespace="prod", name="web"))
    assert decision.allowed
    assert decision.reason == 'RBAC: allowed by RoleBinding "b/prod" of Role "r" to User "ci"'


def test_other_verb_has_no_opinion() -> None:
    auth = one_role(rule(["get"], [""], ["pods"]))
    decision = auth.authorize(attrs(CI, "delete", "pods", namespace="prod", name="web"))
    assert decision == no_opinion()


def test_verb_wildcard() -> None:
    auth = one_role(rule(["*"], [""], ["pods"]))
    assert allowed(auth, attrs(CI, "deletecollection", "pods", namespace="prod"))


def test_resource_wildcard_covers_subresources() -> None:
    auth = one_role(rule(["get"], [""], ["*"]))
    assert allowed(auth, attrs(CI, "get", "pods", namespace="prod", name="p", subresource="log"))


def test_api_group_must_match() -> None:
    auth = one_role(rule(["get"], [""], ["deployments"]))
    assert not allowed(auth, attrs(CI, "get", "deployments", namespace="prod", group="apps"))


def test_api_group_wildcard() -> None:
    auth = one_role(rule(["get"], ["*"], ["deployments"]))
    assert allowed(auth, attrs(CI, "get", "deployments", namespace="prod", group="apps"))


def test_core_group_is_the_empty_string() -> None:
    auth = one_role(rule(["get"], ["apps"], ["pods"]))
    assert not allowed(auth, attrs(CI, "get", "pods", namespace="prod"))


def test_resource_does_not_cover_its_subresources() -> None:
    auth = one_role(rule(["get"], [""], ["pods"]))
    assert not allowed(
        auth, attrs(CI, "get", "pods", namespace="prod", name="p", subresource="log")
    )


def test_resource_slash_subresource() -> None:
    auth = one_role(rule(["get"], [""], ["pods/log"]))
    assert allowed(auth, attrs(CI, "get", "pods", namespace="prod", name="p", subresource="log"))
    assert not allowed(auth, attrs(CI, "get", "pods", namespace="prod", name="p"))


def test_star_slash_subresource() -> None:
    auth = one_role(rule(["update"], ["apps"], ["*/scale"]))
    assert allowed(
        auth,
        attrs(
            CI,
            "update",
            "deployments",
            namespace="prod",
            name="d",
            group="apps",
            subresource="scale",
        ),
    )
    assert not allowed(
        auth,
        attrs(
            CI,
            "update",
            "deployments",
            namespace="prod",
            name="d",
            group="apps",
            subresource="status",
        ),
    )
    assert not allowed(
        auth, attrs(CI, "update", "deployments", namespace="prod", name="d", group="apps")
    )


def test_resource_names_limit_to_named_objects() -> None:
    auth = one_role(rule(["get", "list", "watch"], [""], ["configmaps"], resourceNames=["app"]))
    assert allowed(auth, attrs(CI, "get", "configmaps", namespace="prod", name="app"))
    assert not allowed(auth, attrs(CI, "get", "configmaps", namespace="prod", name="other"))
    # A list carries no name, so a rule with names cannot allow it ...
    assert not allowed(auth, attrs(CI, "list", "configmaps", namespace="prod"))
    # ... unless a metadata.name field selector narrows it to the object.
    narrowed = request(
        "GET",
        "/api/v1/namespaces/prod/configmaps",
        CI,
        watch="1",
        fieldSelector="metadata.name=app",
    )
    assert allowed(auth, narrowed)


def test_non_resource_urls() -> None:
    auth = authorizer(
        cluster_roles=[
            cluster_role("urls", {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]})
        ],
        cluster_role_bindings=[cluster_role_binding("b", "urls", subject("User", "ci"))],
    )
    assert allowed(auth, attrs(CI, "get", path="/healthz"))
    assert allowed(auth, attrs(CI, "get", path="/apis/apps/v1"))
    # "/apis/*" is the prefix "/apis/", which "/apis" itself lacks (as in Kubernetes).
    assert not allowed(auth, attrs(CI, "get", path="/apis"))
    assert not allowed(auth, attrs(CI, "get", path="/version"))
    assert not allowed(auth, attrs(CI, "post", path="/healthz"))


def test_non_resource_star_matches_everything() -> None:
    auth = authorizer(
        cluster_roles=[cluster_role("all", {"verbs": ["*"], "nonResourceURLs": ["*"]})],
        cluster_role_bindings=[cluster_role_binding("b", "all", subject("User", "ci"))],
    )
    assert allowed(auth, attrs(CI, "delete", path="/anything/at/all"))


def test_resource_rules_never_match_non_resource_paths() -> None:
    auth = authorizer(
        cluster_roles=[cluster_role("pods", rule(["*"], ["*"], ["*"]))],
        cluster_role_bindings=[cluster_role_binding("b", "pods", subject("User", "ci"))],
    )
    assert not allowed(auth, attrs(CI, "get", path="/healthz"))


# --- bindings ---------------------------------------------------------------------------


def _edit_in(namespace: str) -> RBACAuthorizer:
    return authorizer(
        cluster_roles=[cluster_role("edit", rule(["*"], ["", "apps"], ["*"]))],
        role_bindings=[
            role_binding("ci-edit", namespace, "ClusterRole", "edit", subject("User", "ci"))
        ],
    )


def test_role_binding_grants_a_cluster_role_in_its_namespace_only() -> None:
    auth = _edit_in("prod")
    assert allowed(auth, attrs(CI, "delete", "pods", namespace="prod", name="p"))
    assert not allowed(auth, attrs(CI, "delete", "pods", namespace="staging", name="p"))


def test_role_binding_never_grants_cluster_scoped_requests() -> None:
    auth = _edit_in("prod")
    assert not allowed(auth, attrs(CI, "get", "nodes", name="n1"))
    assert not allowed(auth, attrs(CI, "list", "pods"))  # across all namespaces


def test_role_binding_never_grants_non_resource_urls() -> None:
    auth = authorizer(
        cluster_roles=[cluster_role("urls", {"verbs": ["get"], "nonResourceURLs": ["*"]})],
        role_bindings=[role_binding("b", "prod", "ClusterRole", "urls", subject("User", "ci"))],
    )
    assert not allowed(auth, attrs(CI, "get", path="/healthz"))


def test_cluster_role_binding_grants_everywhere() -> None:
    auth = authorizer(
        cluster_roles=[cluster_role("reader", rule(["list"], [""], ["pods"]))],
        cluster_role_bindings=[cluster_role_binding("b", "reader", subject("User", "ci"))],
    )
    assert allowed(auth, attrs(CI, "list", "pods"))
    assert allowed(auth, attrs(CI, "list", "pods", namespace="anything"))


def test_cluster_role_binding_to_a_role_grants_nothing() -> None:
    binding = cluster_role_binding("b", "r", subject("User", "ci"))
    binding["roleRef"]["kind"] = "Role"
    auth = authorizer(
        roles=[role("r", "prod", rule(["*"], ["*"], ["*"]))], cluster_role_bindings=[binding]
    )
    assert not allowed(auth, attrs(CI, "get", "pods", namespace="prod", name="p"))


def test_role_in_another_namespace_is_not_used() -> None:
    auth = authorizer(
        roles=[role("r", "staging", rule(["get"], [""], ["pods"]))],
        role_bindings=[role_binding("b", "prod", "Role", "r", subject("User", "ci"))],
    )
    decision = auth.authorize(attrs(CI, "get", "pods", namespace="prod", name="p"))
    assert not decision.allowed
    assert decision.reason == 'RBAC: role.rbac.authorization.k8s.io "r" not found'


def test_missing_cluster_roles_are_reasons() -> None:
    auth = authorizer(
        cluster_role_bindings=[
            cluster_role_binding("b1", "gone", subject("User", "ci")),
            cluster_role_binding("b2", "also-gone", subject("User", "ci")),
        ]
    )
    decision = auth.authorize(attrs(CI, "get", "pods", namespace="prod", name="p"))
    assert decision.reason == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
        'clusterrole.rbac.authorization.k8s.io "also-gone" not found]'
    )


def test_group_subject() -> None:
    auth = one_role(rule(["get"], [""], ["pods"]), who=subject("Group", "deployers"))
    assert allowed(auth, attrs(user("x", "deployers"), "get", "pods", namespace="prod", name="p"))
    assert not allowed(auth, attrs(user("x"), "get", "pods", namespace="prod", name="p"))


def test_system_authenticated_group() -> None:
    auth = one_role(rule(["list"], [""], ["pods"]), who=subject("Group", "system:authenticated"))
    assert allowed(auth, attrs(user("anyone"), "list", "pods", namespace="prod"))
    anonymous = UserInfo("system:anonymous", ("system:unauthenticated",))
    assert not allowed(auth, attrs(anonymous, "list", "pods", namespace="prod"))


def test_user_name_is_not_a_group_name() -> None:
    auth = one_role(rule(["get"], [""], ["pods"]), who=subject("Group", "ci"))
    assert not allowed(auth, attrs(UserInfo("ci"), "get", "pods", namespace="prod", name="p"))


def test_system_masters_may_do_anything() -> None:
    auth = authorizer()
    admin = user("root", "system:masters")
    assert allowed(auth, attrs(admin, "delete", "nodes", name="n1"))
    assert allowed(auth, attrs(admin, "get", path="/whatever"))


def test_service_account_subject() -> None:
    sa = UserInfo("system:serviceaccount:prod:deployer", ("system:serviceaccounts",))
    auth = one_role(
        rule(["get"], [""], ["pods"]), who=subject("ServiceAccount", "deployer", "prod")
    )
    assert allowed(auth, attrs(sa, "get", "pods", namespace="prod", name="p"))
    other = UserInfo("system:serviceaccount:staging:deployer")
    assert not allowed(auth, attrs(other, "get", "pods", namespace="prod", name="p"))


def test_service_account_subject_defaults_to_the_binding_namespace() -> None:
    sa = UserInfo("system:serviceaccount:prod:deployer")
    auth = one_role(rule(["get"], [""], ["pods"]), who=subject("ServiceAccount", "deployer"))
    assert allowed(auth, attrs(sa, "get", "pods", namespace="prod", name="p"))


def test_index_holds_only_the_users_grants() -> None:
    bindings = [
        role_binding(f"b{i}", "prod", "Role", "r", subject("User", f"user{i}")) for i in range(500)
    ]
    auth = authorizer(
        roles=[role("r", "prod", rule(["get"], [""], ["pods"]))], role_bindings=bindings
    )
    assert len(auth.grants(UserInfo("user7"), "prod")) == 1
    assert auth.grants(UserInfo("nobody"), "prod") == []


def test_rules_for_lists_what_a_user_holds() -> None:
    auth = one_role(rule(["get"], [""], ["pods"]), rule(["list"], [""], ["pods"]))
    assert [r.to_dict()["verbs"] for r in auth.rules_for(CI, "prod")] == [["get"], ["list"]]
    assert auth.rules_for(CI, "staging") == []


# --- aggregation ----------------------------------------------------------------------------


AGG = {"matchLabels": {"aggregate-to-reader": "true"}}


def test_aggregated_role_unions_the_selected_roles() -> None:
    auth = authorizer(
        cluster_roles=[
            cluster_role("reader", aggregate=[AGG]),
            cluster_role(
                "pods", rule(["get"], [""], ["pods"]), labels={"aggregate-to-reader": "true"}
            ),
            cluster_role(
                "svc", rule(["get"], [""], ["services"]), labels={"aggregate-to-reader": "true"}
            ),
            cluster_role("other", rule(["get"], [""], ["secrets"])),
        ],
        cluster_role_bindings=[cluster_role_binding("b", "reader", subject("User", "ci"))],
    )
    assert allowed(auth, attrs(CI, "get", "pods", namespace="x", name="p"))
    assert allowed(auth, attrs(CI, "get", "services", namespace="x", name="s"))
    assert not allowed(auth, attrs(CI, "get", "secrets", namespace="x", name="s"))


def test_aggregated_role_ignores_its_own_rules() -> None:
    reader = cluster_role("reader", rule(["get"], [""], ["secrets"]), aggregate=[AGG])
    auth = authorizer(
        cluster_roles=[reader],
        cluster_role_bindings=[cluster_role_binding("b", "reader", subject("User", "ci"))],
    )
    assert not allowed(auth, attrs(CI, "get", "secrets", namespace="x", name="s"))


def test_aggregation_is_transitive() -> None:
    auth = authorizer(
        cluster_roles=[
            cluster_role("top", aggregate=[{"matchLabels": {"to-top": "true"}}]),
            cluster_role(
                "middle",
                labels={"to-top": "true"},
                aggregate=[{"matchLabels": {"to-middle": "true"}}],
            ),
            cluster_role("base", rule(["get"], [""], ["pods"]), labels={"to-middle": "true"}),
        ],
        cluster_role_bindings=[cluster_role_binding("b", "top", subject("User", "ci"))],
    )
    assert allowed(auth, attrs(CI, "get", "pods", namespace="x", name="p"))


def test_aggregation_cycles_end() -> None:
    auth = authorizer(
        cluster_roles=[
            cluster_role(
                "a", labels={"to-b": "true"}, aggregate=[{"matchLabels": {"to-a": "true"}}]
            ),
            cluster_role(
                "b", labels={"to-a": "true"}, aggregate=[{"matchLabels": {"to-b": "true"}}]
            ),
            cluster_role("leaf", rule(["get"], [""], ["pods"]), labels={"to-a": "true"}),
        ],
        cluster_role_bindings=[cluster_role_binding("x", "b", subject("User", "ci"))],
    )
    # b aggregates a, which aggregates leaf (and b, cut as a cycle).
    assert allowed(auth, attrs(CI, "get", "pods", namespace="x", name="p"))


def test_aggregation_with_match_expressions() -> None:
    selector = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}
    auth = authorizer(
        cluster_roles=[
            cluster_role("gold", aggregate=[selector]),
            cluster_role("g1", rule(["get"], [""], ["pods"]), labels={"tier": "gold"}),
            cluster_role("s1", rule(["get"], [""], ["secrets"]), labels={"tier": "silver"}),
        ],
        cluster_role_bindings=[cluster_role_binding("b", "gold", subject("User", "ci"))],
    )
    assert allowed(auth, attrs(CI, "get", "pods", namespace="x", name="p"))
    assert not allowed(auth, attrs(CI, "get", "secrets", namespace="x", name="s"))


def test_aggregated_cluster_role_bound_in_a_namespace() -> None:
    auth = authorizer(
        cluster_roles=[
            cluster_role("reader", aggregate=[AGG]),
            cluster_role(
                "pods", rule(["get"], [""], ["pods"]), labels={"aggregate-to-reader": "true"}
            ),
        ],
        role_bindings=[role_binding("b", "prod", "ClusterRole", "reader", subject("User", "ci"))],
    )
    assert allowed(auth, attrs(CI, "get", "pods", namespace="prod", name="p"))
    assert not allowed(auth, attrs(CI, "get", "pods", namespace="dev", name="p"))


# --- the index follows the source -------------------------------------------------------------


class CountingSource:
    def __init__(self) -> None:
        self.version = 1
        self.lists = 0
        self.bindings: list[Obj] = []

    def source(self) -> PolicySource:
        def bindings() -> list[Obj]:
            self.lists += 1
            return self.bindings

        return PolicySource(
            roles=lambda: [role("r", "prod", rule(["get"], [""], ["pods"]))],
            cluster_roles=list,
            role_bindings=bindings,
            cluster_role_bindings=list,
            version=lambda: self.version,
        )


def test_index_is_rebuilt_only_when_the_version_moves() -> None:
    counting = CountingSource()
    auth = RBACAuthorizer(counting.source())
    request_ = attrs(CI, "get", "pods", namespace="prod", name="p")
    assert not allowed(auth, request_)
    assert not allowed(auth, request_)
    assert counting.lists == 1
    counting.bindings.append(role_binding("b", "prod", "Role", "r", subject("User", "ci")))
    assert not allowed(auth, request_)  # same version: the old index still answers
    counting.version = 2
    assert allowed(auth, request_)
    assert counting.lists == 2


def test_without_a_version_every_call_rebuilds() -> None:
    calls: list[int] = []

    def bindings() -> list[Obj]:
        calls.append(1)
        return []

    auth = RBACAuthorizer(PolicySource(list, list, bindings, list))
    auth.authorize(attrs(CI, "get", "pods", namespace="prod"))
    auth.authorize(attrs(CI, "get", "pods", namespace="prod"))
    assert len(calls) == 2


# --- denial messages -------------------------------------------------------------------------


def test_denial_message_in_a_namespace() -> None:
    error = forbidden_error(attrs(user("ci"), "deletecollection", "pods", namespace="prod"))
    assert error.code == 403
    assert error.reason == "Forbidden"
    assert error.message == (
        'pods is forbidden: User "ci" cannot deletecollection resource "pods" in API group "" '
        'in the namespace "prod"'
    )


def test_denial_message_names_the_object() -> None:
    error = forbidden_error(
        attrs(user("ci"), "delete", "deployments", namespace="prod", name="web", group="apps")
    )
    assert error.message == (
        'deployments.apps "web" is forbidden: User "ci" cannot delete resource "deployments" '
        'in API group "apps" in the namespace "prod"'
    )
    status = error.to_status()
    assert status["details"] == {"name": "web", "group": "apps", "kind": "deployments"}


def test_denial_message_at_cluster_scope_with_subresource() -> None:
    error = forbidden_error(attrs(user("ci"), "update", "nodes", name="n1", subresource="status"))
    assert error.message == (
        'nodes "n1" is forbidden: User "ci" cannot update resource "nodes/status" '
        'in API group "" at the cluster scope'
    )


def test_denial_message_for_a_path() -> None:
    error = forbidden_error(attrs(user("ci"), "get", path="/openapi/v3"))
    assert error.message == 'forbidden: User "ci" cannot get path "/openapi/v3"'


def test_denial_message_carries_the_reason() -> None:
    error = forbidden_error(attrs(user("ci"), "list", "pods"), "RBAC: clusterrole x not found")
    assert error.message.endswith("at the cluster scope: RBAC: clusterrole x not found")


# --- the chain ----------------------------------------------------------------------------------


class Fixed:
    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.asked = 0

    def authorize(self, a: RequestAttributes) -> Decision:
        self.asked += 1
        return self.decision


def test_chain_first_opinion_wins() -> None:
    second = Fixed(allow())
    chain = Chain([Fixed(deny("no")), second])
    decision = chain.authorize(attrs(CI, "get", "pods"))
    assert (decision.allowed, decision.reason, second.asked) == (False, "no", 0)


def test_chain_without_opinions_refuses_with_every_reason() -> None:
    chain = Chain([Fixed(no_opinion("first")), Fixed(no_opinion("")), Fixed(no_opinion("third"))])
    decision = chain.authorize(attrs(CI, "get", "pods"))
    assert decision == Decision(False, "first, third")


def test_chain_passes_no_opinion_on() -> None:
    chain = Chain([Fixed(no_opinion("nope")), Fixed(allow("yes"))])
    assert chain.authorize(attrs(CI, "get", "pods")) == allow("yes")


def test_websocket_exec_also_needs_create() -> None:
    getter = one_role(rule(["get"], [""], ["pods/exec"]))
    ws = request("GET", "/api/v1/namespaces/prod/pods/web/exec", CI)
    assert allowed(getter, ws)
    assert not authorize_request(getter, ws, websocket=True).allowed
    both = one_role(rule(["get", "create"], [""], ["pods/exec"]))
    assert authorize_request(both, ws, websocket=True).allowed


def test_require_raises_the_forbidden_status() -> None:
    auth = Chain([one_role(rule(["get"], [""], ["pods"]))])
    with pytest.raises(ApiError) as caught:
        require(auth, request("DELETE", "/api/v1/namespaces/prod/pods/web", CI))
    assert caught.value.code == 403
    assert caught.value.message.startswith('pods "web" is forbidden: User "ci" cannot delete')
    assert require(auth, request("GET", "/api/v1/namespaces/prod/pods/web", CI)).allowed


def test_another_user_gets_nothing_from_cis_binding() -> None:
    auth = one_role(rule(["get"], [""], ["pods"]))
    assert not allowed(auth, attrs(ALICE, "get", "pods", namespace="prod", name="p"))


def test_non_resource_request_ignores_a_namespace_it_carries() -> None:
    # A caller building attributes by hand (the agent protocol) may leave a
    # namespace on a non-resource request; RoleBindings still do not apply.
    auth = authorizer(
        cluster_roles=[cluster_role("urls", {"verbs": ["get"], "nonResourceURLs": ["*"]})],
        role_bindings=[role_binding("b", "prod", "ClusterRole", "urls", subject("User", "ci"))],
    )
    hand_made = RequestAttributes(
        CI, "get", namespace="prod", path="/healthz", resource_request=False
    )
    assert not allowed(auth, hand_made)
