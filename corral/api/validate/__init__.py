"""Semantic validation of API objects, as the Kubernetes API server does it.

The models already enforce structure, JSON types, enumerations and required
keys; what is left is everything Kubernetes checks in
``pkg/apis/core/validation`` and ``pkg/apis/apps/validation`` for the fields
corral models: name formats, cross-field rules, ranges, references between
fields, and what an update may change.

``validate_object`` returns every problem it finds, each a ``Cause`` with the
field path, reason and message Kubernetes would report, so that
``errors.invalid(kind, name, causes)`` reads exactly like the real thing::

    Pod "web" is invalid: spec.containers[0].image: Required value

Defaults that Kubernetes applies before validating and corral's models leave
unset (a ReplicationController's selector, a Deployment's rolling-update
parameters, a Service's session-affinity timeout, a host-network pod's host
ports) are read as their defaults rather than reported missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from corral.api import crd
from corral.api.apps import ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet
from corral.api.base import ApiModel
from corral.api.batch import CronJob, Job
from corral.api.coordination import Lease
from corral.api.core import (
    ConfigMap,
    Endpoints,
    Event,
    Namespace,
    Node,
    Pod,
    ReplicationController,
    Secret,
    Service,
)
from corral.api.errors import Cause
from corral.api.policy import PodDisruptionBudget
from corral.api.rbac import GROUP as RBAC_GROUP
from corral.api.resources import ResourceType
from corral.api.storage import PersistentVolume, PersistentVolumeClaim, StorageClass
from corral.api.validate import (
    daemonsets,
    jobs,
    nodes,
    other,
    pods,
    rbac,
    services,
    statefulsets,
    storage,
    workloads,
)
from corral.api.validate.checks import is_dns1035_label, is_dns1123_label, is_dns1123_subdomain
from corral.api.validate.common import NameCheck
from corral.api.validate.meta import validate_object_meta, validate_object_meta_update

__all__ = ["validate_object"]

M = TypeVar("M", bound=ApiModel)

# Kinds whose names are not DNS subdomains.
_NAME_CHECKS: dict[str, NameCheck] = {
    "Namespace": is_dns1123_label,
    "Service": is_dns1035_label,
    # RBAC names only have to sit in a URL path: "system:node-bootstrapper".
    **{
        kind: rbac.rbac_name
        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
}


def _on_create(model: type[M], fn: Callable[[M], list[Cause]]) -> Callable[[Any], list[Cause]]:
    def check(obj: Any) -> list[Cause]:
        return fn(obj) if isinstance(obj, model) else []

    return check


def _on_update(
    model: type[M], fn: Callable[[M, M], list[Cause]]
) -> Callable[[Any, Any], list[Cause]]:
    def check(obj: Any, old: Any) -> list[Cause]:
        return fn(obj, old) if isinstance(obj, model) and isinstance(old, model) else []

    return check


_CREATE: dict[str, Callable[[Any], list[Cause]]] = {
    "Pod": _on_create(Pod, pods.validate_pod),
    "ReplicationController": _on_create(
        ReplicationController, workloads.validate_replication_controller
    ),
    "ReplicaSet": _on_create(ReplicaSet, workloads.validate_replica_set),
    "Deployment": _on_create(Deployment, workloads.validate_deployment),
    "StatefulSet": _on_create(StatefulSet, statefulsets.validate_stateful_set),
    "ControllerRevision": _on_create(ControllerRevision, statefulsets.validate_controller_revision),
    "DaemonSet": _on_create(DaemonSet, daemonsets.validate_daemon_set),
    "Service": _on_create(Service, services.validate_service),
    "Endpoints": _on_create(Endpoints, services.validate_endpoints),
    "Node": _on_create(Node, nodes.validate_node),
    "ConfigMap": _on_create(ConfigMap, other.validate_config_map),
    "Secret": _on_create(Secret, other.validate_secret),
    "Event": _on_create(Event, other.validate_event),
    "PodDisruptionBudget": _on_create(PodDisruptionBudget, other.validate_pdb),
    "Lease": _on_create(Lease, other.validate_lease),
    "Namespace": _on_create(Namespace, other.validate_namespace),
    "PersistentVolume": _on_create(PersistentVolume, storage.validate_persistent_volume),
    "PersistentVolumeClaim": _on_create(
        PersistentVolumeClaim, storage.validate_persistent_volume_claim
    ),
    "StorageClass": _on_create(StorageClass, storage.validate_storage_class),
    "Job": _on_create(Job, jobs.validate_job),
    "CronJob": _on_create(CronJob, jobs.validate_cron_job),
}

_UPDATE: dict[str, Callable[[Any, Any], list[Cause]]] = {
    "Pod": _on_update(Pod, pods.validate_pod_update),
    "ReplicaSet": _on_update(ReplicaSet, workloads.validate_replica_set_update),
    "Deployment": _on_update(Deployment, workloads.validate_deployment_update),
    "StatefulSet": _on_update(StatefulSet, statefulsets.validate_stateful_set_update),
    "DaemonSet": _on_update(DaemonSet, daemonsets.validate_daemon_set_update),
    "ControllerRevision": _on_update(
        ControllerRevision, statefulsets.validate_controller_revision_update
    ),
    "Service": _on_update(Service, services.validate_service_update),
    "Node": _on_update(Node, nodes.validate_node_update),
    "ConfigMap": _on_update(ConfigMap, other.validate_config_map_update),
    "Secret": _on_update(Secret, other.validate_secret_update),
    "PersistentVolume": _on_update(PersistentVolume, storage.validate_persistent_volume_update),
    "PersistentVolumeClaim": _on_update(
        PersistentVolumeClaim, storage.validate_persistent_volume_claim_update
    ),
    "StorageClass": _on_update(StorageClass, storage.validate_storage_class_update),
    "Job": _on_update(Job, jobs.validate_job_update),
}


def validate_object(rt: ResourceType, obj: ApiModel, old: ApiModel | None = None) -> list[Cause]:
    """Every problem Kubernetes would find in ``obj``, an instance of ``rt.model``.

    ``old`` is the stored object on update, None on create. An update is
    checked both as a whole object and for what it changes, as Kubernetes
    does; an empty list means the write may go ahead.
    """
    causes: list[Cause] = []
    metadata = getattr(obj, "metadata", None)
    if metadata is not None:
        name_check = _NAME_CHECKS.get(rt.kind, is_dns1123_subdomain)
        causes.extend(validate_object_meta(metadata, name_check, rt.namespaced))
        old_metadata = getattr(old, "metadata", None)
        if old_metadata is not None:
            causes.extend(validate_object_meta_update(metadata, old_metadata))
    if rt.custom is not None:
        return causes  # decoding checked it against its CRD's schema
    if rt.kind == "CustomResourceDefinition":
        causes.extend(crd.validate_crd(obj.to_dict()))
        if old is not None:
            causes.extend(crd.validate_crd_update(obj.to_dict(), old.to_dict()))
    create = _CREATE.get(rt.kind)
    if create is not None:
        causes.extend(create(obj))
    if old is not None:
        update = _UPDATE.get(rt.kind)
        if update is not None:
            causes.extend(update(obj, old))
    if rt.group == RBAC_GROUP:
        causes.extend(rbac.validate_rbac(rt, obj, old))
    return causes
