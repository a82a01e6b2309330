"""PersistentVolumes, PersistentVolumeClaims and StorageClasses, as Kubernetes validates them.

The rules and messages are those of ``ValidatePersistentVolume``,
``ValidatePersistentVolumeClaim`` (and their updates) and
``ValidateStorageClass`` in ``pkg/apis/core/validation`` and
``pkg/apis/storage/validation``, for the fields corral models.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from corral.api.errors import Cause
from corral.api.storage import (
    PersistentVolume,
    PersistentVolumeClaim,
    PersistentVolumeClaimSpec,
    StorageClass,
)
from corral.api.validate.common import (
    dns_subdomain,
    parse_or_cause,
    qualified_name,
    quantity_text,
    validate_label_selector,
)
from corral.api.validate.field import (
    IMMUTABLE,
    child,
    forbidden,
    invalid,
    key,
    not_supported,
    required,
)
from corral.api.validate.scheduling import _node_selector_term
from corral.api.validate.volumes import no_backsteps

STORAGE = "storage"
_MAX_PARAMETERS = 512
_MAX_PARAMETERS_BYTES = 256 * 1024
_RWOP_ALONE = "may not use ReadWriteOncePod with other access modes"
_PVC_SPEC_IMMUTABLE = (
    "spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


def _access_modes(modes: Sequence[str] | None, path: str, missing: str) -> list[Cause]:
    if not modes:
        return [required(path, missing)]
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        return [forbidden(path, _RWOP_ALONE)]
    return []


def _storage_class_name(name: str | None, path: str) -> list[Cause]:
    return dns_subdomain(name, path) if name else []


def _storage_quantity(raw: str, path: str, causes: list[Cause]) -> Decimal | None:
    value = parse_or_cause(raw, path, causes)
    if value is not None and value <= 0:
        causes.append(invalid(path, quantity_text(raw), "must be greater than zero"))
        return None
    return value


# --- PersistentVolume ---------------------------------------------------------------------


def validate_persistent_volume(pv: PersistentVolume) -> list[Cause]:
    causes: list[Cause] = []
    spec = pv.spec
    causes.extend(
        _access_modes(spec.access_modes, "spec.accessModes", "must specify at least 1 access mode")
    )
    capacity = spec.capacity or {}
    if not capacity:
        causes.append(required("spec.capacity", "must specify a capacity"))
    for name, raw in capacity.items():
        path = key("spec.capacity", name)
        if name != STORAGE:
            causes.append(not_supported(path, name, [STORAGE]))
            continue
        _storage_quantity(raw, path, causes)
    causes.extend(_storage_class_name(spec.storage_class_name, "spec.storageClassName"))
    sources = [(wire, s) for wire, s in (("hostPath", spec.host_path), ("local", spec.local)) if s]
    if not sources:
        causes.append(required("spec", "must specify a volume type"))
    for wire, _ in sources[1:]:
        causes.append(forbidden(child("spec", wire), "may not specify more than 1 volume type"))
    if spec.host_path is not None:
        if not spec.host_path.path:
            causes.append(required("spec.hostPath.path"))
        else:
            causes.extend(no_backsteps(spec.host_path.path, "spec.hostPath.path"))
    if spec.local is not None:
        if not spec.local.path:
            causes.append(required("spec.local.path"))
        else:
            causes.extend(no_backsteps(spec.local.path, "spec.local.path"))
        if spec.node_affinity is None or spec.node_affinity.required is None:
            causes.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    if spec.node_affinity is not None:
        hard = spec.node_affinity.required
        if hard is None:
            causes.append(required("spec.nodeAffinity.required"))
        else:
            terms_path = "spec.nodeAffinity.required.nodeSelectorTerms"
            if not hard.node_selector_terms:
                causes.append(required(terms_path, "must have at least one node selector term"))
            for i, term in enumerate(hard.node_selector_terms):
                causes.extend(_node_selector_term(term, f"{terms_path}[{i}]", check_values=True))
    if spec.persistent_volume_reclaim_policy == "Recycle":
        # Kubernetes deprecated the recycler; corral never implemented it.
        causes.append(
            not_supported("spec.persistentVolumeReclaimPolicy", "Recycle", ["Delete", "Retain"])
        )
    claim = spec.claim_ref
    if claim is not None:
        if not claim.name:
            causes.append(required("spec.claimRef.name"))
        if not claim.namespace:
            causes.append(required("spec.claimRef.namespace"))
    return causes


def validate_persistent_volume_update(new: PersistentVolume, old: PersistentVolume) -> list[Cause]:
    causes: list[Cause] = []
    if (new.spec.local, new.spec.host_path) != (old.spec.local, old.spec.host_path):
        causes.append(
            forbidden(
                "spec.persistentvolumesource", "spec.persistentvolumesource is forbidden once set"
            )
        )
    if new.spec.volume_mode != old.spec.volume_mode:
        causes.append(invalid("spec.volumeMode", new.spec.volume_mode, IMMUTABLE))
    if old.spec.node_affinity is not None and new.spec.node_affinity != old.spec.node_affinity:
        causes.append(
            invalid("spec.nodeAffinity", new.spec.node_affinity, "field is immutable once set")
        )
    return causes


# --- PersistentVolumeClaim ----------------------------------------------------------------


def validate_claim_spec(spec: PersistentVolumeClaimSpec, path: str) -> list[Cause]:
    """``ValidatePersistentVolumeClaimSpec``: also what a StatefulSet's claim templates need."""
    causes = _access_modes(
        spec.access_modes, child(path, "accessModes"), "at least 1 access mode is required"
    )
    causes.extend(validate_label_selector(spec.selector, child(path, "selector")))
    requests = (spec.resources.requests if spec.resources else None) or {}
    storage_path = key(child(path, "resources"), STORAGE)
    raw = requests.get(STORAGE)
    if raw is None:
        causes.append(required(storage_path))
    else:
        _storage_quantity(raw, storage_path, causes)
    for name in requests:
        if name != STORAGE:
            causes.append(
                not_supported(key(child(path, "resources.requests"), name), name, [STORAGE])
            )
    causes.extend(_storage_class_name(spec.storage_class_name, child(path, "storageClassName")))
    if spec.volume_name:
        causes.extend(dns_subdomain(spec.volume_name, child(path, "volumeName")))
    return causes


def validate_persistent_volume_claim(pvc: PersistentVolumeClaim) -> list[Cause]:
    return validate_claim_spec(pvc.spec, "spec")


def _requested(pvc: PersistentVolumeClaim) -> str | None:
    resources = pvc.spec.resources
    return (resources.requests or {}).get(STORAGE) if resources else None


def validate_persistent_volume_claim_update(
    new: PersistentVolumeClaim, old: PersistentVolumeClaim
) -> list[Cause]:
    """Spec is immutable, but for binding (volumeName and a defaulted class set once) and, on a
    bound claim, a larger storage request."""
    causes: list[Cause] = []
    comparable = new.spec.model_copy(deep=True)
    if not old.spec.volume_name:
        comparable.volume_name = old.spec.volume_name
    if old.spec.storage_class_name is None:
        comparable.storage_class_name = None
    bound = (old.status.phase if old.status else None) == "Bound"
    if bound and comparable.resources is not None:
        comparable.resources = (
            old.spec.resources.model_copy(deep=True) if old.spec.resources else None
        )
    if comparable != old.spec:
        causes.append(forbidden("spec", _PVC_SPEC_IMMUTABLE))
        return causes
    new_request, old_request = _requested(new), _requested(old)
    if bound and new_request is not None and old_request is not None:
        scratch: list[Cause] = []
        new_value = parse_or_cause(new_request, "", scratch)
        old_value = parse_or_cause(old_request, "", scratch)
        if new_value is not None and old_value is not None and new_value < old_value:
            causes.append(
                forbidden(
                    "spec.resources.requests.storage", "field can not be less than previous value"
                )
            )
    return causes


# --- StorageClass -------------------------------------------------------------------------


def validate_storage_class(sc: StorageClass) -> list[Cause]:
    causes: list[Cause] = []
    if not sc.provisioner:
        causes.append(required("provisioner"))
    else:
        causes.extend(qualified_name(sc.provisioner, "provisioner"))
    parameters = sc.parameters or {}
    if len(parameters) > _MAX_PARAMETERS:
        causes.append(
            invalid(
                "parameters", len(parameters), f"must have at most {_MAX_PARAMETERS} parameters"
            )
        )
    size = sum(len(k) + len(v) for k, v in parameters.items())
    if size > _MAX_PARAMETERS_BYTES:
        causes.append(
            invalid("parameters", size, f"must have at most {_MAX_PARAMETERS_BYTES} bytes")
        )
    for name in parameters:
        if not name:
            causes.append(invalid("parameters", name, "field can not be empty."))
    for i, term in enumerate(sc.allowed_topologies or ()):
        term_path = f"allowedTopologies[{i}].matchLabelExpressions"
        if not term.match_label_expressions:
            causes.append(required(term_path, "must contain at least one requirement"))
        for j, requirement in enumerate(term.match_label_expressions or ()):
            causes.extend(qualified_name(requirement.key, f"{term_path}[{j}].key"))
            if not requirement.values:
                causes.append(
                    required(f"{term_path}[{j}].values", "must specify as least one value")
                )
    return causes


def validate_storage_class_update(new: StorageClass, old: StorageClass) -> list[Cause]:
    causes: list[Cause] = []
    if (new.parameters or {}) != (old.parameters or {}):
        causes.append(forbidden("parameters", "updates to parameters are forbidden."))
    if new.provisioner != old.provisioner:
        causes.append(forbidden("provisioner", "updates to provisioner are forbidden."))
    if new.reclaim_policy != old.reclaim_policy:
        causes.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
    if new.volume_binding_mode != old.volume_binding_mode:
        causes.append(invalid("volumeBindingMode", new.volume_binding_mode, IMMUTABLE))
    return causes
