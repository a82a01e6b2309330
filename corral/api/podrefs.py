"""Which ConfigMaps, Secrets and PersistentVolumeClaims a pod references: what its node may read.

Kubernetes' node authorizer lets a node read an object only when a pod bound
to it uses that object; corral applies the same rule to its agents.
"""

from __future__ import annotations

from collections.abc import Iterator

from corral.objects import Obj


def referenced(pod: Obj) -> Iterator[tuple[str, str]]:
    """(kind, name) for every ConfigMap, Secret and PersistentVolumeClaim the pod uses."""
    spec = pod.get("spec") or {}
    for reference in spec.get("imagePullSecrets") or []:
        if reference.get("name"):
            yield "Secret", reference["name"]
    for volume in spec.get("volumes") or []:
        if volume.get("configMap"):
            yield "ConfigMap", volume["configMap"].get("name", "")
        if volume.get("secret"):
            yield "Secret", volume["secret"].get("secretName", "")
        if volume.get("persistentVolumeClaim"):
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"].get("claimName", "")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for source in container.get("envFrom") or []:
            if source.get("configMapRef"):
                yield "ConfigMap", source["configMapRef"].get("name", "")
            if source.get("secretRef"):
                yield "Secret", source["secretRef"].get("name", "")
        for var in container.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if value_from.get("configMapKeyRef"):
                yield "ConfigMap", value_from["configMapKeyRef"].get("name", "")
            if value_from.get("secretKeyRef"):
                yield "Secret", value_from["secretKeyRef"].get("name", "")


def references(pod: Obj, kind: str, name: str) -> bool:
    return (kind, name) in set(referenced(pod))
