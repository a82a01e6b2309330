"""A StatefulSet pod's identity: its ordinal, name, DNS name, labels and claims.

Pure functions over wire-form objects. Pod ``web-2`` of StatefulSet ``web``
is ordinal 2 for as long as the set exists: it keeps its name, its
``hostname`` (``web-2``), its ``subdomain`` (the set's ``serviceName``, so
that ``web-2.web.NS.svc.cluster.local`` resolves to it), and its claims
(``data-web-2`` for a claim template ``data``), however often it is
recreated and wherever it runs.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from controlplane.controllers import podutil
from corral.objects import Obj, labels_of, meta, name_of, spec, uid_of

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"

_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


def replicas(sts: Obj) -> int:
    return int(spec(sts).get("replicas", 1))


def ordinal_start(sts: Obj) -> int:
    return int((spec(sts).get("ordinals") or {}).get("start") or 0)


def ordinals(sts: Obj) -> range:
    """The ordinals the set should have, lowest first."""
    start = ordinal_start(sts)
    return range(start, start + replicas(sts))


def parse_ordinal(pod_name: str) -> tuple[str, int] | None:
    """``web-2`` → ("web", 2); None for a name no StatefulSet would give."""
    match = _ORDINAL.match(pod_name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def ordinal_of(pod: Obj) -> int | None:
    parsed = parse_ordinal(name_of(pod))
    return None if parsed is None else parsed[1]


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{name_of(sts)}-{ordinal}"


def is_member(sts: Obj, pod: Obj) -> bool:
    """Whether the pod's name makes it one of this set's ordinals (Kubernetes' isMemberOf)."""
    parsed = parse_ordinal(name_of(pod))
    return parsed is not None and parsed[0] == name_of(sts)


def claim_templates(sts: Obj) -> list[Obj]:
    return [t for t in spec(sts).get("volumeClaimTemplates") or [] if isinstance(t, dict)]


def claim_name(template: Obj, sts: Obj, ordinal: int) -> str:
    return f"{name_of(template)}-{pod_name(sts, ordinal)}"


def retention(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled): what happens to claims; Retain unless set otherwise."""
    policy = spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted") or "Retain"), str(policy.get("whenScaled") or "Retain")


def _selector_labels(sts: Obj) -> dict[str, str]:
    labels: dict[str, str] = dict((spec(sts).get("selector") or {}).get("matchLabels") or {})
    return labels


def claim_for(sts: Obj, template: Obj, ordinal: int) -> Obj:
    """The PersistentVolumeClaim for one template and ordinal, as the set creates it.

    It carries the set's selector labels (Kubernetes does the same, so that
    ``kubectl get pvc -l app=db`` finds them). Under the default Retain
    policy it has no owner, so it outlives its pod and the set: the data of
    ``db-1`` waits for the next ``db-1``.
    """
    template_meta = meta(template)
    labels = {**(template_meta.get("labels") or {}), **_selector_labels(sts)}
    metadata: Obj = {
        "name": claim_name(template, sts, ordinal),
        "namespace": meta(sts).get("namespace"),
        "labels": labels,
    }
    if template_meta.get("annotations"):
        metadata["annotations"] = copy.deepcopy(template_meta["annotations"])
    when_deleted, _ = retention(sts)
    if when_deleted == "Delete":
        metadata["ownerReferences"] = [podutil.owner_reference(sts, controller=True)]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": copy.deepcopy(spec(template)),
    }


def pod_for(sts: Obj, template: Obj, revision_name: str, ordinal: int) -> Obj:
    """The pod for ``ordinal`` built from ``template``, of the revision named ``revision_name``."""
    pod = podutil.pod_from_template(template, sts)
    metadata = pod["metadata"]
    metadata.pop("generateName", None)
    metadata["name"] = pod_name(sts, ordinal)
    set_identity(sts, pod, ordinal)
    set_storage(sts, pod, ordinal)
    metadata.setdefault("labels", {})[REVISION_LABEL] = revision_name
    return pod


def set_identity(sts: Obj, pod: Obj, ordinal: int) -> None:
    """Labels, hostname and subdomain that make the pod ordinal ``ordinal`` (in place)."""
    name = pod_name(sts, ordinal)
    labels = pod.setdefault("metadata", {}).setdefault("labels", {})
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(ordinal)
    pod_spec = pod.setdefault("spec", {})
    pod_spec["hostname"] = name
    service = spec(sts).get("serviceName")
    if service:
        pod_spec["subdomain"] = service
    else:
        pod_spec.pop("subdomain", None)


def identity_matches(sts: Obj, pod: Obj) -> bool:
    ordinal = ordinal_of(pod)
    if ordinal is None or not is_member(sts, pod):
        return False
    labels = labels_of(pod)
    pod_spec = spec(pod)
    return (
        labels.get(POD_NAME_LABEL) == name_of(pod)
        and labels.get(POD_INDEX_LABEL) == str(ordinal)
        and pod_spec.get("hostname") == name_of(pod)
        and (pod_spec.get("subdomain") or None) == (spec(sts).get("serviceName") or None)
    )


def identity_patch(sts: Obj, pod: Obj) -> Obj:
    """A strategic merge patch restoring the identity labels of a pod someone relabelled.

    Only labels: a pod's hostname and subdomain cannot change once it exists.
    """
    name = name_of(pod)
    return {
        "metadata": {
            "uid": uid_of(pod),
            "labels": {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal_of(pod))},
        }
    }


def set_storage(sts: Obj, pod: Obj, ordinal: int) -> None:
    """Point the pod's volumes for the claim templates at this ordinal's claims (in place)."""
    templates = claim_templates(sts)
    if not templates:
        return
    pod_spec = pod.setdefault("spec", {})
    claimed = {name_of(t) for t in templates}
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claimed]
    for template in templates:
        volumes.append(
            {
                "name": name_of(template),
                "persistentVolumeClaim": {"claimName": claim_name(template, sts, ordinal)},
            }
        )
    pod_spec["volumes"] = volumes


def revision_of(pod: Obj) -> str:
    return labels_of(pod).get(REVISION_LABEL, "")


def is_running_and_ready(pod: Obj) -> bool:
    return podutil.phase(pod) == "Running" and podutil.is_ready(pod)


def is_healthy(pod: Obj, min_ready_seconds: int, now: Any) -> bool:
    """Running, ready for ``minReadySeconds``, and not on its way out."""
    return (
        podutil.phase(pod) == "Running"
        and podutil.is_available(pod, min_ready_seconds, now)
        and not podutil.is_terminating(pod)
    )
