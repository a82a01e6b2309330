"""The CI deployer example in docs/security.md does what the document says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from controlplane.auth.attributes import UserInfo
from controlplane.auth.authorizer import Chain, forbidden_error
from controlplane.auth.defaults import cluster_role_bindings, cluster_roles
from controlplane.auth.rbac import RBACAuthorizer, static_source
from corral.api.decode import decode
from corral.api.validate.rbac import validate_rbac
from corral.objects import Obj

from .helpers import REGISTRY, request

DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"
CI = UserInfo("ci-deployer", ("system:authenticated",))


def example() -> list[Obj]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    text = next(b for b in blocks if "name: ci-deployer" in b)
    return [d for d in yaml.safe_load_all(re.sub(r"^   ", "", text, flags=re.M)) if d]


def chain() -> Chain:
    docs = example()
    roles = [d for d in docs if d["kind"] == "Role"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    return Chain(
        [RBACAuthorizer(static_source(roles, cluster_roles(), bindings, cluster_role_bindings()))]
    )


def test_the_example_is_valid() -> None:
    for obj in example():
        rt = REGISTRY.by_kind(obj["apiVersion"], obj["kind"])
        assert rt is not None
        assert validate_rbac(rt, decode(rt, obj).model) == []


DEPLOY = "/apis/apps/v1/namespaces/prod/deployments"


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/api", {}),
        ("GET", "/apis/apps/v1", {}),
        ("POST", DEPLOY, {}),
        ("PATCH", f"{DEPLOY}/web", {}),  # apply, rollout restart, rollout undo
        ("PUT", f"{DEPLOY}/web", {}),
        ("GET", DEPLOY, {"watch": "true", "fieldSelector": "metadata.name=web"}),  # rollout status
        ("GET", "/apis/apps/v1/namespaces/prod/replicasets", {}),  # rollout undo, history
        ("POST", "/api/v1/namespaces/prod/services", {}),
        ("PATCH", "/api/v1/namespaces/prod/configmaps/web-config", {}),
        ("GET", "/api/v1/namespaces/prod/pods/web-1", {}),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/log", {"follow": "true"}),
    ],
)
def test_what_it_may_do(method: str, path: str, query: dict[str, str]) -> None:
    assert chain().authorize(request(method, path, CI, **query)).allowed


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/namespaces/prod/secrets"),
        ("GET", "/api/v1/namespaces/prod/secrets/db"),
        ("DELETE", f"{DEPLOY}/web"),
        ("DELETE", "/api/v1/namespaces/prod/pods/web-1"),
        ("POST", "/api/v1/namespaces/prod/pods/web-1/exec"),
        ("GET", "/api/v1/namespaces/prod/pods"),
        ("GET", "/apis/apps/v1/namespaces/staging/deployments"),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/prod/rolebindings"),
        ("GET", "/api/v1/nodes"),
    ],
)
def test_what_it_may_not_do(method: str, path: str) -> None:
    assert not chain().authorize(request(method, path, CI)).allowed


def test_the_documented_refusals() -> None:
    text = DOC.read_text()
    for method, path in (
        ("GET", "/api/v1/namespaces/prod/secrets"),
        ("GET", "/apis/apps/v1/namespaces/staging/deployments"),
    ):
        attrs = request(method, path, CI)
        message = forbidden_error(attrs, chain().authorize(attrs).reason).message
        assert f"Error from server (Forbidden): {message}\n" in text
