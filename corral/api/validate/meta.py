"""Object metadata: ``ValidateObjectMeta`` and its update-time rules.

The server fills in ``name`` (from ``generateName``) and ``namespace`` before
validating and enforces their immutability itself, so neither is checked for
change here.
"""

from __future__ import annotations

from corral.api.errors import Cause
from corral.api.meta import ObjectMeta
from corral.api.validate.checks import is_dns1123_label, is_qualified_name
from corral.api.validate.common import NameCheck, name_messages, non_negative, validate_labels
from corral.api.validate.field import (
    forbidden,
    go_value,
    invalid,
    invalid_each,
    required,
    too_long,
)
from corral.api.validation import TOTAL_ANNOTATION_SIZE_LIMIT_BYTES, validate_annotations_size

# Single-word finalizers Kubernetes itself understands; any other must be
# domain-qualified ("example.com/cleanup").
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})

# Owners that garbage collection must never follow (BannedOwners).
_BANNED_OWNERS = frozenset({("", "v1", "Event")})


def validate_object_meta(
    meta: ObjectMeta, name_check: NameCheck, namespaced: bool, path: str = "metadata"
) -> list[Cause]:
    causes: list[Cause] = []
    if meta.generate_name:
        causes.extend(
            invalid_each(
                f"{path}.generateName",
                meta.generate_name,
                name_messages(name_check, meta.generate_name, prefix=True),
            )
        )
    if meta.name:
        causes.extend(invalid_each(f"{path}.name", meta.name, name_check(meta.name)))
    elif not meta.generate_name:
        causes.append(required(f"{path}.name", "name or generateName is required"))
    if namespaced and meta.namespace:
        causes.extend(
            invalid_each(f"{path}.namespace", meta.namespace, is_dns1123_label(meta.namespace))
        )
    causes.extend(non_negative(meta.generation, f"{path}.generation"))
    causes.extend(validate_labels(meta.labels, f"{path}.labels"))
    causes.extend(validate_annotations(meta.annotations, f"{path}.annotations"))
    causes.extend(_owner_references(meta, f"{path}.ownerReferences"))
    causes.extend(_finalizers(meta.finalizers, f"{path}.finalizers"))
    return causes


def validate_template_meta(meta: ObjectMeta | None, path: str) -> list[Cause]:
    """A pod template's metadata: only labels and annotations mean anything there."""
    if meta is None:
        return []
    causes = validate_labels(meta.labels, f"{path}.labels")
    causes.extend(validate_annotations(meta.annotations, f"{path}.annotations"))
    return causes


def validate_annotations(annotations: dict[str, str] | None, path: str) -> list[Cause]:
    if not annotations:
        return []
    causes: list[Cause] = []
    for k in annotations:
        # Annotation keys are qualified names compared case-insensitively.
        causes.extend(invalid_each(path, k, is_qualified_name(k.lower())))
    if validate_annotations_size(annotations):
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES))
    return causes


def _owner_references(meta: ObjectMeta, path: str) -> list[Cause]:
    causes: list[Cause] = []
    controller = ""
    for i, ref in enumerate(meta.owner_references or ()):
        ref_path = f"{path}[{i}]"
        group, version = _group_version(ref.api_version)
        if not version:
            causes.append(
                invalid(f"{ref_path}.apiVersion", ref.api_version, "version must not be empty")
            )
        if not ref.kind:
            causes.append(invalid(f"{ref_path}.kind", ref.kind, "must not be empty"))
        if not ref.name:
            causes.append(invalid(f"{ref_path}.name", ref.name, "must not be empty"))
        if not ref.uid:
            causes.append(invalid(f"{ref_path}.uid", ref.uid, "must not be empty"))
        if (group, version, ref.kind) in _BANNED_OWNERS:
            causes.append(
                invalid(
                    ref_path,
                    ref,
                    f"{group}/{version}, Kind={ref.kind} is disallowed from being an owner",
                )
            )
        if ref.controller:
            name = f"{ref.kind}/{ref.name}"
            if controller:
                causes.append(
                    invalid(
                        path,
                        meta.owner_references,
                        "Only one reference can have Controller set to true. "
                        f'Found "true" in references for {controller} and {name}',
                    )
                )
            else:
                controller = name
    return causes


def _group_version(api_version: str) -> tuple[str, str]:
    """``schema.ParseGroupVersion``, with an unparsable value read as empty."""
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return "", ""


def _finalizers(finalizers: list[str] | None, path: str) -> list[Cause]:
    if not finalizers:
        return []
    causes: list[Cause] = []
    for i, name in enumerate(finalizers):
        causes.extend(finalizer_name(name, f"{path}[{i}]"))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        causes.append(
            invalid(path, finalizers, "finalizer orphan and foregroundDeletion cannot be both set")
        )
    return causes


def finalizer_name(name: str, path: str) -> list[Cause]:
    causes = invalid_each(path, name, is_qualified_name(name))
    if "/" not in name and name not in STANDARD_FINALIZERS:
        causes.append(
            invalid(
                path, name, "name is neither a standard finalizer name nor is it fully qualified"
            )
        )
    return causes


def validate_object_meta_update(
    new: ObjectMeta, old: ObjectMeta, path: str = "metadata"
) -> list[Cause]:
    if old.deletion_timestamp is None:
        return []
    added = sorted(set(new.finalizers or ()) - set(old.finalizers or ()))
    if not added:
        return []
    return [
        forbidden(
            f"{path}.finalizers",
            "no new finalizers can be added if the object is being deleted, "
            f"found new finalizers {go_value(added)}",
        )
    ]
