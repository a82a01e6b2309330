"""Server-side apply: merge an applied configuration, and keep metadata.managedFields.

The rules are those of sigs.k8s.io/structured-merge-diff (the library behind
kube-apiserver's field manager), written again for corral's objects:

- Apply merges the configuration into the live object (lists by their keys,
  atomic lists and selectors whole), then removes the fields the manager set
  last time and no longer sets, unless another manager owns them too.
- A field the apply changes that another manager owns is a conflict, unless
  forced: then that manager loses it. Managers that set the same value share it.
- An update (create, PUT, any other PATCH) takes ownership of every field it
  added or changed, from whoever held it; fields an update removed leave
  every manager's set.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from corral.patch import fieldpath
from corral.patch.fieldpath import FieldSet, Path
from corral.patch.schema import EMPTY, PatchSchema

APPLY = "Apply"
UPDATE = "Update"

# Fields the server owns or that name the object: no manager owns them
# (kube-apiserver's field manager strips the same ones).
SERVER_FIELDS: tuple[Path, ...] = (
    ("f:apiVersion",),
    ("f:kind",),
    *(
        ("f:metadata", "f:" + name)
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "generation",
            "managedFields",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        )
    ),
)


@dataclass(frozen=True, slots=True)
class ManagedEntry:
    """One entry of metadata.managedFields."""

    manager: str
    operation: str
    api_version: str
    time: str | None
    fields: FieldSet
    subresource: str = ""
    # The entry as read, written back untouched while nothing in it changed.
    raw: dict[str, Any] | None = None

    def same_manager(self, manager: str, operation: str, subresource: str) -> bool:
        return (self.manager, self.operation, self.subresource) == (
            manager,
            operation,
            subresource,
        )

    def describe(self) -> str:
        """How kube-apiserver names a manager in a conflict message."""
        name = _quote(self.manager)
        if self.subresource:
            name += f" with subresource {_quote(self.subresource)}"
        if self.operation == UPDATE:
            name += f" using {self.api_version}"
        return name


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Conflict:
    owner: ManagedEntry
    path: Path


class ApplyConflicts(Exception):
    """The apply would change fields other managers own."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__(conflict_message(conflicts))
        self.conflicts = conflicts


def conflict_message(conflicts: list[Conflict]) -> str:
    if len(conflicts) == 1:
        only = conflicts[0]
        return (
            f"Apply failed with 1 conflict: conflict with {only.owner.describe()}: "
            f"{fieldpath.describe(only.path)}"
        )
    by_owner: dict[str, list[str]] = {}
    for conflict in conflicts:
        by_owner.setdefault(conflict.owner.describe(), []).append(fieldpath.describe(conflict.path))
    lines = []
    for owner in sorted(by_owner):
        lines.append(f"conflicts with {owner}:")
        lines.extend(f"- {path}" for path in by_owner[owner])
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


# --- reading and writing managedFields --------------------------------------------------


def read_entries(obj: Any) -> list[ManagedEntry]:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    raw_entries = metadata.get("managedFields") if isinstance(metadata, dict) else None
    entries = []
    for raw in raw_entries or ():
        if not isinstance(raw, dict) or not isinstance(raw.get("manager", ""), str):
            continue
        entries.append(
            ManagedEntry(
                manager=raw.get("manager", ""),
                operation=str(raw.get("operation", UPDATE)),
                api_version=str(raw.get("apiVersion", "")),
                time=raw.get("time") if isinstance(raw.get("time"), str) else None,
                fields=fieldpath.decode(raw.get("fieldsV1")),
                subresource=str(raw.get("subresource", "")),
                raw=raw,
            )
        )
    return entries


def write_entries(entries: Iterable[ManagedEntry]) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        if entry.raw is not None:
            out.append(entry.raw)
            continue
        raw: dict[str, Any] = {
            "manager": entry.manager,
            "operation": entry.operation,
            "apiVersion": entry.api_version,
        }
        if entry.time is not None:
            raw["time"] = entry.time
        raw["fieldsType"] = "FieldsV1"
        raw["fieldsV1"] = fieldpath.encode(entry.fields)
        if entry.subresource:
            raw["subresource"] = entry.subresource
        out.append(raw)
    return out


def without_managed_fields(obj: Any) -> Any:
    """A shallow copy of ``obj`` whose metadata holds no managedFields."""
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return obj
    metadata = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": metadata}


def _managed_fields_of(obj: Any) -> Any:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return metadata.get("managedFields") if isinstance(metadata, dict) else None


def _set_fields(entry: ManagedEntry, fields: FieldSet, time: str | None) -> ManagedEntry:
    if fields == entry.fields and time == entry.time:
        return entry
    return replace(entry, fields=fields, time=time, raw=None)


# --- apply -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applier:
    """Who applies, and what no manager may own in this request (server fields, status)."""

    manager: str
    api_version: str
    now: str
    ignored: tuple[Path, ...] = SERVER_FIELDS
    subresource: str = ""


def apply(
    live: Any,
    config: Any,
    schema: PatchSchema,
    applier: Applier,
    *,
    force: bool = False,
) -> tuple[Any, list[ManagedEntry]]:
    """The object after applying ``config`` to ``live``, and its new managed entries."""
    entries = read_entries(live)
    live = without_managed_fields(live)
    mine = next(
        (e for e in entries if e.same_manager(applier.manager, APPLY, applier.subresource)),
        None,
    )
    others = [e for e in entries if e is not mine]
    applied = fieldpath.field_set(config, schema, applier.ignored)
    # Merged over a copy: pruning edits in place, and ``live`` may be the
    # watch cache's own object, compared with below.
    merged = merge(copy.deepcopy(live), config, schema)
    owned = applied.union(*(e.fields for e in others))
    _prune(merged, (mine.fields if mine else frozenset()) - owned, owned, schema)
    added, modified, removed = fieldpath.compare(live, merged, schema)
    changed = added | modified
    conflicts = [Conflict(e, p) for e in others for p in sorted(e.fields & changed)]
    if conflicts and not force:
        raise ApplyConflicts(conflicts)
    # What nobody may own (a Secret's write-only stringData) changes nothing kept.
    object_changed = bool(fieldpath.without(changed | removed, applier.ignored))
    new_entries = []
    for entry in entries:
        if entry is mine:
            continue
        kept = entry.fields - changed - removed
        if kept:
            new_entries.append(_set_fields(entry, kept, entry.time))
    if applied:
        # The applier's entry keeps its place in the list, so a repeated apply
        # writes managedFields back byte for byte.
        position = entries.index(mine) if mine is not None else len(new_entries)
        if mine is None:
            mine = ManagedEntry(
                applier.manager, APPLY, applier.api_version, None, frozenset(), applier.subresource
            )
        time = applier.now if object_changed or mine.time is None else mine.time
        new_entries.insert(min(position, len(new_entries)), _set_fields(mine, applied, time))
    return merged, new_entries


def _prune(obj: Any, candidates: FieldSet, owned: FieldSet, schema: PatchSchema) -> None:
    """Remove what the applier gave up, keeping anything still holding an owned field."""
    for path in sorted(candidates, key=len):
        if any(len(p) > len(path) and p[: len(path)] == path for p in owned):
            continue
        fieldpath.remove(obj, path, schema)


def merge(live: Any, config: Any, schema: PatchSchema) -> Any:
    """``config`` laid over ``live``: structs and maps field by field, keyed lists by key."""
    if (
        isinstance(live, dict)
        and isinstance(config, dict)
        and not fieldpath.is_atomic_struct(schema)
    ):
        out = dict(live)
        for key, value in config.items():
            child = schema.child(key) or EMPTY
            out[key] = merge(live[key], value, child) if key in live else copy.deepcopy(value)
        return out
    if fieldpath.is_keyed_list(live, schema) and fieldpath.is_keyed_list(config, schema):
        return _merge_list(live, config, schema)
    return copy.deepcopy(config)


def _merge_list(live: list[Any], config: list[Any], schema: PatchSchema) -> list[Any]:
    items_schema = schema.items or EMPTY
    out = list(live)
    where = {fieldpath.item_element(item, schema): i for i, item in enumerate(out)}
    for item in config:
        element = fieldpath.item_element(item, schema)
        if element in where:
            index = where[element]
            out[index] = merge(out[index], item, items_schema)
        else:
            where[element] = len(out)
            out.append(copy.deepcopy(item))
    return out


# --- updates -----------------------------------------------------------------------------


def track_update(old: Any, new: Any, schema: PatchSchema, updater: Applier) -> list[ManagedEntry]:
    """The managed entries after ``updater`` changed ``old`` into ``new`` by an update.

    As in kube-apiserver, a writer that sends managedFields of its own sets
    them (kubectl hands client-side apply's fields to its server-side
    manager that way; ``[{}]`` clears them); one that sends none keeps the
    live ones, so clients that know nothing of them cannot drop them.
    """
    old_fields, new_fields = _managed_fields_of(old), _managed_fields_of(new)
    if new_fields and new_fields != old_fields:
        entries = [replace(entry, raw=None) for entry in read_entries(new)]
    else:
        entries = read_entries(old)
    old, new = without_managed_fields(old), without_managed_fields(new)
    if old == new:  # the common no-op write, at C speed
        return [entry for entry in entries if entry.fields]
    added, modified, removed = fieldpath.compare(old, new, schema)
    changed = fieldpath.without(added | modified, updater.ignored)
    mine = next(
        (e for e in entries if e.same_manager(updater.manager, UPDATE, updater.subresource)),
        None,
    )
    out = []
    for entry in entries:
        if entry is mine:
            continue
        kept = entry.fields - changed - removed
        if kept:
            out.append(_set_fields(entry, kept, entry.time))
    if mine is None and changed:
        mine = ManagedEntry(
            updater.manager, UPDATE, updater.api_version, None, frozenset(), updater.subresource
        )
    if mine is not None:
        fields = (mine.fields | changed) - removed
        time = updater.now if changed else mine.time
        if fields:
            position = entries.index(mine) if mine.raw is not None else len(out)
            out.insert(min(position, len(out)), _set_fields(mine, fields, time))
    return out
