"""What the server does to an object of each kind around a write.

A strategy sets server-owned fields on create, keeps the part of an object a
request may not change (status on the main resource, everything but status
on ``/status``), decides when ``metadata.generation`` moves, and extracts
the fields a fieldSelector can name. The generic handlers stay kind-blind.
"""

from __future__ import annotations

import base64
import copy
import secrets
from datetime import datetime, timedelta
from typing import Any

from corral.api.crd import established_status
from corral.api.errors import Cause
from corral.api.resources import ResourceType
from corral.clock import rfc3339
from corral.objects import Obj
from corral.qos import qos_class

# Keys of an object that are neither metadata nor status: what "spec" means
# for generation purposes when a kind has no spec field of its own.
_META_KEYS = {"apiVersion", "kind", "metadata", "status"}


def get_path(obj: Obj, path: str) -> Any:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Strategy:
    """The defaults: status is server-owned, spec changes bump the generation."""

    # Status sent with a create is kept only for kinds whose writer owns it
    # from birth (a node agent registers its Node with status).
    keep_status_on_create = False

    def __init__(self, rt: ResourceType) -> None:
        self.rt = rt
        self.has_status = rt.has("status")

    # --- create -------------------------------------------------------------------

    def prepare_create(self, obj: Obj, now: datetime) -> None:
        if self.has_status and not self.keep_status_on_create:
            obj.pop("status", None)
            initial = self.initial_status(obj)
            if initial is not None:
                obj["status"] = initial
        if self.rt.has_spec_generation:
            obj["metadata"]["generation"] = 1

    def initial_status(self, obj: Obj) -> Obj | None:
        return None

    # --- update -------------------------------------------------------------------

    def prepare_update(self, new: Obj, old: Obj) -> None:
        """A write to the main resource: status stays as stored."""
        if self.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        self._bump_generation(new, old)

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        """A write to ``/status``: everything but status (and the managedFields
        recording who wrote it) stays as stored."""
        status = new.get("status")
        managed = new.get("metadata", {}).get("managedFields")
        new.clear()
        new.update(copy.deepcopy({k: v for k, v in old.items() if k != "status"}))
        if status is not None:
            new["status"] = status
        if isinstance(managed, list):
            metadata = new.setdefault("metadata", {})
            if managed:
                metadata["managedFields"] = managed
            else:
                metadata.pop("managedFields", None)

    def _bump_generation(self, new: Obj, old: Obj) -> None:
        if not self.rt.has_spec_generation:
            return
        generation = old.get("metadata", {}).get("generation") or 1
        if self.spec_of(new) != self.spec_of(old):
            generation += 1
        new["metadata"]["generation"] = generation

    @staticmethod
    def spec_of(obj: Obj) -> Any:
        if "spec" in obj:
            return obj["spec"]
        return {k: v for k, v in obj.items() if k not in _META_KEYS}

    # --- delete -------------------------------------------------------------------

    def graceful_seconds(self, obj: Obj, requested: int | None) -> int:
        """Seconds the object lingers with a deletionTimestamp before removal; 0 for none."""
        return 0

    def extra_finalizers_on_delete(self) -> list[str]:
        return []

    def can_remove(self, obj: Obj) -> bool:
        """Whether a terminating object has nothing left holding it."""
        return not obj.get("metadata", {}).get("finalizers")

    # --- field selectors -------------------------------------------------------

    def field_values(self, obj: Obj) -> dict[str, str]:
        metadata = obj.get("metadata", {})
        values = {
            "metadata.name": metadata.get("name", ""),
            "metadata.namespace": metadata.get("namespace", ""),
        }
        for field in self.rt.selectable_fields:
            values[field] = field_text(get_path(obj, field))
        return values

    # --- extra validation the server owns -------------------------------------------

    def validate_create(self, obj: Obj) -> list[Cause]:
        return []


class PodStrategy(Strategy):
    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec", {}))}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        super().prepare_update(new, old)

    def graceful_seconds(self, obj: Obj, requested: int | None) -> int:
        spec = obj.get("spec", {})
        phase = obj.get("status", {}).get("phase")
        # Nobody runs an unscheduled or finished pod, so nobody would confirm
        # its termination: remove it at once, as Kubernetes does.
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(requested, 0)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def can_remove(self, obj: Obj) -> bool:
        metadata = obj.get("metadata", {})
        return not metadata.get("finalizers") and not metadata.get("deletionGracePeriodSeconds")


class NamespaceStrategy(Strategy):
    keep_status_on_create = False

    def prepare_create(self, obj: Obj, now: datetime) -> None:
        super().prepare_create(obj, now)
        spec = obj.setdefault("spec", {})
        finalizers = spec.get("finalizers") or []
        if "kubernetes" not in finalizers:
            spec["finalizers"] = [*finalizers, "kubernetes"]
        obj["status"] = {"phase": "Active"}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        super().prepare_update(new, old)
        # spec.finalizers moves only through /finalize.
        new["spec"] = copy.deepcopy(old.get("spec", {}))

    def can_remove(self, obj: Obj) -> bool:
        return super().can_remove(obj) and not obj.get("spec", {}).get("finalizers")

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        values["metadata.namespace"] = ""
        return values


class NodeStrategy(Strategy):
    keep_status_on_create = True


class ServiceStrategy(Strategy):
    def initial_status(self, obj: Obj) -> Obj:
        # What Kubernetes' empty ServiceStatus serializes to.
        return {"loadBalancer": {}}


SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"


class SecretStrategy(Strategy):
    # --legacy-service-account-token-secrets: otherwise creating a Secret
    # would mint a token for any ServiceAccount named in its annotation.
    fill_legacy_tokens = False

    def prepare_create(self, obj: Obj, now: datetime) -> None:
        super().prepare_create(obj, now)
        fold_string_data(obj)
        if self.fill_legacy_tokens and obj.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE:
            fill_token(obj)

    def prepare_update(self, new: Obj, old: Obj) -> None:
        super().prepare_update(new, old)
        fold_string_data(new)


def fill_token(secret: Obj) -> None:
    """The server makes a service account token Secret's token, as Kubernetes' token
    controller did before bound tokens; deleting the Secret revokes it."""
    data = secret.setdefault("data", {})
    if not data.get("token"):
        data["token"] = base64.b64encode(secrets.token_urlsafe(32).encode()).decode()
    namespace = secret.get("metadata", {}).get("namespace") or ""
    data.setdefault("namespace", base64.b64encode(namespace.encode()).decode())


def fold_string_data(secret: Obj) -> None:
    """``stringData`` is write-only: it lands, encoded, in ``data``."""
    string_data = secret.pop("stringData", None)
    if not string_data:
        return
    data = secret.setdefault("data", {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()


class ReplicatedStrategy(Strategy):
    """ReplicationController, ReplicaSet and Deployment: status starts at zero replicas."""

    def initial_status(self, obj: Obj) -> Obj | None:
        if self.rt.kind == "Deployment":
            return {}
        return {"replicas": 0}


class EventStrategy(Strategy):
    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        values["source"] = field_text(get_path(obj, "source.component"))
        return values


class VolumeStrategy(Strategy):
    """PersistentVolumes and claims start Pending and carry their protection finalizer.

    Kubernetes' StorageObjectInUseProtection admission plugin adds the
    finalizer on create, so a volume or claim in use is never removed under
    its pod; the controller manager lifts it once nothing uses the object.
    """

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending"}

    def prepare_create(self, obj: Obj, now: datetime) -> None:
        super().prepare_create(obj, now)
        protection = (
            "kubernetes.io/pv-protection"
            if self.rt.kind == "PersistentVolume"
            else "kubernetes.io/pvc-protection"
        )
        finalizers = obj["metadata"].get("finalizers") or []
        if protection not in finalizers:
            obj["metadata"]["finalizers"] = [*finalizers, protection]


class CustomResourceDefinitionStrategy(Strategy):
    """A CRD the server accepts is established at once: its names, conditions and stored
    versions are the server's to write, on create and on every change of its spec."""

    def prepare_create(self, obj: Obj, now: datetime) -> None:
        super().prepare_create(obj, now)
        obj["status"] = established_status(obj, rfc3339(now))

    def prepare_update(self, new: Obj, old: Obj) -> None:
        super().prepare_update(new, old)
        status = established_status(new, "")
        kept = {c.get("type"): c for c in (old.get("status") or {}).get("conditions") or ()}
        for condition in status["conditions"]:
            condition["lastTransitionTime"] = kept.get(condition["type"], {}).get(
                "lastTransitionTime", new["metadata"].get("creationTimestamp", "")
            )
        previous = (old.get("status") or {}).get("storedVersions") or []
        status["storedVersions"] = list(dict.fromkeys([*previous, *status["storedVersions"]]))
        new["status"] = status


class JobStrategy(Strategy):
    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        # Kubernetes names the field status.successful; it reads status.succeeded.
        values["status.successful"] = str(int(get_path(obj, "status.succeeded") or 0))
        return values


_STRATEGIES: dict[str, type[Strategy]] = {
    "Pod": PodStrategy,
    "Namespace": NamespaceStrategy,
    "Service": ServiceStrategy,
    "Node": NodeStrategy,
    "Secret": SecretStrategy,
    "ReplicationController": ReplicatedStrategy,
    "ReplicaSet": ReplicatedStrategy,
    "Deployment": ReplicatedStrategy,
    "Event": EventStrategy,
    "PersistentVolume": VolumeStrategy,
    "PersistentVolumeClaim": VolumeStrategy,
    "CustomResourceDefinition": CustomResourceDefinitionStrategy,
    "Job": JobStrategy,
}


def strategy_for(rt: ResourceType) -> Strategy:
    if rt.custom is not None:
        return Strategy(rt)  # a custom kind named like a built-in one is not that kind
    return _STRATEGIES.get(rt.kind, Strategy)(rt)


# --- helpers ------------------------------------------------------------------------


def deletion_timestamp(now: datetime, grace_seconds: int) -> str:
    return rfc3339(now + timedelta(seconds=grace_seconds))
