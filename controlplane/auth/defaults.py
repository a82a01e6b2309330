"""The RBAC objects every cluster starts with, and the start-up step that keeps them.

They mirror Kubernetes' bootstrap policy, cut to the kinds corral serves:

- ``cluster-admin`` (everything), bound to the group ``system:masters``;
- ``admin``, ``edit`` and ``view``, the user-facing roles, built by
  aggregation exactly as in Kubernetes (``view`` never includes Secrets or
  exec; ``edit`` adds writes, Secrets and exec; ``admin`` adds Roles and
  RoleBindings in a namespace), so a ClusterRole labelled
  ``rbac.authorization.k8s.io/aggregate-to-view: "true"`` extends ``view``;
- ``system:discovery`` and ``system:public-info-viewer`` for the discovery,
  OpenAPI, version and health paths (plus corral's ``/docs`` and ``/ui``);
- ``system:node-bootstrapper`` for agents joining with a bootstrap token;
- ``system:kube-scheduler`` and ``system:kube-controller-manager`` for the
  two control-plane clients, bound to users of those names.

Nodes get no RBAC grants: the node authorizer (node.py) decides for them.

``ensure_default_policy`` creates what is missing and, like Kubernetes'
reconciliation, adds back rules, labels and subjects that were removed from
an object unless it is annotated ``rbac.authorization.kubernetes.io/autoupdate:
"false"``. It never removes what an administrator added.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from corral.api.rbac import API_VERSION, GROUP
from corral.objects import Obj

log = logging.getLogger(__name__)

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
AGGREGATE_TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
AGGREGATE_TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = [*READ, *WRITE]

SCHEDULER_USER = "system:kube-scheduler"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_LEASES = ["corral-scheduler", "kube-scheduler"]
CONTROLLER_MANAGER_LEASES = ["corral-controller-manager", "kube-controller-manager"]


def rule(
    verbs: list[str],
    groups: list[str] | None = None,
    resources: list[str] | None = None,
    names: list[str] | None = None,
    urls: list[str] | None = None,
) -> Obj:
    out: Obj = {"verbs": list(verbs)}
    if groups is not None:
        out["apiGroups"] = list(groups)
    if resources is not None:
        out["resources"] = list(resources)
    if names:
        out["resourceNames"] = list(names)
    if urls is not None:
        out["nonResourceURLs"] = list(urls)
    return out


def cluster_role(
    name: str,
    rules: list[Obj],
    labels: dict[str, str] | None = None,
    aggregate_from: str | None = None,
) -> Obj:
    role: Obj = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {**BOOTSTRAPPING, **(labels or {})},
            "annotations": {AUTOUPDATE: "true"},
        },
        "rules": rules,
    }
    if aggregate_from is not None:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]
        }
        role["rules"] = []  # filled by aggregation
    return role


def cluster_role_binding(name: str, role: str, subjects: list[Obj]) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": dict(BOOTSTRAPPING),
            "annotations": {AUTOUPDATE: "true"},
        },
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def user(name: str) -> Obj:
    return {"kind": "User", "apiGroup": GROUP, "name": name}


def group(name: str) -> Obj:
    return {"kind": "Group", "apiGroup": GROUP, "name": name}


# --- the user-facing roles --------------------------------------------------------

_VIEW_RULES = [
    rule(
        READ,
        [""],
        [
            "pods",
            "pods/log",
            "pods/status",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "replicationcontrollers/status",
            "services",
            "services/status",
            "endpoints",
            "configmaps",
            "serviceaccounts",
            "events",
            "bindings",
            "namespaces/status",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
        ],
    ),
    # Reading "namespaces" through a RoleBinding means reading that one
    # namespace: it tells users which namespaces they have access to.
    rule(READ, [""], ["namespaces"]),
    rule(
        READ,
        ["apps"],
        [
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
            "daemonsets",
            "daemonsets/status",
            "controllerrevisions",
        ],
    ),
    rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    rule(READ, ["batch"], ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]),
]

_EDIT_RULES = [
    # Reading Secrets and exec are escalations (they reveal credentials and run
    # code as the pod), which is why they are in edit and not in view.
    rule(READ, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets"]),
    rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    rule(["create"], [""], ["pods/eviction"]),
    # A token for any ServiceAccount in the namespace: the same reach as
    # creating a pod that runs as it, which edit allows anyway.
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(
        WRITE,
        [""],
        [
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "configmaps",
            "secrets",
            "events",
            "persistentvolumeclaims",
        ],
    ),
    rule(
        WRITE,
        ["apps"],
        [
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
            "daemonsets",
        ],
    ),
    rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
]

_ADMIN_RULES = [
    rule(READ_WRITE, [GROUP], ["roles", "rolebindings"]),
]

# --- the control plane's own clients --------------------------------------------------

_SCHEDULER_RULES = [
    rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    rule(["create"], ["coordination.k8s.io"], ["leases"]),
    rule(["get", "update", "patch"], ["coordination.k8s.io"], ["leases"], SCHEDULER_LEASES),
    rule(READ, [""], ["nodes", "namespaces", "services", "replicationcontrollers"]),
    rule(["delete", *READ], [""], ["pods"]),
    rule(["create"], [""], ["bindings", "pods/binding"]),
    rule(["patch", "update"], [""], ["pods/status"]),
    rule(READ, ["apps"], ["replicasets", "deployments"]),
    rule(READ, ["policy"], ["poddisruptionbudgets"]),
    # VolumeBinding: the claims and volumes of the pods it places, and the
    # selected-node annotation it writes on a claim that waits for its pod.
    rule([*READ, "patch", "update"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(READ, ["storage.k8s.io"], ["storageclasses"]),
]

# The controller manager runs every controller under one identity. The
# garbage collector and the namespace controller must read, change and delete
# objects of every kind (Secrets included, or namespace deletion would leave
# them behind), as their Kubernetes service accounts may.
_CONTROLLER_MANAGER_RULES = [
    rule(["get", "list", "watch", "patch", "update", "delete", "deletecollection"], ["*"], ["*"]),
    rule(["create"], [""], ["pods", "endpoints", "events", "pods/eviction", "persistentvolumes"]),
    # The StatefulSet controller's claims, one per template and ordinal.
    rule(["create"], [""], ["persistentvolumeclaims"]),
    rule(["create"], ["events.k8s.io"], ["events"]),
    rule(["create"], ["apps"], ["replicasets", "controllerrevisions"]),
    # The CronJob controller's Jobs.
    rule(["create"], ["batch"], ["jobs"]),
    rule(["create"], ["coordination.k8s.io"], ["leases"]),
    rule(["update"], [""], ["namespaces/finalize", "namespaces/status", "nodes/status"]),
]

_DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/readyz",
    "/openapi",
    "/openapi/*",
    "/openapi.json",
    "/version",
    "/version/",
    "/docs",
    "/docs/*",
]
# Safe for anyone, even unauthenticated: whether the server is up, its
# version, and the web console's static page (which asks for a token).
# Kubernetes' system:monitoring: scrapers are put in the group of that name.
_MONITORING_URLS = [
    "/healthz",
    "/healthz/*",
    "/livez",
    "/livez/*",
    "/metrics",
    "/metrics/slis",
    "/readyz",
    "/readyz/*",
]
_PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/", "/ui", "/ui/*"]


def cluster_roles() -> list[Obj]:
    return [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"])]),
        cluster_role("admin", [], aggregate_from=AGGREGATE_TO_ADMIN),
        cluster_role("edit", [], {AGGREGATE_TO_ADMIN: "true"}, aggregate_from=AGGREGATE_TO_EDIT),
        cluster_role("view", [], {AGGREGATE_TO_EDIT: "true"}, aggregate_from=AGGREGATE_TO_VIEW),
        cluster_role("system:aggregate-to-admin", _ADMIN_RULES, {AGGREGATE_TO_ADMIN: "true"}),
        cluster_role("system:aggregate-to-edit", _EDIT_RULES, {AGGREGATE_TO_EDIT: "true"}),
        cluster_role("system:aggregate-to-view", _VIEW_RULES, {AGGREGATE_TO_VIEW: "true"}),
        # What metrics-server installs: resource metrics for view, edit and admin.
        cluster_role(
            "system:aggregated-metrics-reader",
            [rule(["get", "list", "watch"], ["metrics.k8s.io"], ["pods", "nodes"])],
            {AGGREGATE_TO_VIEW: "true", AGGREGATE_TO_EDIT: "true", AGGREGATE_TO_ADMIN: "true"},
        ),
        cluster_role("system:discovery", [rule(["get"], urls=_DISCOVERY_URLS)]),
        cluster_role("system:public-info-viewer", [rule(["get"], urls=_PUBLIC_URLS)]),
        cluster_role("system:monitoring", [rule(["get"], urls=_MONITORING_URLS)]),
        cluster_role(
            "system:node-bootstrapper",
            [
                rule(
                    ["create", "get", "list", "watch"],
                    ["certificates.k8s.io"],
                    ["certificatesigningrequests"],
                )
            ],
        ),
        cluster_role("system:kube-scheduler", _SCHEDULER_RULES),
        cluster_role("system:kube-controller-manager", _CONTROLLER_MANAGER_RULES),
    ]


def cluster_role_bindings() -> list[Obj]:
    return [
        cluster_role_binding("cluster-admin", "cluster-admin", [group("system:masters")]),
        cluster_role_binding(
            "system:discovery", "system:discovery", [group("system:authenticated")]
        ),
        cluster_role_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            [group("system:authenticated"), group("system:unauthenticated")],
        ),
        cluster_role_binding(
            "system:node-bootstrapper", "system:node-bootstrapper", [group("system:bootstrappers")]
        ),
        cluster_role_binding(
            "system:monitoring", "system:monitoring", [group("system:monitoring")]
        ),
        cluster_role_binding(
            "system:kube-scheduler", "system:kube-scheduler", [user(SCHEDULER_USER)]
        ),
        cluster_role_binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            [user(CONTROLLER_MANAGER_USER)],
        ),
    ]


# --- reconciliation --------------------------------------------------------------------


def _union(have: Iterable[Any], want: Iterable[Any]) -> tuple[list[Any], bool]:
    out = list(have)
    changed = False
    for item in want:
        if item not in out:
            out.append(item)
            changed = True
    return out, changed


def reconcile(default: Obj, existing: Obj | None) -> Obj | None:
    """The object to write so ``existing`` covers ``default``; None when nothing is to do.

    A missing object is the default itself. An existing one gets back the
    default's labels, rules (ClusterRoles), aggregation rule and subjects
    (bindings); what else it holds is kept. ``autoupdate: "false"`` opts out.
    """
    if existing is None:
        return copy.deepcopy(default)
    meta = existing.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    out = copy.deepcopy(existing)
    out_meta = out.setdefault("metadata", {})
    changed = False
    labels = dict(out_meta.get("labels") or {})
    for key, value in default["metadata"].get("labels", {}).items():
        if labels.get(key) != value:
            labels[key] = value
            changed = True
    out_meta["labels"] = labels
    if default["kind"] == "ClusterRole":
        if "aggregationRule" in default:
            if out.get("aggregationRule") != default["aggregationRule"]:
                out["aggregationRule"] = copy.deepcopy(default["aggregationRule"])
                changed = True
        else:
            out["rules"], added = _union(out.get("rules") or [], default["rules"])
            changed = changed or added
    else:
        if out.get("roleRef") != default["roleRef"]:
            # roleRef is immutable; an administrator who re-pointed a default
            # binding (by delete and create) meant it. Leave it and say so.
            log.warning("default binding %s points elsewhere; left as it is", meta.get("name"))
            return None
        out["subjects"], added = _union(out.get("subjects") or [], default["subjects"])
        changed = changed or added
    return out if changed else None


class PolicyWriter(Protocol):
    """What ``ensure_default_policy`` needs of the API server's storage."""

    async def get(self, kind: str, name: str) -> Obj | None: ...

    async def create(self, kind: str, obj: Obj) -> None: ...

    async def update(self, kind: str, obj: Obj) -> None: ...


async def ensure_default_policy(writer: PolicyWriter) -> list[str]:
    """Create or repair the default roles and bindings; the names it wrote."""
    written: list[str] = []
    for default in (*cluster_roles(), *cluster_role_bindings()):
        kind = default["kind"]
        name = default["metadata"]["name"]
        existing = await writer.get(kind, name)
        wanted = reconcile(default, existing)
        if wanted is None:
            continue
        if existing is None:
            await writer.create(kind, wanted)
        else:
            await writer.update(kind, wanted)
        written.append(f"{kind}/{name}")
    return written
