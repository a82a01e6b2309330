"""Custom kinds: what a CustomResourceDefinition says, checked and turned into resource types.

A CRD in wire form becomes one ResourceType per served version, carrying a
CustomKind with the version's schema, subresources and printer columns. The
API server puts them in its registry's overlay, so routing, discovery,
OpenAPI, authorization and the CLI's name resolution all see one registry.
"""

from __future__ import annotations

import re
from typing import Any

from corral.api import crd_schema
from corral.api.customkind import CustomKind, PrinterColumn
from corral.api.errors import Cause
from corral.api.resources import ALL_VERBS, ResourceType
from corral.objects import Obj

GROUP = "apiextensions.k8s.io"
CUSTOM_OBJECT_MODEL = "corral.api.apiextensions:CustomObject"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_VERSION = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")


# --- from a CRD to resource types ------------------------------------------------------


def is_established(crd: Obj) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def resource_types(crd: Obj) -> list[ResourceType]:
    """One resource type per served version of ``crd``, highest priority first.

    The first is the group's preferred version in discovery, as in Kubernetes;
    callers decide whether ``crd`` is established.
    """
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = spec.get("versions") or []
    storage = next((v.get("name", "") for v in versions if v.get("storage")), "")
    served = tuple(v.get("name", "") for v in versions if v.get("served"))
    out: list[ResourceType] = []
    for version in sorted(versions, key=lambda v: version_priority(v.get("name", ""))):
        if not version.get("served"):
            continue
        custom = _custom_kind(crd, spec, version, storage, served)
        subresources: tuple[str, ...] = ("status",) if custom.status else ()
        if custom.spec_replicas_path:
            subresources += ("scale",)
        out.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version.get("name", ""),
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                model_path=CUSTOM_OBJECT_MODEL,
                namespaced=spec.get("scope") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                selectable_fields=tuple(
                    f.get("jsonPath", "").lstrip(".") for f in version.get("selectableFields") or ()
                ),
                verbs=ALL_VERBS,
                singular=names.get("singular") or names.get("kind", "").lower(),
                custom=custom,
            )
        )
    return out


_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(name: str) -> tuple[int, int, int, str]:
    """A sort key putting versions in Kubernetes' order: v2, v1, v1beta2, v1beta1, v1alpha1,
    then any other name alphabetically."""
    match = _KUBE_VERSION.match(name)
    if match is None:
        return (3, 0, 0, name)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), "")


def _custom_kind(
    crd: Obj, spec: Obj, version: Obj, storage: str, served: tuple[str, ...]
) -> CustomKind:
    subresources = version.get("subresources") or {}
    scale = subresources.get("scale") or {}
    columns = tuple(
        PrinterColumn(
            name=c.get("name", ""),
            type=c.get("type", "string"),
            json_path=c.get("jsonPath", ""),
            format=c.get("format") or "",
            description=c.get("description") or "",
            priority=c.get("priority") or 0,
        )
        for c in version.get("additionalPrinterColumns") or ()
    )
    schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or None
    names = spec.get("names") or {}
    return CustomKind(
        crd_name=crd.get("metadata", {}).get("name", ""),
        storage_version=storage,
        schema=schema,
        status="status" in subresources,
        spec_replicas_path=scale.get("specReplicasPath", ""),
        status_replicas_path=scale.get("statusReplicasPath", ""),
        label_selector_path=scale.get("labelSelectorPath") or "",
        printer_columns=columns,
        list_kind=names.get("listKind") or f"{names.get('kind', '')}List",
        preserve_unknown_fields=bool(spec.get("preserveUnknownFields")),
        versions=served,
    )


# --- the scale subresource's paths -------------------------------------------------------


def get_field(obj: Obj, path: str) -> Any:
    """The value at a ``.spec.replicas`` style path; None when any step is missing."""
    current: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def set_field(obj: Obj, path: str, value: Any) -> None:
    """Set the value at a ``.spec.replicas`` style path, creating objects on the way."""
    parts = path.strip(".").split(".")
    current = obj
    for part in parts[:-1]:
        following = current.get(part)
        if not isinstance(following, dict):
            following = current[part] = {}
        current = following
    current[parts[-1]] = value


# --- validating a CRD -----------------------------------------------------------------


def validate_crd(crd: Obj) -> list[Cause]:
    """What kube-apiserver would refuse in a CustomResourceDefinition, field by field."""
    causes: list[Cause] = []
    spec = crd.get("spec") or {}
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    plural = names.get("plural") or ""
    name = (crd.get("metadata") or {}).get("name") or ""
    if name != f"{plural}.{group}":
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    if not group:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.group"))
    elif not _DNS_SUBDOMAIN.match(group) or "." not in group:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{group}": should be a domain with at least one dot',
                "spec.group",
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        scope = spec.get("scope") or ""
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{scope}": supported values: "Cluster", "Namespaced"',
                "spec.scope",
            )
        )
    causes.extend(_names_causes(names))
    causes.extend(_versions_causes(spec.get("versions") or []))
    conversion = (spec.get("conversion") or {}).get("strategy", "None")
    if conversion != "None":
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{conversion}": supported values: "None"',
                "spec.conversion.strategy",
            )
        )
    if spec.get("preserveUnknownFields") is True:
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields "
                "to true in spec.versions[*].schema instead",
                "spec.preserveUnknownFields",
            )
        )
    return causes


def validate_crd_update(new: Obj, old: Obj) -> list[Cause]:
    causes: list[Cause] = []
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for path, before, after in (
        ("spec.group", old_spec.get("group"), new_spec.get("group")),
        ("spec.scope", old_spec.get("scope"), new_spec.get("scope")),
        (
            "spec.names.plural",
            (old_spec.get("names") or {}).get("plural"),
            (new_spec.get("names") or {}).get("plural"),
        ),
    ):
        if before != after:
            causes.append(Cause("FieldValueInvalid", "Invalid value: field is immutable", path))
    return causes


def _names_causes(names: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("plural", "singular"):
        value = names.get(key) or ""
        if key == "plural" and not value:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.names.plural"))
        elif value and not _DNS_LABEL.match(value):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": a lowercase RFC 1123 label must consist of lower '
                    "case alphanumeric characters or '-'",
                    f"spec.names.{key}",
                )
            )
    for key in ("kind", "listKind"):
        value = names.get(key) or ""
        if key == "kind" and not value:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.names.kind"))
        elif value and not _KIND.match(value):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": may have mixed case, but should otherwise match: '
                    "[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                    f"spec.names.{key}",
                )
            )
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: kind and listKind may not be the same",
                "spec.names.listKind",
            )
        )
    for index, short in enumerate(names.get("shortNames") or ()):
        if not isinstance(short, str) or not _DNS_LABEL.match(short):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{short}"',
                    f"spec.names.shortNames[{index}]",
                )
            )
    return causes


def _versions_causes(versions: list[Obj]) -> list[Cause]:
    causes: list[Cause] = []
    if not versions:
        return [
            Cause(
                "FieldValueRequired",
                "Required value: must have exactly one version marked as storage version",
                "spec.versions",
            )
        ]
    storage = [v for v in versions if v.get("storage")]
    if len(storage) != 1:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f"Invalid value: {len(storage)}: "
                "must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    if not any(v.get("served") for v in versions):
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: must have at least one version marked as served",
                "spec.versions",
            )
        )
    seen: set[str] = set()
    for index, version in enumerate(versions):
        path = f"spec.versions[{index}]"
        name = version.get("name") or ""
        if not name:
            causes.append(Cause("FieldValueRequired", "Required value", path + ".name"))
        elif not _VERSION.match(name):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": must be a DNS-1035 label',
                    path + ".name",
                )
            )
        elif name in seen:
            causes.append(
                Cause("FieldValueDuplicate", f'Duplicate value: "{name}"', path + ".name")
            )
        seen.add(name)
        causes.extend(_version_schema_causes(version, path))
    return causes


def _version_schema_causes(version: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    schema_path = path + ".schema.openAPIV3Schema"
    if schema is None:
        causes.append(
            Cause("FieldValueRequired", "Required value: schemas are required", schema_path)
        )
    else:
        causes.extend(crd_schema.structural_problems(schema, schema_path))
    for index, column in enumerate(version.get("additionalPrinterColumns") or ()):
        column_path = f"{path}.additionalPrinterColumns[{index}]"
        if column.get("type") not in _COLUMN_TYPES:
            supported = ", ".join(f'"{t}"' for t in _COLUMN_TYPES)
            causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f'Unsupported value: "{column.get("type", "")}": supported values: {supported}',
                    column_path + ".type",
                )
            )
        if not column.get("jsonPath"):
            causes.append(Cause("FieldValueRequired", "Required value", column_path + ".jsonPath"))
    causes.extend(_selectable_causes(version, schema, path))
    scale = (version.get("subresources") or {}).get("scale")
    if scale is not None:
        for key in ("specReplicasPath", "statusReplicasPath"):
            value = scale.get(key) or ""
            if not value.startswith(".spec." if key == "specReplicasPath" else ".status."):
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f'Invalid value: "{value}": should be a json path under '
                        + (".spec" if key == "specReplicasPath" else ".status"),
                        f"{path}.subresources.scale.{key}",
                    )
                )
    return causes


def names_conflict(crd: Obj, others: list[Obj]) -> tuple[str, str] | None:
    """(reason, message) if another CRD of the same group uses one of ``crd``'s names."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kind = names.get("kind")
    list_kind = names.get("listKind") or f"{kind}List"
    singular = names.get("singular") or (kind or "").lower()
    short = set(names.get("shortNames") or ())
    for other in others:
        other_spec = other.get("spec") or {}
        if other_spec.get("group") != spec.get("group"):
            continue
        taken = (other.get("status") or {}).get("acceptedNames") or other_spec.get("names") or {}
        if taken.get("kind") == kind:
            return "KindConflict", f'"{kind}" is already in use'
        if (taken.get("listKind") or f"{taken.get('kind')}List") == list_kind:
            return "ListKindConflict", f'"{list_kind}" is already in use'
        if singular in (taken.get("singular"), taken.get("plural")):
            return "SingularConflict", f'"{singular}" is already in use'
        clash = short & set(taken.get("shortNames") or ())
        if clash:
            return "ShortNamesConflict", f'"{sorted(clash)[0]}" is already in use'
    return None


def _selectable_causes(version: Obj, schema: Any, path: str) -> list[Cause]:
    """selectableFields name at most 8 string, integer or boolean fields of the schema."""
    fields = version.get("selectableFields") or []
    causes: list[Cause] = []
    if len(fields) > 8:
        causes.append(
            Cause(
                "FieldValueTooMany",
                f"Too many: {len(fields)}: must have at most 8 items",
                path + ".selectableFields",
            )
        )
    for index, entry in enumerate(fields):
        json_path = entry.get("jsonPath") or ""
        field_path = f"{path}.selectableFields[{index}].jsonPath"
        node: Any = schema if isinstance(schema, dict) else None
        for part in json_path.lstrip(".").split(".") if json_path.startswith(".") else []:
            properties = node.get("properties") if isinstance(node, dict) else None
            node = properties.get(part) if isinstance(properties, dict) else None
        if not json_path.startswith(".") or json_path.startswith(".metadata"):
            message = f'Invalid value: "{json_path}": must be a JSON path outside metadata'
            causes.append(Cause("FieldValueInvalid", message, field_path))
        elif not isinstance(node, dict) or node.get("type") not in ("string", "integer", "boolean"):
            message = (
                f'Invalid value: "{json_path}": must point to a field of type string, boolean '
                "or integer"
            )
            causes.append(Cause("FieldValueInvalid", message, field_path))
    return causes


def established_status(crd: Obj, now: str) -> Obj:
    """The status the server gives a CRD it accepts: its names, NamesAccepted and Established."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", (names.get("kind") or "").lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stored = [v.get("name") for v in spec.get("versions") or () if v.get("storage")]
    previous = (crd.get("status") or {}).get("storedVersions") or []
    conditions = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "lastTransitionTime": now,
            "reason": "NoConflicts",
            "message": "no conflicts found",
        },
        {
            "type": "Established",
            "status": "True",
            "lastTransitionTime": now,
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
        },
    ]
    return {
        "conditions": conditions,
        "acceptedNames": names,
        "storedVersions": list(dict.fromkeys([*previous, *stored])),
    }
