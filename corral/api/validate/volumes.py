"""Pod volumes: ``ValidateVolumes`` for the volume sources corral supports."""

from __future__ import annotations

from corral.api.containers import ObjectFieldSelector, ResourceFieldSelector
from corral.api.core import (
    ConfigMapVolumeSource,
    DownwardAPIVolumeFile,
    DownwardAPIVolumeSource,
    HostPathVolumeSource,
    KeyToPath,
    PersistentVolumeClaimVolumeSource,
    SecretVolumeSource,
    Volume,
)
from corral.api.errors import Cause
from corral.api.validate.common import dns_label, parse_or_cause, qualified_name, quantity_text
from corral.api.validate.field import (
    child,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)

FILE_MODE_ERR = "must be a number between 0 and 0777 (octal), both inclusive"

# Pod fields the downward API may expose through environment variables...
ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
# ...and through files of a downwardAPI volume.
VOLUME_FIELD_PATHS = (
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
)
# What ConvertDownwardAPIFieldLabel accepts for v1 at all.
_CONVERTIBLE_FIELD_PATHS = frozenset(
    {
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.schedulerName",
        "status.phase",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)

RESOURCE_FIELD_PATHS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)
_HUGEPAGES_FIELD_PREFIXES = ("limits.hugepages-", "requests.hugepages-")
_CPU_DIVISORS = frozenset({"1m", "1"})
_BYTE_DIVISORS = frozenset(
    {"1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"}
)
_BYTE_DIVISOR_TEXT = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"


def validate_volumes(
    volumes: list[Volume] | None, path: str, causes: list[Cause]
) -> dict[str, Volume]:
    """Append the volumes' problems to ``causes``; return the usable volumes by name.

    As in Kubernetes, a volume with any problem is left out, so mounts of it
    are reported as not found too.
    """
    usable: dict[str, Volume] = {}
    for i, vol in enumerate(volumes or ()):
        vol_path = f"{path}[{i}]"
        name_path = f"{vol_path}.name"
        errs = _volume_source(vol, vol_path)
        if not vol.name:
            errs.append(required(name_path))
        else:
            errs.extend(dns_label(vol.name, name_path))
        if vol.name in usable:
            errs.append(duplicate(name_path, vol.name))
        if errs:
            causes.extend(errs)
        else:
            usable[vol.name] = vol
    return usable


def _volume_source(vol: Volume, path: str) -> list[Cause]:
    causes: list[Cause] = []
    count = 0
    if vol.empty_dir is not None:
        count += 1
        limit = vol.empty_dir.size_limit
        if limit is not None:
            limit_path = child(f"{path}.emptyDir", "sizeLimit")
            value = parse_or_cause(limit, limit_path, causes)
            if value is not None and value < 0:
                causes.append(
                    forbidden(limit_path, "SizeLimit field must be a valid resource quantity")
                )
    # Kubernetes' order of sources, which decides which one is reported as extra.
    sources = (
        ("hostPath", vol.host_path),
        ("secret", vol.secret),
        ("persistentVolumeClaim", vol.persistent_volume_claim),
        ("downwardAPI", vol.downward_api),
        ("configMap", vol.config_map),
    )
    for wire, source in sources:
        if source is None:
            continue
        source_path = child(path, wire)
        if count:
            causes.append(forbidden(source_path, "may not specify more than 1 volume type"))
            continue
        count += 1
        if isinstance(source, HostPathVolumeSource):
            causes.extend(_host_path(source, source_path))
        elif isinstance(source, SecretVolumeSource):
            if not source.secret_name:
                causes.append(required(f"{source_path}.secretName"))
            causes.extend(_projection(source.default_mode, source.items, source_path))
        elif isinstance(source, ConfigMapVolumeSource):
            if not source.name:
                causes.append(required(f"{source_path}.name"))
            causes.extend(_projection(source.default_mode, source.items, source_path))
        elif isinstance(source, PersistentVolumeClaimVolumeSource):
            if not source.claim_name:
                causes.append(required(f"{source_path}.claimName"))
        elif isinstance(source, DownwardAPIVolumeSource):
            causes.extend(_downward_api(source, source_path))
    if not count:
        causes.append(required(path, "must specify a volume type"))
    return causes


def _host_path(source: HostPathVolumeSource, path: str) -> list[Cause]:
    if not source.path:
        return [required(f"{path}.path")]
    return no_backsteps(source.path, f"{path}.path")


def _projection(default_mode: int | None, items: list[KeyToPath] | None, path: str) -> list[Cause]:
    causes = file_mode(default_mode, f"{path}.defaultMode")
    items_path = f"{path}.items"
    for i, item in enumerate(items or ()):
        item_path = f"{items_path}[{i}]"
        if not item.key:
            causes.append(required(f"{item_path}.key"))
        if not item.path:
            causes.append(required(f"{item_path}.path"))
        causes.extend(local_non_reserved_path(item.path, f"{item_path}.path"))
        causes.extend(file_mode(item.mode, f"{item_path}.mode"))
    return causes


def _downward_api(source: DownwardAPIVolumeSource, path: str) -> list[Cause]:
    causes = file_mode(source.default_mode, f"{path}.defaultMode")
    items_path = f"{path}.items"
    for i, item in enumerate(source.items or ()):
        causes.extend(_downward_api_file(item, f"{items_path}[{i}]"))
    return causes


def _downward_api_file(item: DownwardAPIVolumeFile, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not item.path:
        causes.append(required(f"{path}.path"))
    causes.extend(local_non_reserved_path(item.path, f"{path}.path"))
    if item.field_ref is not None:
        causes.extend(object_field_selector(item.field_ref, VOLUME_FIELD_PATHS, f"{path}.fieldRef"))
        if item.resource_field_ref is not None:
            causes.append(
                invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif item.resource_field_ref is not None:
        causes.extend(
            resource_field_selector(
                item.resource_field_ref, f"{path}.resourceFieldRef", volume=True
            )
        )
    else:
        causes.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    causes.extend(file_mode(item.mode, f"{path}.mode"))
    return causes


def file_mode(mode: int | None, path: str) -> list[Cause]:
    if mode is not None and not 0 <= mode <= 0o777:
        return [invalid(path, mode, FILE_MODE_ERR)]
    return []


# --- paths inside volumes ------------------------------------------------------------


def no_backsteps(target: str, path: str) -> list[Cause]:
    if ".." in target.split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def local_descending_path(target: str, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if target.startswith("/"):
        causes.append(invalid(path, target, "must be a relative path"))
    causes.extend(no_backsteps(target, path))
    return causes


def local_non_reserved_path(target: str, path: str) -> list[Cause]:
    causes = local_descending_path(target, path)
    # "..data" and the like are the kubelet's own names inside the volume.
    if target.startswith("..") and not target.startswith("../"):
        causes.append(invalid(path, target, "must not start with '..'"))
    return causes


# --- downward API selectors (shared with environment variables) ----------------------


def _split_subscript(field_path: str) -> tuple[str, str] | None:
    """``fieldpath.SplitMaybeSubscriptedPath``: ``metadata.labels['app']``."""
    if not field_path.endswith("']"):
        return None
    base, sep, subscript = field_path[:-2].partition("['")
    if not sep or not base:
        return None
    return base, subscript


def object_field_selector(
    selector: ObjectFieldSelector, expressions: tuple[str, ...], path: str
) -> list[Cause]:
    if not selector.api_version:
        return [required(f"{path}.apiVersion")]
    if not selector.field_path:
        return [required(f"{path}.fieldPath")]
    field_path = selector.field_path
    split = _split_subscript(field_path)
    problem = ""
    if selector.api_version != "v1":
        problem = f"unsupported pod version: {selector.api_version}"
    elif split is not None:
        if split[0] not in ("metadata.annotations", "metadata.labels"):
            problem = f"field label does not support subscript: {field_path}"
    elif field_path == "spec.host":
        field_path = "spec.nodeName"
    elif field_path not in _CONVERTIBLE_FIELD_PATHS:
        problem = f"field label not supported: {field_path}"
    if problem:
        return [
            invalid(
                f"{path}.fieldPath",
                selector.field_path,
                f"error converting fieldPath: {problem}",
            )
        ]
    if split is not None:
        base, subscript = split
        # Annotation keys compare case-insensitively; label keys do not.
        return qualified_name(
            subscript.lower() if base == "metadata.annotations" else subscript, path
        )
    if field_path not in expressions:
        return [not_supported(f"{path}.fieldPath", field_path, sorted(expressions))]
    return []


def resource_field_selector(
    selector: ResourceFieldSelector, path: str, volume: bool
) -> list[Cause]:
    causes: list[Cause] = []
    resource = selector.resource
    if volume and not selector.container_name:
        causes.append(required(f"{path}.containerName"))
    elif not resource:
        causes.append(required(f"{path}.resource"))
    elif resource not in RESOURCE_FIELD_PATHS and not resource.startswith(
        _HUGEPAGES_FIELD_PREFIXES
    ):
        causes.append(not_supported(f"{path}.resource", resource, RESOURCE_FIELD_PATHS))
    if selector.divisor is None:
        return causes
    divisor_path = f"{path}.divisor"
    value = parse_or_cause(selector.divisor, divisor_path, causes)
    if value is None or value == 0:
        return causes
    text = quantity_text(selector.divisor)
    if resource in ("limits.cpu", "requests.cpu"):
        if text not in _CPU_DIVISORS:
            causes.append(
                invalid(
                    divisor_path,
                    resource,
                    "only divisor's values 1m and 1 are supported with the cpu resource",
                )
            )
    elif resource in ("limits.memory", "requests.memory"):
        if text not in _BYTE_DIVISORS:
            causes.append(invalid(divisor_path, resource, _divisor_err("the memory resource")))
    elif resource in ("limits.ephemeral-storage", "requests.ephemeral-storage"):
        if text not in _BYTE_DIVISORS:
            causes.append(
                invalid(
                    divisor_path, resource, _divisor_err("the local ephemeral storage resource")
                )
            )
    elif resource.startswith(_HUGEPAGES_FIELD_PREFIXES) and text not in _BYTE_DIVISORS:
        causes.append(invalid(divisor_path, resource, _divisor_err("the hugepages resource")))
    return causes


def _divisor_err(what: str) -> str:
    return f"only divisor's values {_BYTE_DIVISOR_TEXT} are supported with {what}"
