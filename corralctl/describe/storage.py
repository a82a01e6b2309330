"""PersistentVolumes, PersistentVolumeClaims and StorageClasses.

The layouts are kubectl's (``PersistentVolumeDescriber`` and friends in
``k8s.io/kubectl/pkg/describe``).
"""

from __future__ import annotations

from corral.api.errors import ApiError
from corral.objects import Obj, meta, spec
from corralctl.describe.events import write_events
from corralctl.describe.formatting import (
    NONE,
    UNSET,
    format_time,
    quantity_text,
    title_bool,
    write_annotations,
    write_multiline_map,
)
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter

_SHORT_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}
_DEFAULT_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def access_modes(modes: list[str] | None) -> str:
    return ",".join(_SHORT_MODES.get(m, m) for m in modes or [])


def _finalizers(obj: Obj) -> str:
    return "[" + " ".join(meta(obj).get("finalizers") or []) + "]"


def _requirement_text(requirement: Obj) -> str:
    op = str(requirement.get("operator", ""))
    values = " ".join(requirement.get("values") or [])
    key = requirement.get("key", "")
    if op in ("Exists", "DoesNotExist"):
        return f"{key} {op.lower()}"
    return f"{key} {op.lower()} [{values}]"


def _write_node_affinity(w: PrefixWriter, affinity: Obj | None) -> None:
    required = (affinity or {}).get("required")
    if not required:
        w.write(0, f"Node Affinity:\t{NONE}\n")
        return
    w.write(0, "Node Affinity:\t\n")
    w.write(1, "Required Terms:\t\n")
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        w.write(2, f"{NONE}\n")
    for i, term in enumerate(terms):
        parts = [
            _requirement_text(r)
            for r in [*(term.get("matchExpressions") or []), *(term.get("matchFields") or [])]
        ]
        w.write(2, f"Term {i}:\t{', '.join(parts)}\n")


def _write_source(w: PrefixWriter, spec: Obj) -> None:
    w.write(0, "Source:\n")
    if spec.get("local") is not None:
        w.write(
            1,
            "Type:\tLocalVolume (a persistent volume backed by local storage on a node)\n"
            f"    Path:\t{spec['local'].get('path', '')}\n",
        )
    elif spec.get("hostPath") is not None:
        source = spec["hostPath"]
        kind = NONE if source.get("type") is None else source["type"]
        w.write(
            1,
            "Type:\tHostPath (bare host directory volume)\n"
            f"    Path:\t{source.get('path', '')}\n    HostPathType:\t{kind}\n",
        )
    else:
        w.write(1, "<unknown>\n")


async def describe_persistent_volume(src: DescribeSource, pv: Obj) -> str:
    spec = pv.get("spec") or {}
    status = pv.get("status") or {}
    meta = pv.get("metadata") or {}
    events = await src.events(pv)
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Finalizers:\t{_finalizers(pv)}\n")
    w.write(0, f"StorageClass:\t{spec.get('storageClassName', '')}\n")
    if meta.get("deletionTimestamp"):
        since = src.since(meta["deletionTimestamp"])
        w.write(0, f"Status:\tTerminating (lasts {since})\n")
    else:
        w.write(0, f"Status:\t{status.get('phase', '')}\n")
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    w.write(0, f"Claim:\t{claim}\n")
    w.write(0, f"Reclaim Policy:\t{spec.get('persistentVolumeReclaimPolicy', '')}\n")
    w.write(0, f"Access Modes:\t{access_modes(spec.get('accessModes'))}\n")
    w.write(0, f"VolumeMode:\t{spec.get('volumeMode') or 'Filesystem'}\n")
    capacity = (spec.get("capacity") or {}).get("storage", "")
    w.write(0, f"Capacity:\t{quantity_text(capacity) if capacity else ''}\n")
    _write_node_affinity(w, spec.get("nodeAffinity"))
    w.write(0, f"Message:\t{status.get('message', '')}\n")
    _write_source(w, spec)
    write_events(w, src, events)
    return w.render()


async def _pods_using(src: DescribeSource, namespace: str, claim: str) -> str:
    try:
        pods = await src.items(src.rt("v1", "Pod"), namespace)
    except ApiError:
        return "<unknown>"
    users = sorted(
        meta(p).get("name", "")
        for p in pods
        if any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
            for v in spec(p).get("volumes") or []
        )
    )
    return ", ".join(users) or NONE


async def describe_persistent_volume_claim(src: DescribeSource, pvc: Obj) -> str:
    spec = pvc.get("spec") or {}
    status = pvc.get("status") or {}
    meta = pvc.get("metadata") or {}
    used_by = await _pods_using(src, meta.get("namespace", ""), meta.get("name", ""))
    events = await src.events(pvc)
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"StorageClass:\t{spec.get('storageClassName', '')}\n")
    if meta.get("deletionTimestamp"):
        since = src.since(meta["deletionTimestamp"])
        w.write(0, f"Status:\tTerminating (lasts {since})\n")
    else:
        w.write(0, f"Status:\t{status.get('phase', '')}\n")
    w.write(0, f"Volume:\t{spec.get('volumeName', '')}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Finalizers:\t{_finalizers(pvc)}\n")
    capacity = (status.get("capacity") or {}).get("storage", "")
    w.write(0, f"Capacity:\t{quantity_text(capacity) if capacity else ''}\n")
    w.write(0, f"Access Modes:\t{access_modes(status.get('accessModes'))}\n")
    w.write(0, f"VolumeMode:\t{spec.get('volumeMode') or 'Filesystem'}\n")
    w.write(0, f"Used By:\t{used_by}\n")
    conditions = status.get("conditions") or []
    if conditions:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(
                1,
                f"{c.get('type', '')}\t{c.get('status', '')}\t"
                f"{format_time(c.get('lastProbeTime'))}\t"
                f"{format_time(c.get('lastTransitionTime'))}\t"
                f"{c.get('reason', '')}\t{c.get('message', '')}\n",
            )
    write_events(w, src, events)
    return w.render()


async def describe_storage_class(src: DescribeSource, sc: Obj) -> str:
    meta = sc.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    default = any(annotations.get(a) == "true" for a in _DEFAULT_ANNOTATIONS)
    events = await src.events(sc)
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"IsDefaultClass:\t{'Yes' if default else 'No'}\n")
    write_annotations(w, "Annotations", annotations)
    w.write(0, f"Provisioner:\t{sc.get('provisioner', '')}\n")
    parameters = sc.get("parameters") or {}
    text = ",".join(f"{k}={v}" for k, v in sorted(parameters.items())) or NONE
    w.write(0, f"Parameters:\t{text}\n")
    expansion = sc.get("allowVolumeExpansion")
    expansion_text = UNSET if expansion is None else title_bool(expansion)
    w.write(0, f"AllowVolumeExpansion:\t{expansion_text}\n")
    w.write(0, f"MountOptions:\t{', '.join(sc.get('mountOptions') or []) or NONE}\n")
    w.write(0, f"ReclaimPolicy:\t{sc.get('reclaimPolicy') or 'Delete'}\n")
    w.write(0, f"VolumeBindingMode:\t{sc.get('volumeBindingMode') or 'Immediate'}\n")
    write_events(w, src, events)
    return w.render()
