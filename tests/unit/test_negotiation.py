"""Accept negotiation (which representation a client gets) and the explainable schemas."""

from __future__ import annotations

import pytest

from controlplane.apiserver.negotiation import PLAIN, Output, negotiate
from controlplane.apiserver.schemadocs import explainable
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY

TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
KUBECTL_GET = f"{TABLE_V1},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", PLAIN),
        ("application/json", PLAIN),
        ("*/*", PLAIN),
        ("application/json, */*", PLAIN),
        ("application/yaml", Output(yaml=True)),
        (KUBECTL_GET, Output(convert="Table")),
        (
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
            Output(convert="PartialObjectMetadataList"),
        ),
        (
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1",
            Output(convert="PartialObjectMetadata", version="v1beta1"),
        ),
        # Unknown conversions, groups and versions are passed over for the next choice.
        ("application/json;as=Pod;g=meta.k8s.io;v=v1,application/yaml", Output(yaml=True)),
        ("application/json;as=Table;g=apps;v=v1,application/json", PLAIN),
        ("application/json;as=Table;g=meta.k8s.io;v=v2,application/json", PLAIN),
        # Preference by q, then the concrete before the wildcard.
        ("application/json;q=0.5,application/yaml", Output(yaml=True)),
        ("*/*,application/yaml", Output(yaml=True)),
        ("application/json;stream=watch", PLAIN),
        ("text/html,*/*;q=0.8", PLAIN),
    ],
)
def test_the_first_servable_choice_wins(accept: str, expected: Output) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    "accept",
    [
        "application/vnd.kubernetes.protobuf",
        "text/html",
        "application/json;q=0",
        "application/json;as=Table;g=meta.k8s.io;v=v1;stream=other",
    ],
)
def test_nothing_servable_is_406(accept: str) -> None:
    with pytest.raises(ApiError) as refused:
        negotiate(accept)
    assert refused.value.code == 406
    assert refused.value.reason == "NotAcceptable"
    assert "application/json, application/yaml" in refused.value.message


def test_explainable_schemas_tag_kinds_collapse_optionals_and_describe() -> None:
    deployments = REGISTRY.resolve("deployments")
    assert deployments is not None
    schemas = {
        "Deployment": {
            "title": "Deployment",
            "properties": {
                "spec": {"$ref": "#/components/schemas/DeploymentSpec"},
                "status": {
                    "anyOf": [{"$ref": "#/components/schemas/DeploymentStatus"}, {"type": "null"}],
                    "default": None,
                },
            },
        },
        "DeploymentSpec": {
            "properties": {
                "paused": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "title": "Paused"},
                "both": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            }
        },
    }
    out = explainable(schemas, [deployments])
    deployment = out["Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    assert "title" not in deployment
    assert deployment["description"].startswith("Deployment enables declarative updates")
    spec = deployment["properties"]["spec"]
    assert spec["$ref"] == "#/components/schemas/DeploymentSpec"
    assert spec["description"].startswith("Specification of the desired behavior")
    status = deployment["properties"]["status"]
    assert status["$ref"] == "#/components/schemas/DeploymentStatus"
    assert "default" not in status and "anyOf" not in status
    paused = out["DeploymentSpec"]["properties"]["paused"]
    assert paused["type"] == "boolean" and "title" not in paused
    assert paused["description"] == "Indicates that the deployment is paused."
    # A real union (not an optional) is left as it is.
    assert out["DeploymentSpec"]["properties"]["both"]["anyOf"] == [
        {"type": "integer"},
        {"type": "string"},
    ]
    # The input is not changed.
    assert "anyOf" in schemas["Deployment"]["properties"]["status"]  # type: ignore[index]
