"""The rbac.authorization.k8s.io/v1 models and their validation."""

from __future__ import annotations

import copy

import pytest

from corral.api.decode import decode
from corral.api.errors import ApiError, Cause
from corral.api.rbac import ClusterRoleBinding, RoleBinding, Subject
from corral.api.resources import ResourceType
from corral.api.validate.rbac import rbac_name, validate_rbac
from corral.objects import Obj

from .helpers import REGISTRY, cluster_role, cluster_role_binding, role, role_binding, rule


def _rbac(kind: str) -> ResourceType:
    rt = REGISTRY.by_kind("rbac.authorization.k8s.io/v1", kind)
    assert rt is not None
    return rt


ROLE, CLUSTER_ROLE = _rbac("Role"), _rbac("ClusterRole")
ROLE_BINDING, CLUSTER_ROLE_BINDING = _rbac("RoleBinding"), _rbac("ClusterRoleBinding")


def causes(rt: ResourceType, body: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    model = decode(rt, body).model
    old_model = decode(rt, old).model if old is not None else None
    found: list[Cause] = validate_rbac(rt, model, old_model)
    return [(c.field, c.message) for c in found]


def test_role_round_trips_with_camel_case_names() -> None:
    body = role("r", "ns", rule(["get"], [""], ["pods"], resourceNames=["web"]))
    assert decode(ROLE, body).model.to_dict() == body


def test_non_resource_urls_keep_their_capitals() -> None:
    body = cluster_role("c", {"verbs": ["get"], "nonResourceURLs": ["/healthz"]})
    assert decode(CLUSTER_ROLE, body).model.to_dict()["rules"][0]["nonResourceURLs"] == ["/healthz"]


def test_unknown_field_in_a_rule_is_a_bad_request() -> None:
    body = role("r", "ns", {**rule(["get"], [""], ["pods"]), "verb": ["get"]})
    with pytest.raises(ApiError) as caught:
        decode(ROLE, body)
    assert caught.value.code == 400


def test_user_and_group_subjects_default_their_api_group() -> None:
    subject = Subject.model_validate({"kind": "User", "name": "ci"})
    assert subject.api_group == "rbac.authorization.k8s.io"
    sa = Subject.model_validate({"kind": "ServiceAccount", "name": "x", "namespace": "ns"})
    assert sa.api_group is None


def test_role_ref_defaults_its_api_group() -> None:
    body = role_binding("b", "ns", "Role", "r", {"kind": "User", "name": "ci"})
    del body["roleRef"]["apiGroup"]
    model = decode(ROLE_BINDING, body).model
    assert isinstance(model, RoleBinding)
    assert model.role_ref.api_group == "rbac.authorization.k8s.io"


def test_valid_objects_have_no_causes() -> None:
    assert causes(ROLE, role("r", "ns", rule(["get"], [""], ["pods"]))) == []
    assert (
        causes(CLUSTER_ROLE, cluster_role("c", {"verbs": ["get"], "nonResourceURLs": ["/x"]})) == []
    )
    body = role_binding("b", "ns", "ClusterRole", "view", {"kind": "User", "name": "ci"})
    assert causes(ROLE_BINDING, body) == []


def test_verbs_are_required() -> None:
    assert causes(ROLE, role("r", "ns", rule([], [""], ["pods"]))) == [
        ("rules[0].verbs", "Required value: verbs must contain at least one value")
    ]


def test_resource_rules_need_groups_and_resources() -> None:
    found = causes(ROLE, role("r", "ns", {"verbs": ["get"]}))
    assert [f for f, _ in found] == ["rules[0].apiGroups", "rules[0].resources"]


def test_non_resource_urls_only_in_cluster_roles() -> None:
    found = causes(ROLE, role("r", "ns", {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}))
    assert found == [
        (
            "rules[0].nonResourceURLs",
            'Invalid value: []string{"/healthz"}: namespaced rules cannot apply to '
            "non-resource URLs",
        )
    ]


def test_a_rule_cannot_mix_urls_and_resources() -> None:
    body = cluster_role("c", {**rule(["get"], [""], ["pods"]), "nonResourceURLs": ["/x"]})
    assert "both regular resources and non-resource URLs" in causes(CLUSTER_ROLE, body)[0][1]


def test_aggregation_rule_needs_a_selector() -> None:
    found = causes(CLUSTER_ROLE, cluster_role("c", aggregate=[]))
    assert found[0][0] == "aggregationRule.clusterRoleSelectors"


def test_aggregation_selector_labels_are_checked() -> None:
    body = cluster_role("c", aggregate=[{"matchLabels": {"bad key!": "x"}}])
    assert causes(CLUSTER_ROLE, body)[0][0].startswith("aggregationRule.clusterRoleSelectors[0]")


def test_unknown_subject_kind_names_the_supported_ones() -> None:
    body = role_binding("b", "ns", "Role", "r", {"kind": "Robot", "name": "x"})
    assert causes(ROLE_BINDING, body) == [
        (
            "subjects[0].kind",
            'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
        )
    ]


def test_service_account_subject_needs_a_namespace_in_cluster_bindings() -> None:
    body = cluster_role_binding("b", "view", {"kind": "ServiceAccount", "name": "deployer"})
    assert causes(CLUSTER_ROLE_BINDING, body) == [("subjects[0].namespace", "Required value")]
    namespaced = role_binding("b", "ns", "Role", "r", {"kind": "ServiceAccount", "name": "d"})
    assert causes(ROLE_BINDING, namespaced) == []


def test_service_account_subject_may_not_have_an_api_group() -> None:
    body = role_binding(
        "b", "ns", "Role", "r", {"kind": "ServiceAccount", "name": "d", "apiGroup": "x"}
    )
    assert causes(ROLE_BINDING, body)[0][0] == "subjects[0].apiGroup"


def test_user_subject_with_a_foreign_api_group() -> None:
    body = role_binding("b", "ns", "Role", "r", {"kind": "User", "name": "u", "apiGroup": "x"})
    assert causes(ROLE_BINDING, body)[0][0] == "subjects[0].apiGroup"


def test_cluster_role_binding_may_not_bind_a_role() -> None:
    body = cluster_role_binding("b", "r", {"kind": "User", "name": "u"})
    body["roleRef"]["kind"] = "Role"
    assert causes(CLUSTER_ROLE_BINDING, body) == [
        ("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"')
    ]


def test_role_ref_name_must_be_a_path_segment() -> None:
    body = role_binding("b", "ns", "Role", "a/b", {"kind": "User", "name": "u"})
    assert causes(ROLE_BINDING, body) == [
        ("roleRef.name", "Invalid value: \"a/b\": may not contain '/'")
    ]


def test_role_ref_is_immutable() -> None:
    old = role_binding("b", "ns", "Role", "r", {"kind": "User", "name": "u"})
    new = copy.deepcopy(old)
    new["roleRef"]["name"] = "other"
    found = causes(ROLE_BINDING, new, old)
    assert found[0][0] == "roleRef"
    assert found[0][1].endswith("cannot change roleRef")


def test_changing_only_subjects_is_allowed() -> None:
    old = role_binding("b", "ns", "Role", "r", {"kind": "User", "name": "u"})
    new = copy.deepcopy(old)
    new["subjects"].append({"kind": "Group", "name": "g"})
    assert causes(ROLE_BINDING, new, old) == []


def test_cluster_role_binding_role_ref_is_immutable_too() -> None:
    old = cluster_role_binding("b", "view", {"kind": "User", "name": "u"})
    new = copy.deepcopy(old)
    new["roleRef"]["name"] = "edit"
    model, old_model = (
        decode(CLUSTER_ROLE_BINDING, new).model,
        decode(CLUSTER_ROLE_BINDING, old).model,
    )
    assert isinstance(model, ClusterRoleBinding)
    assert [c.field for c in validate_rbac(CLUSTER_ROLE_BINDING, model, old_model)] == ["roleRef"]


@pytest.mark.parametrize(
    ("name", "messages"),
    [
        ("system:node:web-1", ()),
        ("system:kube-scheduler", ()),
        (".", ("may not be '.'",)),
        ("..", ("may not be '..'",)),
        ("a%b/c", ("may not contain '/'", "may not contain '%'")),
    ],
)
def test_rbac_names_are_path_segments(name: str, messages: tuple[str, ...]) -> None:
    assert rbac_name(name) == messages
