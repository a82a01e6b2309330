"""Reading Deployments and ReplicaSets as the API stores them (plain JSON dicts).

The deployment modules pass objects around as the API returns them; these
accessors give every field one reading, with Kubernetes' defaults for what
is absent (``spec.replicas`` is 1, a missing status counts as zero). Pods
and owner references are read with the shared ``podutil``.
"""

from __future__ import annotations

from controlplane.controllers import podutil
from corral.api.labels import LabelSelector, SelectorError, selector_from_dict

# The shared accessors, re-exported (``x as x``) so the deployment modules
# read every field through ``o.``, theirs and the common ones alike.
from corral.objects import Obj
from corral.objects import annotations_of as annotations_of
from corral.objects import labels_of as labels_of
from corral.objects import meta as meta
from corral.objects import name_of as name_of
from corral.objects import namespace_of as namespace_of
from corral.objects import spec as spec
from corral.objects import status as status
from corral.objects import uid_of as uid_of

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
TEMPLATE_HASH_LABEL = "pod-template-hash"


def generation(obj: Obj) -> int:
    return int(meta(obj).get("generation") or 0)


def replicas(obj: Obj) -> int:
    """``spec.replicas``, which Kubernetes defaults to 1 when absent."""
    value = spec(obj).get("replicas")
    return 1 if value is None else int(value)


def actual_replicas(rs: Obj) -> int:
    return int(status(rs).get("replicas") or 0)


def ready_replicas(rs: Obj) -> int:
    return int(status(rs).get("readyReplicas") or 0)


def available_replicas(rs: Obj) -> int:
    return int(status(rs).get("availableReplicas") or 0)


def template(obj: Obj) -> Obj:
    found: Obj = spec(obj).get("template") or {}
    return found


def template_labels(obj: Obj) -> dict[str, str]:
    found: dict[str, str] = meta(template(obj)).get("labels") or {}
    return found


def int_annotation(obj: Obj, key: str) -> int | None:
    """An integer annotation, or None when it is absent or not a number."""
    text = annotations_of(obj).get(key)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def revision(obj: Obj) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation; 0 when absent or garbled."""
    return int_annotation(obj, REVISION) or 0


def controlled_by(obj: Obj, owner_uid: str) -> bool:
    ref = podutil.controller_ref(obj)
    return ref is not None and ref.get("uid") == owner_uid


def creation_key(obj: Obj) -> tuple[str, str]:
    """Order by creation time, then name: ``ReplicaSetsByCreationTimestamp``.

    RFC 3339 timestamps in UTC with a ``Z`` sort correctly as text.
    """
    return (str(meta(obj).get("creationTimestamp") or ""), name_of(obj))


def selector(obj: Obj) -> LabelSelector | None:
    """The object's ``spec.selector``, or None when it cannot be parsed."""
    try:
        return selector_from_dict(spec(obj).get("selector"))
    except SelectorError:
        return None
