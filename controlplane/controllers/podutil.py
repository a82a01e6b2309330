"""Pod and ownership helpers the controllers share (read-only for other controllers).

Everything here is a pure function over wire-form objects (the dicts the
informers hold): readiness and availability as Kubernetes defines them,
controller references, claiming objects by selector, and building a pod
from a template. Nothing here talks to the API.
"""

from __future__ import annotations

import copy
import enum
from datetime import datetime, timedelta

from corral.api.labels import LabelSelector
from corral.objects import (
    Obj,
    labels_of,
    meta,
    name_of,
    namespace_of,
    owner_references,
    parse_time,
    spec,
    status,
    uid_of,
)

NAMESPACE_INDEX = "namespace"
NODE_NAME_INDEX = "nodeName"
# Kubernetes' SimpleNameGenerator keeps generated names within a DNS label.
_MAX_GENERATE_NAME_BASE = 63 - 5


def by_namespace(obj: Obj) -> list[str]:
    """Index function: an informer index of objects by namespace."""
    return [namespace_of(obj)]


def by_node_name(obj: Obj) -> list[str]:
    """Index function: pods by the node they are bound to (unbound pods are not indexed)."""
    node = spec(obj).get("nodeName")
    return [node] if node else []


# --- pod state ----------------------------------------------------------------------------


def is_terminating(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def phase(pod: Obj) -> str:
    return str(status(pod).get("phase") or "")


def is_terminal(pod: Obj) -> bool:
    """Succeeded or Failed: the pod will never run again."""
    return phase(pod) in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    """Counts toward a replica count: neither finished nor on its way out."""
    return not is_terminal(pod) and not is_terminating(pod)


def condition(obj: Obj, kind: str) -> Obj | None:
    for found in status(obj).get("conditions") or []:
        if found.get("type") == kind:
            result: Obj = found
            return result
    return None


def is_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True (what the node agent reports from its probes)."""
    ready = condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    """When the pod last became ready; None if it is not ready."""
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    return parse_time(ready.get("lastTransitionTime"))


def available_at(pod: Obj, min_ready_seconds: int) -> datetime | None:
    """When a ready pod counts as available; None if it is not ready (or never says when)."""
    since = ready_since(pod)
    if since is None:
        return None
    return since + timedelta(seconds=min_ready_seconds)


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least ``min_ready_seconds``, as Kubernetes' IsPodAvailable.

    Reached at exactly ``min_ready_seconds`` (Kubernetes waits for the next
    tick): a controller requeued for that instant then sees it available.
    """
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    at = available_at(pod, min_ready_seconds)
    return at is not None and at <= now


def restart_count(pod: Obj) -> int:
    """The highest restart count among the pod's containers."""
    statuses = status(pod).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


# --- owner references --------------------------------------------------------------------


def controller_ref(obj: Obj) -> Obj | None:
    """The owner reference with ``controller: true``; an object has at most one."""
    for ref in owner_references(obj):
        if ref.get("controller"):
            return ref
    return None


def owner_reference(owner: Obj, *, controller: bool = True, block: bool = True) -> Obj:
    """A reference to ``owner`` for a dependent's ``metadata.ownerReferences``."""
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": meta(owner).get("name", ""),
        "uid": uid_of(owner),
        "controller": controller,
        "blockOwnerDeletion": block,
    }


class Claim(enum.Enum):
    """What a controller should do about one candidate dependent."""

    KEEP = "keep"  # ours, and still matches
    ADOPT = "adopt"  # an orphan that matches: take it
    RELEASE = "release"  # ours, but no longer matches: let it go
    IGNORE = "ignore"  # someone else's, or not for us


def claim(obj: Obj, owner: Obj, selector: LabelSelector) -> Claim:
    """Kubernetes' ControllerRefManager decision for one object.

    An owner that is being deleted neither adopts nor releases: its
    dependents are the garbage collector's business by then.
    """
    ref = controller_ref(obj)
    matches = selector.matches(labels_of(obj))
    owner_deleting = is_terminating(owner)
    if ref is not None:
        if ref.get("uid") != uid_of(owner):
            return Claim.IGNORE
        if matches:
            return Claim.KEEP
        return Claim.IGNORE if owner_deleting else Claim.RELEASE
    if owner_deleting or not matches or is_terminating(obj):
        return Claim.IGNORE
    return Claim.ADOPT


def adopt_patch(owner: Obj, obj: Obj) -> Obj:
    """A strategic merge patch adding ``owner`` as controller; the UID makes it a precondition."""
    return {"metadata": {"ownerReferences": [owner_reference(owner)], "uid": uid_of(obj)}}


def release_patch(owner_uid: str, obj: Obj) -> Obj:
    """A strategic merge patch removing the reference to ``owner_uid`` and nothing else."""
    return {
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
            "uid": uid_of(obj),
        }
    }


PATCH_TYPE = "strategic"
"""The patch type the patches above are written in."""


# --- pods from templates ------------------------------------------------------------------


def generate_name_for(owner_name: str) -> str:
    base = f"{owner_name}-"
    return base if len(base) <= _MAX_GENERATE_NAME_BASE else base[:_MAX_GENERATE_NAME_BASE]


def pod_from_template(template: Obj, owner: Obj) -> Obj:
    """A new pod for ``owner``: the template's labels, annotations and spec, a generated
    name, and a controller reference."""
    template_meta = meta(template)
    metadata: Obj = {
        "generateName": generate_name_for(name_of(owner)),
        "namespace": meta(owner).get("namespace"),
        "ownerReferences": [owner_reference(owner)],
    }
    for field in ("labels", "annotations", "finalizers"):
        if template_meta.get(field):
            metadata[field] = copy.deepcopy(template_meta[field])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(spec(template)),
    }
