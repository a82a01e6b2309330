"""The registry of kinds corral serves: one entry per resource.

The API server routes and documents from it, and the CLI resolves what the
user typed (``po``, ``rc``, ``deploy``, ``deployments.apps``) against it, so
the two can never disagree about what exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corral.api.base import ApiModel
    from corral.api.customkind import CustomKind
    from corral.objects import Obj

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    # "module:Class": the pydantic model is imported on first use, so that a
    # process that only needs names and paths (the node agent, the CLI) never
    # pays for building every model.
    model_path: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # Fields a fieldSelector may name beyond metadata.name/namespace.
    selectable_fields: tuple[str, ...] = ()
    # Whether a spec change bumps metadata.generation.
    has_spec_generation: bool = True
    singular: str = field(default="")
    # Set for a kind a CustomResourceDefinition defines (corral.api.customkind);
    # None for the built-in kinds. Left out of equality: it holds the schema.
    custom: CustomKind | None = field(default=None, compare=False)
    # False for kinds served from memory (metrics.k8s.io): nothing of theirs
    # is in etcd, and their storage name must not alias a stored kind's.
    stored: bool = True

    @property
    def model(self) -> type[ApiModel]:
        return _load_model(self.model_path)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """``deployments.apps``: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_api_version(self) -> str:
        """The apiVersion objects are stored with: a custom kind's storage version."""
        if self.custom is not None:
            return f"{self.group}/{self.custom.storage_version}"
        return self.api_version

    def served(self, obj: Obj) -> Obj:
        """``obj`` as this version serves it. Custom versions convert with strategy None:
        only apiVersion changes. Built-in kinds have one version: ``obj`` itself."""
        if self.custom is None or obj.get("apiVersion") in (None, self.api_version):
            return obj
        return {**obj, "apiVersion": self.api_version}

    @property
    def converts(self) -> bool:
        """Whether stored objects need converting to be served at this version."""
        return self.custom is not None and self.custom.storage_version != self.version

    @property
    def storage_resource(self) -> str:
        """The key segment its objects are stored under in etcd.

        A custom kind's plural may repeat a built-in one in another group, so
        custom kinds are stored under ``plural.group``, as Kubernetes does.
        """
        return self.qualified if self.custom is not None or not self.stored else self.plural

    def has(self, subresource: str) -> bool:
        return subresource in self.subresources


@cache
def _load_model(path: str) -> type[ApiModel]:
    module, _, name = path.partition(":")
    model: type[ApiModel] = getattr(importlib.import_module(module), name)
    return model


def _rt(*args: object, **kwargs: object) -> ResourceType:
    return ResourceType(*args, **kwargs)  # type: ignore[arg-type]


RESOURCES: tuple[ResourceType, ...] = (
    _rt(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "corral.api.core:Namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status", "finalize"),
        selectable_fields=("status.phase",),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "Pod",
        "pods",
        "corral.api.core:Pod",
        short_names=("po",),
        categories=("all",),
        subresources=("status", "binding", "eviction", "log", "exec", "portforward"),
        selectable_fields=(
            "spec.nodeName",
            "status.phase",
            "spec.restartPolicy",
            "spec.schedulerName",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "corral.api.core:ReplicationController",
        short_names=("rc",),
        categories=("all",),
        subresources=("status", "scale"),
        selectable_fields=("status.replicas",),
    ),
    _rt(
        "",
        "v1",
        "Service",
        "services",
        "corral.api.core:Service",
        short_names=("svc",),
        categories=("all",),
        subresources=("status",),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "corral.api.core:Endpoints",
        short_names=("ep",),
        singular="endpoints",
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "Node",
        "nodes",
        "corral.api.core:Node",
        namespaced=False,
        short_names=("no",),
        subresources=("status",),
        selectable_fields=("spec.unschedulable",),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "Event",
        "events",
        "corral.api.core:Event",
        short_names=("ev",),
        selectable_fields=(
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "corral.api.core:ConfigMap",
        short_names=("cm",),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "Secret",
        "secrets",
        "corral.api.core:Secret",
        selectable_fields=("type",),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "corral.api.core:ServiceAccount",
        short_names=("sa",),
        subresources=("token",),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "corral.api.storage:PersistentVolume",
        namespaced=False,
        short_names=("pv",),
        subresources=("status",),
        has_spec_generation=False,
    ),
    _rt(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "corral.api.storage:PersistentVolumeClaim",
        short_names=("pvc",),
        subresources=("status",),
        has_spec_generation=False,
    ),
    _rt(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "corral.api.apps:Deployment",
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _rt(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "corral.api.apps:ReplicaSet",
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _rt(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "corral.api.apps:StatefulSet",
        short_names=("sts",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _rt(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "corral.api.apps:DaemonSet",
        short_names=("ds",),
        categories=("all",),
        subresources=("status",),
    ),
    _rt(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "corral.api.apps:ControllerRevision",
        has_spec_generation=False,
    ),
    _rt(
        "batch",
        "v1",
        "Job",
        "jobs",
        "corral.api.batch:Job",
        categories=("all",),
        subresources=("status",),
        selectable_fields=("status.successful",),
    ),
    _rt(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "corral.api.batch:CronJob",
        short_names=("cj",),
        categories=("all",),
        subresources=("status",),
    ),
    _rt(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "corral.api.policy:PodDisruptionBudget",
        short_names=("pdb",),
        subresources=("status",),
    ),
    _rt(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "corral.api.coordination:Lease",
        has_spec_generation=False,
    ),
    _rt(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "corral.api.storage:StorageClass",
        namespaced=False,
        short_names=("sc",),
        has_spec_generation=False,
    ),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "corral.api.apiextensions:CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=("status",),
    ),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "corral.api.rbac:Role",
        has_spec_generation=False,
    ),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "corral.api.rbac:ClusterRole",
        namespaced=False,
        has_spec_generation=False,
    ),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "corral.api.rbac:RoleBinding",
        has_spec_generation=False,
    ),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "corral.api.rbac:ClusterRoleBinding",
        namespaced=False,
        has_spec_generation=False,
    ),
    # Resource usage (controlplane/usage): built per request, never stored.
    _rt(
        "metrics.k8s.io",
        "v1beta1",
        "NodeMetrics",
        "nodes",
        "corral.api.metrics:NodeMetrics",
        namespaced=False,
        verbs=("get", "list"),
        stored=False,
        has_spec_generation=False,
    ),
    _rt(
        "metrics.k8s.io",
        "v1beta1",
        "PodMetrics",
        "pods",
        "corral.api.metrics:PodMetrics",
        verbs=("get", "list"),
        stored=False,
        has_spec_generation=False,
    ),
)


class Registry:
    """Lookups over a set of resource types: the built-in kinds, then the custom ones.

    The custom kinds are an overlay that the API server replaces as
    CustomResourceDefinitions come and go (``set_custom``); a built-in kind
    always wins a clash. Each replacement swaps whole lookup tables, so a
    reader never sees half of one.
    """

    def __init__(self, resources: Iterable[ResourceType]) -> None:
        self._static = tuple(resources)
        # Moves on every change of the custom kinds: caches of documents key on it.
        self.generation = 0
        self._index(())

    def _index(self, custom: tuple[ResourceType, ...]) -> None:
        static_gvk = {(r.api_version, r.kind) for r in self._static}
        static_plural = {(r.group, r.version, r.plural) for r in self._static}
        kept = tuple(
            r
            for r in custom
            if (r.api_version, r.kind) not in static_gvk
            and (r.group, r.version, r.plural) not in static_plural
        )
        everything = self._static + kept
        self._custom = kept
        self._all = everything
        self._by_gvk = {(r.api_version, r.kind): r for r in everything}
        self._by_plural = {(r.group, r.version, r.plural): r for r in everything}
        by_kind = {r.kind: r for r in self._static}
        for r in kept:
            by_kind.setdefault(r.kind, r)
        self._by_kind = by_kind

    def fork(self) -> Registry:
        """A registry of the same built-in kinds whose overlay is its own (one per server)."""
        return Registry(self._static)

    def set_custom(self, resources: Iterable[ResourceType]) -> None:
        """Replace the custom kinds with ``resources``."""
        self._index(tuple(resources))
        self.generation += 1

    @property
    def custom(self) -> tuple[ResourceType, ...]:
        return self._custom

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._all)

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return self._by_gvk.get((api_version, kind))

    def require(self, api_version: str, kind: str) -> ResourceType:
        """A kind the code cannot work without: a LookupError if it is not registered."""
        found = self.by_kind(api_version, kind)
        if found is None:
            raise LookupError(f"{api_version} {kind} is not a registered kind")
        return found

    def by_kind_any_version(self, kind: str) -> ResourceType | None:
        return self._by_kind.get(kind)

    def by_plural(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_plural.get((group, version, plural))

    def groups(self) -> dict[str, list[str]]:
        """Group name to its versions, in registry order."""
        out: dict[str, list[str]] = {}
        for r in self._all:
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self._all if r.group == group and r.version == version]

    def resolve(self, name: str) -> ResourceType | None:
        """Resolve what a user typed: plural, singular, short name, kind, or ``plural.group``."""
        lowered = name.lower()
        plural_part, _, group_part = lowered.partition(".")
        for r in self._all:
            if group_part and r.group != group_part and not r.group.startswith(group_part + "."):
                continue
            if plural_part in (r.plural, r.singular_name, r.kind.lower()) or (
                plural_part in r.short_names
            ):
                return r
        return None

    def category(self, name: str) -> list[ResourceType]:
        return [r for r in self._all if name in r.categories]


REGISTRY = Registry(RESOURCES)
