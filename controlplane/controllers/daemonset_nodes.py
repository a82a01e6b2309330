"""Which nodes a DaemonSet's pod belongs on, and the pod it puts there.

As Kubernetes 1.32's daemon controller decides it (``NodeShouldRunDaemonPod``):
the pod the set would create for a node, default tolerations included, must
fit the node's name, its ``nodeSelector`` and required node affinity, and
tolerate the node's NoSchedule and NoExecute taints. A pod that no longer
fits for taints alone may stay while it tolerates every NoExecute taint.

The pod is not bound here: like Kubernetes, the controller pins it to its
node with a required node affinity on ``metadata.name`` (``matchFields``)
and leaves the binding to the scheduler, whose plugins (resources, ports,
...) then apply to daemon pods as to any other.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from controlplane.controllers import podutil
from controlplane.controllers.nodelifecycle import tolerates
from controlplane.controllers.statefulset_identity import REVISION_LABEL
from corral.objects import Obj, labels_of, name_of, spec
from corral.volumebinding import term_matches

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"

# util.AddOrUpdateDaemonPodTolerations: daemons run through node trouble
# that would evict or keep off any other pod.
_DEFAULT_TOLERATIONS: tuple[tuple[str, str], ...] = (
    (NOT_READY, "NoExecute"),
    (UNREACHABLE, "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
# Only for host-network pods, which need no pod network to start.
_HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def default_tolerations(pod_spec: Mapping[str, Any]) -> list[Obj]:
    """The pod's tolerations with the daemon defaults added (or replacing same key+effect)."""
    wanted = list(_DEFAULT_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        wanted.append(_HOST_NETWORK_TOLERATION)
    out = [copy.deepcopy(t) for t in pod_spec.get("tolerations") or ()]
    for key, effect in wanted:
        added = {"key": key, "operator": "Exists", "effect": effect}
        same = [i for i, t in enumerate(out) if t.get("key") == key and t.get("effect") == effect]
        if same:
            out[same[0]] = added
        else:
            out.append(added)
    return out


def pinned_affinity(affinity: Mapping[str, Any] | None, node: str) -> Obj:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: the required terms become one, on the name.

    The set has already checked the node against the template's own terms,
    so they need not be kept; preferred terms and pod (anti-)affinity stay.
    """
    out: Obj = copy.deepcopy(dict(affinity or {}))
    node_affinity = out.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }
    return out


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: its ``nodeName``, or the name its affinity pins it to."""
    bound = spec(pod).get("nodeName")
    if bound:
        return str(bound)
    required = ((spec(pod).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or ():
        for field in term.get("matchFields") or ():
            values = field.get("values") or []
            pinned = field.get("key") == "metadata.name" and field.get("operator") == "In"
            if pinned and len(values) == 1:
                return str(values[0])
    return None


def _fits_affinity(pod_spec: Mapping[str, Any], node: Obj) -> bool:
    labels = labels_of(node)
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return True
    terms = required.get("nodeSelectorTerms") or ()
    return any(term_matches(t, name_of(node), labels) for t in terms)


def _untolerated(taints: Sequence[Obj], tolerations: Sequence[Obj], effects: set[str]) -> bool:
    return any(
        t.get("effect") in effects and not any(tolerates(tol, t) for tol in tolerations)
        for t in taints
    )


def should_run(template: Obj, node: Obj) -> tuple[bool, bool]:
    """(should a new daemon pod go on ``node``, may one already there keep running)."""
    pod_spec = spec(template)
    wanted_node = pod_spec.get("nodeName")
    if wanted_node and wanted_node != name_of(node):
        return False, False
    if not _fits_affinity(pod_spec, node):
        return False, False
    tolerations = default_tolerations(pod_spec)
    taints = list(spec(node).get("taints") or ())
    if _untolerated(taints, tolerations, {"NoSchedule", "NoExecute"}):
        return False, not _untolerated(taints, tolerations, {"NoExecute"})
    return True, True


def pod_for(ds: Obj, template: Obj, node: str, revision_hash: str) -> Obj:
    """The daemon pod for ``node``: the template, the revision's hash, tolerations, the pin."""
    pod = podutil.pod_from_template(template, ds)
    pod["metadata"].setdefault("labels", {})[REVISION_LABEL] = revision_hash
    pod_spec = pod["spec"]
    pod_spec["tolerations"] = default_tolerations(pod_spec)
    pod_spec["affinity"] = pinned_affinity(pod_spec.get("affinity"), node)
    return pod
