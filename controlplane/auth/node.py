"""The node authorizer: a node agent may touch only its own Node and its own pods.

Kubernetes' rule, over corral's kinds. For a user ``system:node:<name>`` in
the group ``system:nodes``:

- pods: ``get`` a pod bound to it; ``list``/``watch`` only with the field
  selector ``spec.nodeName=<name>``; ``delete`` a pod bound to it (the agent
  confirms a graceful deletion that way); ``get``/``update``/``patch`` the
  ``status`` of a pod bound to it;
- Secrets and ConfigMaps: ``get`` (or a ``list``/``watch`` narrowed to one
  name) only when a pod bound to it references the object;
- ``create`` on ``serviceaccounts/token`` for a ServiceAccount a pod bound
  to it runs as (the token must be bound to such a pod: tokenrequest.py);
- its own Node: ``get``/``list``/``watch``, ``create``, ``update``/``patch``,
  and the same on ``nodes/status``;
- its own Lease in ``kube-node-lease``: ``get``, ``create``, ``update``,
  ``patch``;
- Events: ``create`` and ``patch``;
- Services and Endpoints: ``get``/``list``/``watch``, since the agent
  programs Service addresses (kube-proxy's job in Kubernetes) and builds
  service environment variables;
- everything else: no opinion, so RBAC decides (and nodes have no RBAC
  grants by default).

A ``create`` carries no name in its URL, and no authorizer sees what a
write changes, so NodeRestriction admission
(``controlplane/admission/noderestriction.py``) checks the rest, as in
Kubernetes: which Node or Lease a create names, which labels, taints and
addresses an update changes, that only mirror pods are created. The rules
are expressed over ``RequestAttributes`` and two lookups, so the agent's
gRPC service can ask the same questions without an HTTP request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from controlplane.auth.attributes import RequestAttributes, User, exact_field
from controlplane.auth.authorizer import Decision, allow, no_opinion
from controlplane.auth.serviceaccounttokens import pod_service_account
from corral.api.podrefs import references
from corral.objects import ObjView

PodLookup = Callable[[str, str], ObjView | None]
"""(namespace, name) -> the pod, or None."""
PodsOnNode = Callable[[str, str], Iterable[ObjView]]
"""(node, namespace) -> the pods in that namespace bound to the node.

Narrowed by namespace because a referenced object is always in its pod's
namespace, and the watch cache indexes pods by namespace.
"""

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"

_READ = frozenset(("get", "list", "watch"))
_WRITE = frozenset(("update", "patch"))
_REFERENCED_KINDS = {"secrets": "Secret", "configmaps": "ConfigMap"}


def node_name(user: User) -> str | None:
    """The node a user is, or None: both the name and the group must say so."""
    if not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return None
    name = user.name[len(NODE_USER_PREFIX) :]
    return name or None


def _node_of(pod: ObjView | None) -> str | None:
    if pod is None:
        return None
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return None
    node = spec.get("nodeName")
    return node if isinstance(node, str) else None


def _no_relationship(node: str) -> Decision:
    return no_opinion(f"no relationship found between node '{node}' and this object")


class NodeAuthorizer:
    def __init__(self, pod_lookup: PodLookup, pods_on_node: PodsOnNode) -> None:
        self.pod_lookup = pod_lookup
        self.pods_on_node = pods_on_node

    def authorize(self, attrs: RequestAttributes) -> Decision:
        node = node_name(attrs.user)
        if node is None or not attrs.resource_request:
            return no_opinion()
        group, resource = attrs.api_group, attrs.resource
        if group == "" and resource == "pods":
            return self._pod(node, attrs)
        if group == "" and resource in _REFERENCED_KINDS:
            return self._referenced(node, attrs, _REFERENCED_KINDS[resource])
        if group == "" and resource == "nodes":
            return self._own_node(node, attrs)
        if group == "" and resource == "serviceaccounts" and attrs.subresource == "token":
            return self._pod_service_account_token(node, attrs)
        if group == "coordination.k8s.io" and resource == "leases":
            return self._own_lease(node, attrs)
        if resource == "events" and group in ("", "events.k8s.io") and not attrs.subresource:
            if attrs.verb in ("create", "patch"):
                return allow("nodes may record events")
            return no_opinion()
        if group == "" and resource in ("services", "endpoints") and not attrs.subresource:
            if attrs.verb in _READ:
                return allow("nodes program Service addresses")
            return no_opinion()
        return no_opinion()

    def _bound(self, node: str, attrs: RequestAttributes) -> bool:
        return bool(attrs.name) and _node_of(self.pod_lookup(attrs.namespace, attrs.name)) == node

    def _pod(self, node: str, attrs: RequestAttributes) -> Decision:
        verb, sub = attrs.verb, attrs.subresource
        if sub == "status":
            if verb in ("get", *_WRITE) and self._bound(node, attrs):
                return allow()
            return _no_relationship(node)
        if sub:
            return no_opinion()
        if verb in ("list", "watch"):
            if exact_field(attrs.field_selector, "spec.nodeName") == node:
                return allow()
            return no_opinion("can only list/watch pods with spec.nodeName field selector")
        if verb in ("get", "delete"):
            if self._bound(node, attrs):
                return allow()
            return _no_relationship(node)
        return no_opinion()

    def _referenced(self, node: str, attrs: RequestAttributes, kind: str) -> Decision:
        if attrs.verb not in _READ or attrs.subresource:
            return no_opinion()
        if not attrs.name:
            # A list or watch of every Secret is never tied to one pod.
            return _no_relationship(node)
        for pod in self.pods_on_node(node, attrs.namespace):
            if _node_of(pod) == node and references(dict(pod), kind, attrs.name):
                return allow()
        return _no_relationship(node)

    def _pod_service_account_token(self, node: str, attrs: RequestAttributes) -> Decision:
        # Which pod the token is bound to is in the body: tokenrequest.py
        # checks that it is one of this node's.
        if attrs.verb != "create" or not attrs.name:
            return no_opinion()
        for pod in self.pods_on_node(node, attrs.namespace):
            if _node_of(pod) == node and pod_service_account(pod) == attrs.name:
                return allow()
        return _no_relationship(node)

    def _own_node(self, node: str, attrs: RequestAttributes) -> Decision:
        verb = attrs.verb
        if attrs.subresource not in ("", "status"):
            return no_opinion()
        if verb == "create" and not attrs.subresource:
            return allow()  # NodeRestriction checks the name
        if attrs.name != node:
            return _no_relationship(node)
        if verb in _READ or verb in _WRITE:
            return allow()
        return no_opinion()

    def _own_lease(self, node: str, attrs: RequestAttributes) -> Decision:
        if attrs.namespace != NODE_LEASE_NAMESPACE or attrs.subresource:
            return no_opinion()
        if attrs.verb == "create":
            return allow()  # NodeRestriction checks the name
        if attrs.verb in ("get", *_WRITE) and attrs.name == node:
            return allow()
        return _no_relationship(node)
