"""Admission: the last checks on a write, after validation and before storage.

Three plugins, in Kubernetes' order: NodeRestriction (what a node may
change on its own Node, pods, Lease and Events; the node authorizer cannot
see names in a create, nor what a write changes), RBAC escalation
prevention (nobody grants through a Role or binding more than they hold),
and PodSecurity (the namespace's level, on pods and pod templates). Writes
the server makes itself, with no request behind them, pass the first two;
the agent service, whose writes are a node's without a REST request,
asks NodeRestriction itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controlplane.admission import noderestriction, podsecurity
from controlplane.admission.noderestriction import Lookups, NodeWrite, Operation
from controlplane.admission.podsecurity import PodSecurityConfig
from controlplane.apiserver import requestcontext
from controlplane.auth.attributes import RequestAttributes, User
from controlplane.auth.node import node_name
from controlplane.storage.watchcache import WatchCache
from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.objects import Obj

_POD_KINDS = frozenset(
    (
        "Pod",
        "ReplicationController",
        "ReplicaSet",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
    )
)
_RBAC_KINDS = frozenset(("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"))

# (user, kind, object) -> the refusal, or None to let the write through.
RbacWriteCheck = Callable[[User, str, Obj], ApiError | None]


class Admission:
    def __init__(
        self,
        cache: WatchCache,
        namespace_key: Any,
        pod_security: PodSecurityConfig | None = None,
        rbac_write_check: RbacWriteCheck | None = None,
    ) -> None:
        self.cache = cache
        self.rbac_write_check = rbac_write_check
        self.namespace_key = namespace_key
        self.pod_security = pod_security or PodSecurityConfig()
        self.lookups = cached_lookups(cache)

    def _namespace_labels(self, namespace: str | None) -> dict[str, str] | None:
        if not namespace:
            return None
        cached = self.cache.get("namespaces", self.namespace_key(namespace))
        if cached is None:
            return None
        labels: dict[str, str] = (cached.obj.get("metadata") or {}).get("labels") or {}
        return labels

    def admit(self, rt: ResourceType, obj: Obj, old: Obj | None, subresource: str | None) -> None:
        """Raise the ApiError that refuses the write, or return to let it through."""
        attrs = requestcontext.current()
        if attrs is not None:
            operation: Operation = "create" if old is None else "update"
            self._restrict_node(attrs, rt, operation, subresource or "", obj, old)
            builtin = rt.custom is None  # a custom kind named Role or Pod is not one
            if builtin and rt.kind in _RBAC_KINDS and self.rbac_write_check is not None:
                refusal = self.rbac_write_check(attrs.user, rt.kind, obj)
                if refusal is not None:
                    raise refusal
        if rt.kind in _POD_KINDS and rt.custom is None:
            namespace = (obj.get("metadata") or {}).get("namespace")
            refusal = podsecurity.admit(
                rt.kind,
                obj,
                self._namespace_labels(namespace),
                old=old,
                subresource=subresource or "",
                config=self.pod_security,
            )
            if refusal is not None:
                raise refusal

    def admit_delete(self, rt: ResourceType, obj: Obj) -> None:
        """Raise the ApiError that refuses deleting ``obj`` (as stored), or return."""
        attrs = requestcontext.current()
        if attrs is not None:
            # A delete's only subresource is an eviction, which deletes the pod.
            self._restrict_node(attrs, rt, "delete", attrs.subresource, None, obj)

    def _restrict_node(
        self,
        attrs: RequestAttributes,
        rt: ResourceType,
        operation: Operation,
        subresource: str,
        obj: Obj | None,
        old: Obj | None,
    ) -> None:
        node = node_name(attrs.user)
        if node is None:
            return
        write = NodeWrite(node, operation, rt.plural, rt.group, subresource, obj, old)
        refusal = noderestriction.admit(write, self.lookups)
        if refusal is not None:
            raise refusal


def cached_lookups(cache: WatchCache) -> Lookups:
    """NodeRestriction's reads, from memory, as the node authorizer reads."""

    def pod(namespace: str, name: str) -> Obj | None:
        found = cache.get("pods", f"{cache.prefix}pods/{namespace}/{name}")
        return found.obj if found is not None else None

    def node(_: str, name: str) -> Obj | None:
        found = cache.get("nodes", f"{cache.prefix}nodes/{name}")
        return found.obj if found is not None else None

    return Lookups(pod, node)
