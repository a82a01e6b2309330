"""NodeRestriction: what a node may write to the objects it is allowed to reach.

The node authorizer (``controlplane/auth/node.py``) decides *which* objects a
node agent may touch; it cannot see a create's name, nor what a write
changes. This is Kubernetes' NodeRestriction admission plugin over corral's
kinds, for a node ``N``:

- its own Node only (create, update, patch, delete; ``/status`` too). It may
  not set, change or remove a label outside the kubelet's allow-list (so no
  ``node-role.kubernetes.io/*`` and nothing under
  ``[*.]node-restriction.kubernetes.io/``), nor change its taints: either
  would let it steer workloads meant for other machines onto itself. corral
  also keeps the rest of the spec away from it (pod CIDRs are the API
  server's to allocate, ``providerID`` and ``unschedulable`` are the
  administrator's), and fixes ``status.addresses`` once set: other nodes
  route pod traffic to the InternalIP, so a node that could rewrite it could
  draw another node's traffic;
- pods: only mirror pods may be created (bound to ``N``, owned by its Node,
  referencing no Secret, ConfigMap, ServiceAccount or claim), pods are never
  updated except their ``/status``, and only pods bound to ``N`` may have
  their status written, be deleted or be evicted;
- Leases only in ``kube-node-lease`` and only the one named ``N``;
- Events only about ``N`` itself or a pod bound to it.

Everything here is pure: the caller says who asks and hands in the object
before and after the write, plus two cache lookups. The API server's
admission chain (REST) and the agent service (gRPC, whose writes never pass
through a REST request) both ask this module, so the two paths cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from corral.api import errors
from corral.api.errors import ApiError, Cause
from corral.api.podrefs import referenced
from corral.objects import ObjView, meta

Operation = Literal["create", "update", "delete"]
Lookup = Callable[[str, str], ObjView | None]
"""(namespace, name) -> the object, or None; the namespace is "" for Nodes."""

NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

# Label namespaces, as Kubernetes names them (k8s.io/api/core/v1 well_known_labels.go).
NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
KUBERNETES_LABEL_NAMESPACES = ("kubernetes.io", "k8s.io")
# What a kubelet may set on its own Node (k8s.io/kubelet/pkg/apis/well_known_labels.go).
KUBELET_LABELS = frozenset(
    (
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    )
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")

# Node spec fields a node may not change once its Node exists (taints are
# reported on their own, in Kubernetes' words).
_ADMIN_SPEC_FIELDS = ("podCIDR", "podCIDRs", "providerID", "unschedulable")
_SERVER_SPEC_FIELDS = ("podCIDR", "podCIDRs")


# --- labels ------------------------------------------------------------------------------


def label_namespace(key: str) -> str:
    """``node-role.kubernetes.io`` for ``node-role.kubernetes.io/master``; "" for no prefix."""
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _within(namespace: str, domain: str) -> bool:
    """The domain itself or any subdomain of it."""
    return namespace == domain or namespace.endswith("." + domain)


def is_kubernetes_label(key: str) -> bool:
    namespace = label_namespace(key)
    return any(_within(namespace, domain) for domain in KUBERNETES_LABEL_NAMESPACES)


def is_kubelet_label(key: str) -> bool:
    if key in KUBELET_LABELS:
        return True
    namespace = label_namespace(key)
    return any(_within(namespace, domain) for domain in KUBELET_LABEL_NAMESPACES)


def node_may_set_label(key: str) -> bool:
    """Whether a node may add, change or remove this label on its own Node.

    Labels outside Kubernetes' namespaces are free (``disk=ssd``); inside
    them only the kubelet's own are; ``node-restriction.kubernetes.io`` is
    reserved for administrators, so workloads can trust it.
    """
    if _within(label_namespace(key), NODE_RESTRICTION_LABEL_NAMESPACE):
        return False
    return not is_kubernetes_label(key) or is_kubelet_label(key)


def modified_labels(new: Mapping[str, str] | None, old: Mapping[str, str] | None) -> set[str]:
    """Keys added, removed or given another value."""
    new, old = new or {}, old or {}
    return {k for k in new.keys() | old.keys() if k not in new or k not in old or new[k] != old[k]}


def forbidden_labels(new: Mapping[str, str] | None, old: Mapping[str, str] | None) -> list[str]:
    """The modified labels a node may not touch, sorted."""
    return sorted(k for k in modified_labels(new, old) if not node_may_set_label(k))


# --- the write being admitted --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeWrite:
    """One write by node ``node``: the object as it would be stored and as it is stored now."""

    node: str
    operation: Operation
    resource: str
    group: str = ""
    subresource: str = ""
    obj: ObjView | None = None  # None on delete
    old: ObjView | None = None  # None on create

    @property
    def meta(self) -> ObjView:
        source = self.obj if self.obj is not None else self.old
        found = (source or {}).get("metadata")
        return found if isinstance(found, Mapping) else {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace") or "")

    def forbidden(self, reason: str, causes: Iterable[Cause] = ()) -> ApiError:
        """Kubernetes' ``admission.NewForbidden``: ``nodes "b" is forbidden: <reason>``."""
        qualified = f"{self.resource}.{self.group}" if self.group else self.resource
        subject = f'{qualified} "{self.name}"' if self.name else qualified
        refusal = errors.forbidden(
            f"{subject} is forbidden: {reason}", self.resource, self.name, self.group
        )
        refusal.causes.extend(causes)
        return refusal


@dataclass(frozen=True, slots=True)
class Lookups:
    """What admission reads besides the write itself (the API server's watch cache)."""

    pod: Lookup
    node: Lookup


def _no_lookup(namespace: str, name: str) -> ObjView | None:
    return None


NO_LOOKUPS = Lookups(_no_lookup, _no_lookup)


def admit(write: NodeWrite, lookups: Lookups = NO_LOOKUPS) -> ApiError | None:
    """None to let the node's write through; otherwise the 403 that refuses it."""
    group, resource = write.group, write.resource
    if group == "" and resource == "nodes":
        return _node(write)
    if group == "" and resource == "pods":
        return _pod(write, lookups)
    if group == "coordination.k8s.io" and resource == "leases":
        return _lease(write)
    if resource == "events" and group in ("", "events.k8s.io"):
        return _event(write, lookups)
    return None


def _spec(obj: ObjView | None) -> ObjView:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _status(obj: ObjView | None) -> ObjView:
    status = (obj or {}).get("status")
    return status if isinstance(status, Mapping) else {}


def _labels(obj: ObjView | None) -> Mapping[str, str]:
    meta = (obj or {}).get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def _bound_to(obj: ObjView | None, node: str) -> bool:
    return bool(obj) and _spec(obj).get("nodeName") == node


def _cause(field: str, message: str) -> Cause:
    return Cause("FieldValueForbidden", message, field)


def _empty_equal(a: Any, b: Any) -> bool:
    """Kubernetes' semantic equality: an absent field, null, [] and false are all "unset"."""
    return (a or None) == (b or None)


# --- Node --------------------------------------------------------------------------------


def _node(write: NodeWrite) -> ApiError | None:
    node = write.node
    if write.name != node:
        reason = f'node "{node}" is not allowed to modify node "{write.name}"'
        return write.forbidden(reason, [_cause("metadata.name", reason)])
    if write.operation == "delete":
        return None
    new, old = write.obj, write.old
    labels = forbidden_labels(_labels(new), _labels(old))
    if write.operation == "create":
        if labels:
            return _label_refusal(
                write, f'node "{node}" is not allowed to set the following labels', labels
            )
        for field in _SERVER_SPEC_FIELDS:
            if _spec(new).get(field):
                reason = (
                    f'node "{node}" is not allowed to set spec.{field}: '
                    "the API server allocates pod CIDRs"
                )
                return write.forbidden(reason, [_cause(f"spec.{field}", reason)])
        return None
    if not _empty_equal(_spec(new).get("taints"), _spec(old).get("taints")):
        reason = f'node "{node}" is not allowed to modify taints'
        return write.forbidden(reason, [_cause("spec.taints", reason)])
    if labels:
        return _label_refusal(write, f'node "{node}" is not allowed to modify labels', labels)
    for field in _ADMIN_SPEC_FIELDS:
        if not _empty_equal(_spec(new).get(field), _spec(old).get(field)):
            reason = f'node "{node}" is not allowed to modify spec.{field}'
            return write.forbidden(reason, [_cause(f"spec.{field}", reason)])
    old_addresses = _status(old).get("addresses")
    if old_addresses and not _empty_equal(_status(new).get("addresses"), old_addresses):
        reason = (
            f'node "{node}" is not allowed to modify status.addresses once they are set; '
            "an administrator may clear them or delete the Node to re-register it"
        )
        return write.forbidden(reason, [_cause("status.addresses", reason)])
    return None


def _label_refusal(write: NodeWrite, prefix: str, labels: list[str]) -> ApiError:
    causes = [
        _cause(f"metadata.labels[{key}]", f'label "{key}" may be set only by an administrator')
        for key in labels
    ]
    return write.forbidden(f"{prefix}: {', '.join(labels)}", causes)


# --- Pod ---------------------------------------------------------------------------------


def _pod(write: NodeWrite, lookups: Lookups) -> ApiError | None:
    node, operation, sub = write.node, write.operation, write.subresource
    if sub == "":
        if operation == "create":
            return _mirror_pod(write, lookups)
        if operation == "delete":
            if _bound_to(write.old, node):
                return None
            reason = f'node "{node}" can only delete pods with spec.nodeName set to itself'
            return write.forbidden(reason, [_cause("spec.nodeName", reason)])
        return write.forbidden(
            f'unexpected operation "{operation}", node "{node}" can only create and delete '
            "mirror pods"
        )
    if sub == "status":
        if operation != "update":
            return write.forbidden(f'unexpected operation "{operation}"')
        if not _bound_to(write.old, node):
            reason = (
                f'node "{node}" can only update pod status for pods with spec.nodeName set to '
                "itself"
            )
            return write.forbidden(reason, [_cause("spec.nodeName", reason)])
        if dict(_labels(write.obj)) != dict(_labels(write.old)):
            reason = f'node "{node}" cannot update labels through pod status'
            return write.forbidden(reason, [_cause("metadata.labels", reason)])
        return None
    if sub == "eviction":
        if operation == "delete" and _bound_to(write.old, node):
            return None
        reason = f"node {node} can only evict pods with spec.nodeName set to itself"
        return write.forbidden(reason, [_cause("spec.nodeName", reason)])
    return write.forbidden(
        f"unexpected pod subresource \"{sub}\", only 'status' and 'eviction' are allowed"
    )


def _mirror_pod(write: NodeWrite, lookups: Lookups) -> ApiError | None:
    """A node creates only mirrors of its static pods, tied to itself and to nothing else."""
    node, pod = write.node, write.obj or {}
    annotations = write.meta.get("annotations") or {}
    if MIRROR_POD_ANNOTATION not in annotations:
        reason = (
            f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" can only '
            "create mirror pods"
        )
        return write.forbidden(reason, [_cause("metadata.annotations", reason)])
    if _spec(pod).get("nodeName") != node:
        reason = f'node "{node}" can only create pods with spec.nodeName set to itself'
        return write.forbidden(reason, [_cause("spec.nodeName", reason)])
    owners = list(write.meta.get("ownerReferences") or [])
    owner: ObjView = owners[0] if len(owners) == 1 and isinstance(owners[0], Mapping) else {}
    if (owner.get("apiVersion"), owner.get("kind"), owner.get("name")) != ("v1", "Node", node):
        reason = f'node "{node}" can only create pods with a single owner reference set to itself'
        return write.forbidden(reason, [_cause("metadata.ownerReferences", reason)])
    if owner.get("controller") is not True:
        reason = (
            f'node "{node}" can only create pods with a controller owner reference set to itself'
        )
        return write.forbidden(reason, [_cause("metadata.ownerReferences", reason)])
    if owner.get("blockOwnerDeletion") is True:
        reason = f'node "{node}" must not set blockOwnerDeletion on an owner reference'
        return write.forbidden(reason, [_cause("metadata.ownerReferences", reason)])
    # The owner must be this incarnation of the Node, not one deleted since.
    uid = meta(lookups.node("", node) or {}).get("uid")
    if not uid or owner.get("uid") != uid:
        reason = f"node {node} UID mismatch: expected {owner.get('uid')} got {uid}"
        return write.forbidden(reason, [_cause("metadata.ownerReferences", reason)])
    if _spec(pod).get("serviceAccountName"):
        reason = f'node "{node}" can not create pods that reference a service account'
        return write.forbidden(reason, [_cause("spec.serviceAccountName", reason)])
    kinds = {kind for kind, _ in referenced(dict(pod))}
    for kind, plural in (("Secret", "secrets"), ("ConfigMap", "configmaps")):
        if kind in kinds or _projects(pod, kind):
            reason = f'node "{node}" can not create pods that reference {plural}'
            return write.forbidden(reason, [_cause("spec", reason)])
    for volume in _spec(pod).get("volumes") or ():
        if isinstance(volume, Mapping) and volume.get("persistentVolumeClaim") is not None:
            reason = f'node "{node}" can not create pods that reference persistentvolumeclaims'
            return write.forbidden(reason, [_cause("spec.volumes", reason)])
    return None


def _projects(pod: ObjView, kind: str) -> bool:
    """Whether a projected volume draws on a Secret or ConfigMap (podrefs sees only plain ones)."""
    source_key = "secret" if kind == "Secret" else "configMap"
    for volume in _spec(pod).get("volumes") or ():
        projected = volume.get("projected") if isinstance(volume, Mapping) else None
        if not isinstance(projected, Mapping):
            continue
        for source in projected.get("sources") or ():
            if isinstance(source, Mapping) and source.get(source_key) is not None:
                return True
    return False


# --- Lease -------------------------------------------------------------------------------


def _lease(write: NodeWrite) -> ApiError | None:
    if write.namespace != NODE_LEASE_NAMESPACE:
        reason = f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
        return write.forbidden(reason, [_cause("metadata.namespace", reason)])
    if write.name != write.node:
        reason = "can only access node lease with the same name as the requesting node"
        return write.forbidden(reason, [_cause("metadata.name", reason)])
    return None


# --- Event -------------------------------------------------------------------------------


def about_itself(node: str, event: ObjView, pod_lookup: Lookup) -> bool:
    """Whether an Event is about the node or one of the pods bound to it."""
    involved = event.get("involvedObject") or event.get("regarding") or {}
    if not isinstance(involved, Mapping):
        return False
    kind, name = involved.get("kind"), str(involved.get("name") or "")
    if kind == "Node":
        return name == node
    if kind != "Pod":
        return False
    meta = event.get("metadata") or {}
    namespace = str(involved.get("namespace") or meta.get("namespace") or "")
    return _bound_to(pod_lookup(namespace, name), node)


def _event(write: NodeWrite, lookups: Lookups) -> ApiError | None:
    if write.operation == "delete":
        return None
    field = "regarding" if write.group == "events.k8s.io" else "involvedObject"
    reason = f'node "{write.node}" can only record events about itself and pods bound to it'
    for event in (write.old, write.obj):
        if event is not None and not about_itself(write.node, event, lookups.pod):
            return write.forbidden(reason, [_cause(field, reason)])
    return None
