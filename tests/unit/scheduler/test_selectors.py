"""Spreading selectors: parsed once, found by the pod's own labels."""

from __future__ import annotations

from typing import Any

from corral.api.labels import selector_from_set
from scheduler.selectors import SpreadingSelectors, selector_of
from tests.unit.scheduler.builders import pod_info


def obj(kind: str, name: str, spec: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_selector_of_each_kind() -> None:
    assert selector_of("Service", obj("Service", "s", {"selector": {"a": "1"}})) == (
        selector_from_set({"a": "1"})
    )
    assert selector_of("Service", obj("Service", "s", {})) is None
    rc = obj("ReplicationController", "r", {"template": {"metadata": {"labels": {"a": "1"}}}})
    assert selector_of("ReplicationController", rc) == selector_from_set({"a": "1"})
    rs = obj("ReplicaSet", "r", {"selector": {"matchLabels": {"a": "1"}}})
    assert selector_of("ReplicaSet", rs) == selector_from_set({"a": "1"})
    assert selector_of("ReplicaSet", obj("ReplicaSet", "r", {"selector": {}})) is None


def test_for_pod_finds_matching_selectors_once_each() -> None:
    selectors = SpreadingSelectors()
    selectors.set("Service", obj("Service", "web", {"selector": {"app": "web"}}))
    selectors.set(
        "ReplicationController", obj("ReplicationController", "web", {"selector": {"app": "web"}})
    )
    selectors.set("Service", obj("Service", "db", {"selector": {"app": "db"}}))
    selectors.set(
        "ReplicaSet",
        obj(
            "ReplicaSet",
            "any",
            {"selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
        ),
    )
    selectors.set("Service", obj("Service", "elsewhere", {"selector": {"app": "web"}}, "other"))
    found = selectors.for_pod(pod_info(labels={"app": "web"}))
    assert len(found) == 2  # app=web (from two objects, once) and app exists
    selectors.remove("ReplicaSet", obj("ReplicaSet", "any", {}))
    selectors.remove("Service", obj("Service", "web", {}))
    assert selectors.for_pod(pod_info(labels={"app": "web"})) == [selector_from_set({"app": "web"})]
    selectors.remove("ReplicationController", obj("ReplicationController", "web", {}))
    assert selectors.for_pod(pod_info(labels={"app": "web"})) == []


def test_a_changed_selector_replaces_the_old_one() -> None:
    selectors = SpreadingSelectors()
    selectors.set("Service", obj("Service", "s", {"selector": {"app": "web"}}))
    selectors.set("Service", obj("Service", "s", {"selector": {"app": "db"}}))
    assert selectors.for_pod(pod_info(labels={"app": "web"})) == []
    assert len(selectors.for_pod(pod_info(labels={"app": "db"}))) == 1
