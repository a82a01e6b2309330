"""A pod's volumes, each with the source it comes from."""

from __future__ import annotations

from corral.objects import Obj
from corralctl.describe.formatting import NONE, UNSET, go_bool, quantity_text
from corralctl.describe.quantities import resource_list
from corralctl.describe.tabwriter import PrefixWriter


def _optional(source: Obj) -> str:
    return go_bool(source.get("optional"))


def _write_volume_source(w: PrefixWriter, volume: Obj) -> None:
    if volume.get("hostPath") is not None:
        source = volume["hostPath"]
        kind = NONE if source.get("type") is None else source["type"]
        w.write(
            2,
            "Type:\tHostPath (bare host directory volume)\n"
            f"    Path:\t{source.get('path', '')}\n    HostPathType:\t{kind}\n",
        )
    elif volume.get("emptyDir") is not None:
        source = volume["emptyDir"]
        size = (
            resource_list({"s": source["sizeLimit"]}).get("s")
            if source.get("sizeLimit") is not None
            else None
        )
        limit = quantity_text(source["sizeLimit"]) if size and size.value > 0 else UNSET
        w.write(
            2,
            "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
            f"    Medium:\t{source.get('medium', '')}\n    SizeLimit:\t{limit}\n",
        )
    elif volume.get("secret") is not None:
        source = volume["secret"]
        w.write(
            2,
            "Type:\tSecret (a volume populated by a Secret)\n"
            f"    SecretName:\t{source.get('secretName', '')}\n"
            f"    Optional:\t{_optional(source)}\n",
        )
    elif volume.get("configMap") is not None:
        source = volume["configMap"]
        w.write(
            2,
            "Type:\tConfigMap (a volume populated by a ConfigMap)\n"
            f"    Name:\t{source.get('name', '')}\n    Optional:\t{_optional(source)}\n",
        )
    elif volume.get("downwardAPI") is not None:
        w.write(
            2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n"
        )
        for item in volume["downwardAPI"].get("items") or []:
            if item.get("fieldRef") is not None:
                w.write(3, f"{item['fieldRef'].get('fieldPath', '')} -> {item.get('path', '')}\n")
            if item.get("resourceFieldRef") is not None:
                w.write(
                    3, f"{item['resourceFieldRef'].get('resource', '')} -> {item.get('path', '')}\n"
                )
    elif volume.get("projected") is not None:
        _write_projected(w, volume["projected"])
    elif volume.get("persistentVolumeClaim") is not None:
        source = volume["persistentVolumeClaim"]
        w.write(
            2,
            "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the "
            f"same namespace)\n    ClaimName:\t{source.get('claimName', '')}\n"
            f"    ReadOnly:\t{go_bool(source.get('readOnly'))}\n",
        )
    elif volume.get("nfs") is not None:
        source = volume["nfs"]
        w.write(
            2,
            "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n"
            f"    Server:\t{source.get('server', '')}\n    Path:\t{source.get('path', '')}\n"
            f"    ReadOnly:\t{go_bool(source.get('readOnly'))}\n",
        )
    else:
        w.write(1, "<unknown>\n")


def _write_projected(w: PrefixWriter, projected: Obj) -> None:
    w.write(2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n")
    for source in projected.get("sources") or []:
        if source.get("secret") is not None:
            w.write(
                2,
                f"SecretName:\t{source['secret'].get('name', '')}\n"
                f"    Optional:\t{_optional(source['secret'])}\n",
            )
        elif source.get("downwardAPI") is not None:
            w.write(2, "DownwardAPI:\ttrue\n")
        elif source.get("configMap") is not None:
            w.write(
                2,
                f"ConfigMapName:\t{source['configMap'].get('name', '')}\n"
                f"    Optional:\t{_optional(source['configMap'])}\n",
            )
        elif source.get("serviceAccountToken") is not None:
            seconds = source["serviceAccountToken"].get("expirationSeconds", 3607)
            w.write(2, f"TokenExpirationSeconds:\t{seconds}\n")


def write_volumes(w: PrefixWriter, volumes: list[Obj], space: str = "") -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t{NONE}\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for volume in volumes:
        w.write(1, f"{' ' if space else ''}{volume.get('name', '')}:\n")
        _write_volume_source(w, volume)
