"""What the API server accepts as an apply request (controlplane/apiserver/applying.py)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.apiserver import applying
from controlplane.query import Query
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY

DEPLOYMENTS = REGISTRY.resolve("deployments")
assert DEPLOYMENTS is not None


def _request(**overrides: Any) -> applying.ApplyRequest:
    assert DEPLOYMENTS is not None
    values: dict[str, Any] = {
        "rt": DEPLOYMENTS,
        "namespace": "ns",
        "name": "web",
        "manager": "kubectl",
        "force": False,
        "field_validation": "Strict",
        "dry_run": False,
    }
    values.update(overrides)
    return applying.ApplyRequest(**values)


def _config(**metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", **metadata},
        "spec": {"replicas": 1},
        "status": {"replicas": 9},
    }


def test_the_configuration_is_named_by_the_url_and_loses_server_fields() -> None:
    config, precondition = applying.applied_configuration(
        _request(), _config(resourceVersion="12", uid="u", generation=3)
    )
    assert config["metadata"] == {"name": "web", "namespace": "ns"}
    assert "status" not in config  # written through its own subresource
    assert precondition == "12"


@pytest.mark.parametrize(
    ("document", "code", "words"),
    [
        ({"kind": "Deployment", "metadata": {"name": "web"}}, 400, "missing apiVersion"),
        (_config(name="other"), 400, "does not match the name on the URL"),
        (_config(managedFields=[{"manager": "x"}]), 400, "metadata.managedFields must be nil"),
        (_config(namespace="elsewhere"), 400, "namespace of the provided object"),
        ([1, 2], 400, "must be an object"),
    ],
)
def test_bad_configurations_are_refused(document: Any, code: int, words: str) -> None:
    with pytest.raises(ApiError) as refused:
        applying.applied_configuration(_request(), document)
    assert refused.value.code == code
    assert words in refused.value.message


def test_field_manager_and_force_are_checked_as_kube_apiserver_checks_them() -> None:
    with pytest.raises(ApiError) as missing:
        applying.manager_of(Query.from_pairs([]), "kubectl/v1.32", apply=True)
    assert missing.value.code == 422
    assert missing.value.causes[0].field == "fieldManager"
    assert applying.manager_of(Query.from_pairs([]), "kubectl/v1.32 (linux)", apply=False) == (
        "kubectl"
    )
    with pytest.raises(ApiError) as too_long:
        applying.manager_of(Query.from_pairs([("fieldManager", "m" * 129)]), "", apply=False)
    assert too_long.value.code == 422
    assert applying.force_of(Query.from_pairs([("force", "true")]), apply=True)
    with pytest.raises(ApiError) as forbidden:
        applying.force_of(Query.from_pairs([("force", "true")]), apply=False)
    assert forbidden.value.causes[0].field == "force"
