"""Discovery: what kubectl and client-go read to learn which kinds exist."""

from __future__ import annotations

from corral import version
from corral.api.resources import Registry, ResourceType
from corral.objects import Obj

_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "finalize": ["update"],
    "eviction": ["create"],
    "token": ["create"],
    "log": ["get"],
    "exec": ["create", "get"],
    "portforward": ["create", "get"],
}


def version_info() -> Obj:
    return version.server_version()


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group_list(registry: Registry) -> Obj:
    groups = []
    for group, versions in registry.groups().items():
        if not group:
            continue
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> Obj | None:
    versions = registry.groups().get(group)
    if not group or versions is None:
        return None
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def _resource_entry(rt: ResourceType) -> Obj:
    entry: Obj = {
        "name": rt.plural,
        "singularName": rt.singular_name,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def _subresource_entry(rt: ResourceType, subresource: str) -> Obj:
    entry: Obj = {
        "name": f"{rt.plural}/{subresource}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": _SUBRESOURCE_VERBS.get(subresource, ["get"]),
    }
    if subresource == "scale":
        # Without the group and version kubectl cannot convert the Scale it reads.
        entry.update({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    elif subresource == "binding":
        entry["kind"] = "Binding"
    elif subresource == "eviction":
        entry.update({"group": "policy", "version": "v1", "kind": "Eviction"})
    elif subresource == "token":
        entry.update({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"})
    return entry


def api_resource_list(registry: Registry, group: str, version_name: str) -> Obj | None:
    resources = registry.in_group_version(group, version_name)
    if not resources:
        return None
    entries: list[Obj] = []
    for rt in resources:
        entries.append(_resource_entry(rt))
        entries.extend(_subresource_entry(rt, sub) for sub in rt.subresources)
    group_version = f"{group}/{version_name}" if group else version_name
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }
