"""Which PersistentVolume may serve which claim, and on which node: the rules every party shares.

The controller manager's binder, the scheduler's VolumeBinding plugin and
the node agent each decide something about volumes and claims; they must
decide it the same way, so the rules live here, over plain JSON objects:

- a volume *fits* a claim when it has the claim's class, at least the
  requested storage, every requested access mode, the same volume mode,
  and the labels the claim's selector asks for (Kubernetes'
  ``FindMatchingVolume``);
- a volume's node affinity *admits* a node when one of its required terms
  matches the node's labels (and ``metadata.name`` field).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from corral.api.labels import SelectorError, selector_from_dict
from corral.api.quantity import QuantityError, parse_quantity
from corral.objects import ObjView, labels_of, meta, name_of, namespace_of, spec, status

STORAGE = "storage"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def storage_of(resources: ObjView | None) -> Decimal | None:
    raw = (resources or {}).get(STORAGE)
    if raw is None:
        return None
    try:
        return parse_quantity(raw)
    except QuantityError:
        return None


def requested_storage(claim: ObjView) -> Decimal:
    requests = (spec(claim).get("resources") or {}).get("requests")
    return storage_of(requests) or Decimal(0)


def capacity_of(volume: ObjView) -> Decimal:
    return storage_of(spec(volume).get("capacity")) or Decimal(0)


def class_of(obj: ObjView) -> str:
    """The storage class a volume or claim names; ``""`` for none."""
    return str(spec(obj).get("storageClassName") or "")


def claim_key(claim: ObjView) -> tuple[str, str]:
    return namespace_of(claim), name_of(claim)


def claim_ref_names(volume: ObjView, claim: ObjView) -> bool:
    """Whether the volume's claimRef names this claim (by namespace, name and, if set, uid)."""
    ref = spec(volume).get("claimRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return False
    namespace, name = claim_key(claim)
    if (ref.get("namespace"), ref.get("name")) != (namespace, name):
        return False
    uid = ref.get("uid")
    return not uid or uid == meta(claim).get("uid")


def is_available(volume: ObjView) -> bool:
    """Free to bind: no claim holds it, and it is not on its way out."""
    if meta(volume).get("deletionTimestamp"):
        return False
    ref = spec(volume).get("claimRef")
    return not (isinstance(ref, Mapping) and ref.get("name"))


def fits(volume: ObjView, claim: ObjView) -> bool:
    """Whether ``volume`` can serve ``claim``: class, size, access modes, mode and selector."""
    volume_spec, claim_spec = spec(volume), spec(claim)
    if class_of(volume) != class_of(claim):
        return False
    if capacity_of(volume) < requested_storage(claim):
        return False
    offered = set(volume_spec.get("accessModes") or ())
    if not set(claim_spec.get("accessModes") or ()) <= offered:
        return False
    if (volume_spec.get("volumeMode") or "Filesystem") != (
        claim_spec.get("volumeMode") or "Filesystem"
    ):
        return False
    selector = claim_spec.get("selector")
    if selector:
        try:
            wanted = selector_from_dict(selector)
        except SelectorError:
            return False
        if not wanted.matches(labels_of(volume)):
            return False
    return True


def best_fit(
    volumes: Iterable[ObjView],
    claim: ObjView,
    *,
    node: str | None = None,
    labels: ObjView | None = None,
) -> ObjView | None:
    """The volume to bind ``claim`` to: one already reserved for it, else the smallest that fits.

    With ``node``, only volumes whose node affinity admits that node count
    (the claim waits for its first consumer and the pod is going there).
    """
    reserved: ObjView | None = None
    smallest: ObjView | None = None
    for volume in volumes:
        if meta(volume).get("deletionTimestamp"):
            continue
        if node is not None and not admits(volume, node, labels or {}):
            continue
        if claim_ref_names(volume, claim):
            if fits(volume, claim) or spec(claim).get("volumeName") == meta(volume).get("name"):
                reserved = volume
                break
            continue
        if not is_available(volume) or not fits(volume, claim):
            continue
        if smallest is None or capacity_of(volume) < capacity_of(smallest):
            smallest = volume
    return reserved or smallest


# --- node affinity ------------------------------------------------------------------------


def _requirement_holds(requirement: ObjView, values_of: Mapping[str, str]) -> bool:
    key = str(requirement.get("key") or "")
    operator = requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or ()]
    present = key in values_of
    value = values_of.get(key, "")
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def term_matches(term: ObjView, node: str, labels: Mapping[str, str]) -> bool:
    expressions = list(term.get("matchExpressions") or ())
    fields = list(term.get("matchFields") or ())
    if not expressions and not fields:
        return False
    if not all(_requirement_holds(r, labels) for r in expressions):
        return False
    return all(
        r.get("key") == "metadata.name" and _requirement_holds(r, {"metadata.name": node})
        for r in fields
    )


def admits(volume: ObjView, node: str, labels: Mapping[str, str]) -> bool:
    """Whether the volume may be used on ``node``; one without node affinity is usable anywhere."""
    affinity = spec(volume).get("nodeAffinity")
    if not isinstance(affinity, Mapping) or not affinity.get("required"):
        return True
    terms = affinity["required"].get("nodeSelectorTerms") or ()
    return any(term_matches(t, node, labels) for t in terms)


def pinned_to(node: str) -> ObjView:
    """The node affinity of a volume that lives on ``node``'s disk."""
    return {
        "required": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}
            ]
        }
    }


def pinned_node(volume: ObjView) -> str | None:
    """The node a provisioned local volume is pinned to, if its affinity is one that pins."""
    affinity = spec(volume).get("nodeAffinity")
    if not isinstance(affinity, Mapping):
        return None
    terms = (affinity.get("required") or {}).get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    requirements = [*(terms[0].get("matchExpressions") or ()), *(terms[0].get("matchFields") or ())]
    if len(requirements) != 1:
        return None
    only = requirements[0]
    values = only.get("values") or []
    if only.get("operator") != "In" or len(values) != 1:
        return None
    if only.get("key") not in (HOSTNAME_LABEL, "metadata.name"):
        return None
    return str(values[0])


# --- pods and their claims ----------------------------------------------------------------


def claim_names(pod: ObjView) -> list[str]:
    """The claims a pod's volumes name, in order, without repeats."""
    names: list[str] = []
    for volume in spec(pod).get("volumes") or ():
        source = volume.get("persistentVolumeClaim") if isinstance(volume, Mapping) else None
        name = source.get("claimName") if isinstance(source, Mapping) else None
        if name and name not in names:
            names.append(str(name))
    return names


def pod_is_terminated(pod: ObjView) -> bool:
    phase = status(pod).get("phase")
    return phase in ("Succeeded", "Failed")
