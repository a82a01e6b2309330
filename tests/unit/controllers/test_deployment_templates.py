"""The pod-template-hash and template equality."""

from __future__ import annotations

import copy

from controlplane.controllers.deployment_templates import (
    equal_ignore_hash,
    safe_encode,
    selector_with_hash,
    semantic,
    template_hash,
    with_hash,
    without_hash,
)
from tests.unit.controllers.test_deployment_builders import template

ALPHABET = set("bcdfghjklmnpqrstvwxz2456789")


def test_hash_is_stable_and_ignores_key_order() -> None:
    a = template("nginx:1")
    b = {"spec": copy.deepcopy(a["spec"]), "metadata": copy.deepcopy(a["metadata"])}
    assert template_hash(a) == template_hash(b)
    assert set(template_hash(a)) <= ALPHABET
    assert 1 <= len(template_hash(a)) <= 10


def test_hash_values_are_pinned() -> None:
    # A change here renames every ReplicaSet after an upgrade: only on purpose.
    assert template_hash({"a": 1}) == "67868497f7"
    assert template_hash(template("nginx:1")) == "75f67448f4"
    assert template_hash(template("nginx:1"), 0) == "75f67448f4"


def test_hash_changes_with_the_template_and_the_collision_count() -> None:
    base = template("nginx:1")
    assert template_hash(base) != template_hash(template("nginx:2"))
    assert template_hash(base) != template_hash(base, collision_count=1)
    assert template_hash(base, collision_count=1) != template_hash(base, collision_count=2)


def test_hash_ignores_an_existing_hash_label() -> None:
    base = template("nginx:1")
    assert template_hash(with_hash(base, "abc")) == template_hash(base)


def test_safe_encode_uses_no_vowels() -> None:
    assert safe_encode("0123456789") == "456789bcdf"
    assert set(safe_encode("4294967295")) <= ALPHABET


def test_equal_ignore_hash() -> None:
    base = template("nginx:1")
    assert equal_ignore_hash(with_hash(base, "x1"), with_hash(base, "y2"))
    assert equal_ignore_hash(with_hash(base, "x1"), base)
    assert not equal_ignore_hash(base, template("nginx:2"))
    assert not equal_ignore_hash(base, template("nginx:1", app="web", tier="front"))


def test_without_hash_drops_empty_labels_and_leaves_the_input_alone() -> None:
    only_hash = {"metadata": {"labels": {"pod-template-hash": "x"}}, "spec": {}}
    assert without_hash(only_hash) == {"metadata": {}, "spec": {}}
    assert only_hash["metadata"]["labels"] == {"pod-template-hash": "x"}


def test_selector_with_hash_keeps_expressions() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "Exists"}],
    }
    narrowed = selector_with_hash(selector, "h")
    assert narrowed["matchLabels"] == {"app": "web", "pod-template-hash": "h"}
    assert narrowed["matchExpressions"] == selector["matchExpressions"]
    assert selector["matchLabels"] == {"app": "web"}


def test_empty_and_absent_are_the_same_template() -> None:
    # What a Go client (kubectl rollout undo) sends back: empty objects and nulls.
    plain = template("nginx:1")
    from_go = template("nginx:1")
    from_go["metadata"]["creationTimestamp"] = None
    from_go["spec"]["containers"][0]["resources"] = {}
    from_go["spec"]["volumes"] = []
    assert equal_ignore_hash(plain, from_go)
    assert template_hash(plain) == template_hash(from_go)
    assert semantic({"a": [{}, {"b": None}], "c": {"d": {}}}) == {"a": [{}, {}]}
