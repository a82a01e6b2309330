"""Admission: the last checks on a write, after validation and before storage.

Three plugins, in Kubernetes' order: NodeRestriction (a node writes only its
own Node and Lease; the node authorizer cannot see names in a create), RBAC
escalation prevention (nobody grants through a Role or binding more than
they hold), and PodSecurity (the namespace's level, on pods and pod
templates). Writes the server makes itself, with no request behind them,
pass the first two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controlplane.admission import podsecurity
from controlplane.admission.podsecurity import PodSecurityConfig
from controlplane.apiserver import requestcontext
from controlplane.auth.attributes import User
from controlplane.auth.node import admit_node_write
from controlplane.storage.watchcache import WatchCache
from corral.api.errors import ApiError
from corral.api.resources import ResourceType

Obj = dict[str, Any]
_POD_KINDS = frozenset(("Pod", "ReplicationController", "ReplicaSet", "Deployment"))
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
            refusal = admit_node_write(attrs, obj)
            if refusal is not None:
                raise refusal
            if rt.kind in _RBAC_KINDS and self.rbac_write_check is not None:
                refusal = self.rbac_write_check(attrs.user, rt.kind, obj)
                if refusal is not None:
                    raise refusal
        if rt.kind in _POD_KINDS:
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
