"""A replicated set's hooks annotation is checked where it is written, naming the field."""

from __future__ import annotations

import json

import pytest

from corral import replication

from .builders import INVALID, Mutation, causes_of, put

FIELD = f"annotations[{replication.HOOKS_ANNOTATION}]"
CONTAINER = "web"


def hooks(**overrides: object) -> str:
    spec: dict[str, object] = {
        "container": CONTAINER,
        "status": ["h", "status"],
        "promote": ["h", "promote"],
        "demote": ["h", "demote"],
        "follow": ["h", "follow"],
        "rebuild": ["h", "rebuild"],
    }
    spec.update(overrides)
    return json.dumps({k: v for k, v in spec.items() if v is not None})


def annotate(path: str, text: str) -> Mutation:
    return put(path, {replication.HOOKS_ANNOTATION: text})


def test_good_hooks_pass_on_a_pod_and_on_a_template() -> None:
    assert causes_of("Pod", annotate("metadata/annotations", hooks())) == []
    template = annotate("spec/template/metadata/annotations", hooks())
    assert causes_of("ReplicationController", template) == []


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        hooks(promote=None),
        hooks(status="h status"),
        hooks(leaseSeconds=1),
        hooks(container="nope"),
        hooks(extra=1),
        hooks(leaseSeconds=6, periodSeconds=2),
    ],
)
def test_broken_hooks_are_refused_naming_the_annotation(text: str) -> None:
    found = causes_of("ReplicationController", annotate("spec/template/metadata/annotations", text))
    assert found == [(f"spec.template.metadata.{FIELD}", INVALID)]
    on_pod = causes_of("Pod", annotate("metadata/annotations", text))
    assert on_pod == [(f"metadata.{FIELD}", INVALID)]
