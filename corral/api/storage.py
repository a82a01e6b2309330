"""Persistent storage: core/v1 PersistentVolume and PersistentVolumeClaim, storage.k8s.io/v1
StorageClass.

PersistentVolume and PersistentVolumeClaim belong to the legacy core group,
as in Kubernetes; they live here beside StorageClass because the three only
make sense together. Of the many volume sources Kubernetes knows, a
PersistentVolume may be ``local`` (what corral's provisioner makes) or
``hostPath``; the node agent mounts only ``local`` ones, confined to its own
volumes directory (docs/storage.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from corral.api.base import ApiModel, MergeKey, Quantity, Time
from corral.api.core import HostPathVolumeSource, NodeSelector, ObjectReference
from corral.api.meta import LabelSelector, ObjectMeta

AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]
ACCESS_MODES: tuple[str, ...] = (
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
)
VolumeMode = Literal["Filesystem", "Block"]
ReclaimPolicy = Literal["Retain", "Delete", "Recycle"]
BindingMode = Literal["Immediate", "WaitForFirstConsumer"]

STORAGE_GROUP = "storage.k8s.io"

# --- well-known names -------------------------------------------------------------------

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
PROVISIONED_BY_ANNOTATION = "pv.kubernetes.io/provisioned-by"
STORAGE_PROVISIONER_ANNOTATION = "volume.kubernetes.io/storage-provisioner"
BIND_COMPLETED_ANNOTATION = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER_ANNOTATION = "pv.kubernetes.io/bound-by-controller"
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"
LOCAL_CLEANUP_FINALIZER = "corral.io/local-volume-cleanup"
LOCAL_PROVISIONER = "corral.io/local"
DEFAULT_CLASS_NAME = "corral-local"


# --- PersistentVolume ---------------------------------------------------------------------


class LocalVolumeSource(ApiModel):
    # For corral's provisioner, a path relative to the node agent's volumes
    # directory; the agent refuses anything that would leave it.
    path: str
    fs_type: str | None = None


class VolumeNodeAffinity(ApiModel):
    required: NodeSelector | None = None


class PersistentVolumeSpec(ApiModel):
    capacity: dict[str, Quantity] | None = None
    access_modes: list[AccessMode] | None = None
    claim_ref: ObjectReference | None = None
    persistent_volume_reclaim_policy: ReclaimPolicy = "Retain"
    storage_class_name: str | None = None
    mount_options: list[str] | None = None
    volume_mode: VolumeMode = "Filesystem"
    node_affinity: VolumeNodeAffinity | None = None
    local: LocalVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None


class PersistentVolumeStatus(ApiModel):
    phase: Literal["Pending", "Available", "Bound", "Released", "Failed"] | None = None
    message: str | None = None
    reason: str | None = None
    last_phase_transition_time: Time | None = None


class PersistentVolume(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["PersistentVolume"] = "PersistentVolume"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PersistentVolumeSpec = Field(default_factory=PersistentVolumeSpec)
    status: PersistentVolumeStatus | None = None


# --- PersistentVolumeClaim ----------------------------------------------------------------


class VolumeResourceRequirements(ApiModel):
    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None


class PersistentVolumeClaimSpec(ApiModel):
    access_modes: list[AccessMode] | None = None
    selector: LabelSelector | None = None
    resources: VolumeResourceRequirements | None = None
    volume_name: str | None = None
    storage_class_name: str | None = None
    volume_mode: VolumeMode = "Filesystem"


class PersistentVolumeClaimCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_probe_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class PersistentVolumeClaimStatus(ApiModel):
    phase: Literal["Pending", "Bound", "Lost"] | None = None
    access_modes: list[AccessMode] | None = None
    capacity: dict[str, Quantity] | None = None
    conditions: Annotated[list[PersistentVolumeClaimCondition], MergeKey("type")] | None = None


class PersistentVolumeClaim(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["PersistentVolumeClaim"] = "PersistentVolumeClaim"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PersistentVolumeClaimSpec = Field(default_factory=PersistentVolumeClaimSpec)
    status: PersistentVolumeClaimStatus | None = None


# --- StorageClass -----------------------------------------------------------------------


class TopologySelectorLabelRequirement(ApiModel):
    key: str
    values: list[str]


class TopologySelectorTerm(ApiModel):
    match_label_expressions: list[TopologySelectorLabelRequirement] | None = None


class StorageClass(ApiModel):
    api_version: Literal["storage.k8s.io/v1"] = "storage.k8s.io/v1"
    kind: Literal["StorageClass"] = "StorageClass"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    provisioner: str
    parameters: dict[str, str] | None = None
    reclaim_policy: Literal["Retain", "Delete"] = "Delete"
    mount_options: list[str] | None = None
    allow_volume_expansion: bool | None = None
    volume_binding_mode: BindingMode = "Immediate"
    allowed_topologies: list[TopologySelectorTerm] | None = None
