"""Pod templates: the hash that names a ReplicaSet, and template equality.

A Deployment owns one ReplicaSet per pod template. The ReplicaSet is named
``<deployment>-<pod-template-hash>`` and carries the hash as a label on
itself, its selector and its template, so the pods of two templates never
overlap. The hash is FNV-1a over the template's canonical JSON (sorted
keys), so it is the same on every run and every machine; Kubernetes hashes
Go's printed struct instead, which no other language can reproduce, and
nothing depends on the two agreeing. The encoding of the 32-bit hash is
Kubernetes' ``rand.SafeEncodeString``: no vowels, so no words.

Which ReplicaSet runs "the" template is decided by comparing templates
with the hash label ignored (``EqualIgnoreHash``), never by the hash: a
change in how hashes are computed then costs nothing but a name. Both
compare and hash the *semantic* form, where an empty object or list is the
same as an absent one, as in Kubernetes' ``Semantic.DeepEqual``: a
template that went through a Go client (kubectl's ``rollout undo``) comes
back with ``resources: {}`` in every container, and is still the same.
"""

from __future__ import annotations

import copy
import struct
from typing import Any

import orjson

from controlplane.controllers.deployment_objects import TEMPLATE_HASH_LABEL
from corral.objects import Obj

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _fnv32a(data: bytes, value: int = _FNV32_OFFSET) -> int:
    for byte in data:
        value ^= byte
        value = (value * _FNV32_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each byte mapped onto consonants and digits."""
    return "".join(_SAFE_ALPHABET[byte % len(_SAFE_ALPHABET)] for byte in text.encode())


def semantic(value: Any) -> Any:
    """``value`` with every null, empty object and empty list member left out, recursively."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            kept = semantic(item)
            if kept is not None and kept != {} and kept != []:
                out[key] = kept
        return out
    if isinstance(value, list):
        return [semantic(item) for item in value]
    return value


def without_hash(template: Obj) -> Obj:
    """A copy of ``template`` without the ``pod-template-hash`` label."""
    out = copy.deepcopy(template)
    metadata = out.get("metadata")
    if isinstance(metadata, dict):
        labels = metadata.get("labels")
        if isinstance(labels, dict):
            labels.pop(TEMPLATE_HASH_LABEL, None)
            if not labels:
                del metadata["labels"]
    return out


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a Deployment's template.

    ``collision_count`` (``status.collisionCount``) is mixed in, as in
    Kubernetes, so a name that is taken by a foreign ReplicaSet can be
    escaped by counting up.
    """
    canonical = orjson.dumps(semantic(without_hash(template)), option=orjson.OPT_SORT_KEYS)
    value = _fnv32a(canonical)
    if collision_count:
        value = _fnv32a(struct.pack("<I", collision_count & 0xFFFFFFFF), value)
    return safe_encode(str(value))


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """Whether two pod templates mean the same, their ``pod-template-hash`` labels aside."""
    return bool(semantic(without_hash(a)) == semantic(without_hash(b)))


def with_hash(template: Obj, hash_value: str) -> Obj:
    """A copy of ``template`` labelled with ``pod-template-hash``."""
    out = copy.deepcopy(template)
    metadata = out.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), TEMPLATE_HASH_LABEL: hash_value}
    return out


def selector_with_hash(selector: Obj, hash_value: str) -> Obj:
    """The Deployment's selector narrowed to one template: ``CloneSelectorAndAddLabel``."""
    out = copy.deepcopy(selector)
    out["matchLabels"] = {**(out.get("matchLabels") or {}), TEMPLATE_HASH_LABEL: hash_value}
    return out
