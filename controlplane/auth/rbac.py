"""The RBAC authorizer: Kubernetes' semantics over Roles, ClusterRoles and their bindings.

It runs on every request, so it never scans every binding: the policy is
compiled once into an index from subject (``User`` name or ``Group`` name;
a ServiceAccount subject is the user ``system:serviceaccount:<ns>:<name>``)
to the roles bound to it, per namespace and cluster-wide, and each role to
its compiled rules. An authorization then looks up one key per group the
user is in and tries only that user's rules.

The index is rebuilt when the policy's ``version`` changes; the API server
backs ``PolicySource`` with its watch cache (see docs/security.md).

Semantics, as in Kubernetes:

- a ClusterRoleBinding grants its ClusterRole everywhere, cluster-scoped
  resources and non-resource URLs included;
- a RoleBinding grants its Role, or a ClusterRole, only inside its own
  namespace, and never for cluster-scoped or non-resource requests;
- a ClusterRole with an ``aggregationRule`` has the union of the rules of
  every ClusterRole its selectors match (transitively), whatever its own
  ``rules`` say;
- members of ``system:masters`` may do anything;
- nothing allowed means no opinion (the chain then refuses).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controlplane.auth.attributes import MASTERS, RequestAttributes, User
from controlplane.auth.authorizer import Decision, allow, no_opinion
from controlplane.auth.rules import Rule, compile_rules
from corral.api.labels import LabelSelector, SelectorError, selector_from_dict
from corral.objects import labels_of, meta, name_of, namespace_of

Lister = Callable[[], Iterable[Mapping[str, Any]]]

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True, slots=True)
class PolicySource:
    """Where the current RBAC objects come from: four listers and a version.

    ``version`` must change whenever any of the four kinds changes (the
    watch cache's last revision per resource will do); without one, the
    index is rebuilt on every authorization, which is right only for tests
    and tiny policies.
    """

    roles: Lister
    cluster_roles: Lister
    role_bindings: Lister
    cluster_role_bindings: Lister
    version: Callable[[], Hashable] | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """One binding of one subject to one role: where a permission comes from."""

    binding: str  # how Kubernetes describes it: RoleBinding "name/ns" of Role "r" to User "u"
    role_kind: str
    role_namespace: str
    role_name: str


SubjectKey = tuple[str, str]  # ("User", name) or ("Group", name)


@dataclass(slots=True)
class PolicyIndex:
    cluster_role_rules: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    role_rules: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    cluster_grants: dict[SubjectKey, list[Grant]] = field(default_factory=dict)
    namespace_grants: dict[str, dict[SubjectKey, list[Grant]]] = field(default_factory=dict)

    def rules_of(self, grant: Grant) -> tuple[Rule, ...] | None:
        if grant.role_kind == "ClusterRole":
            return self.cluster_role_rules.get(grant.role_name)
        return self.role_rules.get((grant.role_namespace, grant.role_name))


def _describe_subject(kind: str, name: str, namespace: str) -> str:
    if kind == "ServiceAccount":
        return f'ServiceAccount "{name}/{namespace}"'
    return f'{kind} "{name}"'


def subject_key(subject: Mapping[str, Any], binding_namespace: str) -> SubjectKey | None:
    """The index key a binding subject is filed under, or None if it names nobody."""
    kind = subject.get("kind")
    name = subject.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind == "User":
        return ("User", name)
    if kind == "Group":
        return ("Group", name)
    if kind == "ServiceAccount":
        # A RoleBinding may leave the namespace out: it means its own.
        namespace = subject.get("namespace") or binding_namespace
        if not namespace:
            return None
        return ("User", f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
    return None


def _selectors(role: Mapping[str, Any]) -> list[LabelSelector] | None:
    """The aggregation selectors of a ClusterRole, or None if it does not aggregate."""
    rule = role.get("aggregationRule")
    if not isinstance(rule, Mapping):
        return None
    selectors: list[LabelSelector] = []
    for raw in rule.get("clusterRoleSelectors") or ():
        try:
            selectors.append(selector_from_dict(raw))
        except SelectorError:
            continue  # validation refuses these; an old stored one selects nothing
    return selectors


def aggregate_cluster_roles(
    cluster_roles: Iterable[Mapping[str, Any]],
) -> dict[str, tuple[Rule, ...]]:
    """Each ClusterRole's effective rules, aggregation resolved (transitively, cycles cut)."""
    by_name: dict[str, Mapping[str, Any]] = {}
    for role in cluster_roles:
        name = meta(role).get("name")
        if isinstance(name, str):
            by_name[name] = role
    resolved: dict[str, tuple[Rule, ...]] = {}

    def resolve(name: str, visiting: frozenset[str]) -> tuple[tuple[Rule, ...], bool]:
        """(rules, complete): incomplete when a cycle was cut below this role."""
        if name in resolved:
            return resolved[name], True
        role = by_name[name]
        selectors = _selectors(role)
        complete = True
        if selectors is None:
            rules = compile_rules(role.get("rules"))
        else:
            gathered: dict[Rule, None] = {}  # ordered and without duplicates
            inner = visiting | {name}
            for other in sorted(by_name):
                if other == name:
                    continue  # a role matching its own selector adds nothing
                labels = labels_of(by_name[other])
                if not any(s.matches(labels) for s in selectors):
                    continue
                if other in inner:
                    complete = False  # a cycle: cut it here
                    continue
                found, found_complete = resolve(other, inner)
                complete = complete and found_complete
                gathered.update(dict.fromkeys(found))
            rules = tuple(gathered)
        if complete or not visiting:
            # An answer computed with a cycle cut lacks what the cycle's
            # start contributes, so it is final only at the top.
            resolved[name] = rules
        return rules, complete

    return {name: resolve(name, frozenset())[0] for name in sorted(by_name)}


def build_index(
    roles: Iterable[Mapping[str, Any]],
    cluster_roles: Iterable[Mapping[str, Any]],
    role_bindings: Iterable[Mapping[str, Any]],
    cluster_role_bindings: Iterable[Mapping[str, Any]],
) -> PolicyIndex:
    index = PolicyIndex(cluster_role_rules=aggregate_cluster_roles(cluster_roles))
    for role in roles:
        index.role_rules[(namespace_of(role), name_of(role))] = compile_rules(role.get("rules"))
    for binding in cluster_role_bindings:
        _file(index.cluster_grants, binding, "ClusterRoleBinding", "")
    for binding in role_bindings:
        namespace = meta(binding).get("namespace") or ""
        if namespace:
            _file(
                index.namespace_grants.setdefault(namespace, {}), binding, "RoleBinding", namespace
            )
    return index


def _file(
    table: dict[SubjectKey, list[Grant]],
    binding: Mapping[str, Any],
    binding_kind: str,
    namespace: str,
) -> None:
    ref = binding.get("roleRef")
    if not isinstance(ref, Mapping):
        return
    role_kind = ref.get("kind")
    role_name = ref.get("name")
    if not isinstance(role_name, str) or role_kind not in ("Role", "ClusterRole"):
        return
    if role_kind == "Role" and not namespace:
        return  # a ClusterRoleBinding to a Role is invalid and grants nothing
    name = meta(binding).get("name") or ""
    label = f"{name}/{namespace}" if namespace else name
    for subject in binding.get("subjects") or ():
        if not isinstance(subject, Mapping):
            continue
        key = subject_key(subject, namespace)
        if key is None:
            continue
        described = _describe_subject(
            str(subject.get("kind")),
            str(subject.get("name")),
            str(subject.get("namespace") or namespace),
        )
        grant = Grant(
            f'{binding_kind} "{label}" of {role_kind} "{role_name}" to {described}',
            role_kind,
            namespace if role_kind == "Role" else "",
            role_name,
        )
        table.setdefault(key, []).append(grant)


def _keys(user: User) -> list[SubjectKey]:
    return [("User", user.name), *(("Group", g) for g in user.groups)]


def _grants(index: PolicyIndex, user: User, namespace: str) -> list[Grant]:
    keys = _keys(user)
    found = [g for key in keys for g in index.cluster_grants.get(key, ())]
    if namespace:
        in_namespace = index.namespace_grants.get(namespace)
        if in_namespace:
            found.extend(g for key in keys for g in in_namespace.get(key, ()))
    return found


def _missing(grant: Grant) -> str:
    if grant.role_kind == "ClusterRole":
        return f'clusterrole.rbac.authorization.k8s.io "{grant.role_name}" not found'
    return f'role.rbac.authorization.k8s.io "{grant.role_name}" not found'


class RBACAuthorizer:
    def __init__(self, source: PolicySource) -> None:
        self.source = source
        self._index: PolicyIndex | None = None
        self._version: Hashable = None

    def index(self) -> PolicyIndex:
        """The compiled policy, rebuilt only when the source's version moved."""
        version = self.source.version() if self.source.version is not None else None
        if self._index is None or version is None or version != self._version:
            self._index = build_index(
                self.source.roles(),
                self.source.cluster_roles(),
                self.source.role_bindings(),
                self.source.cluster_role_bindings(),
            )
            self._version = version
        return self._index

    def grants(self, user: User, namespace: str) -> list[Grant]:
        """Every binding that applies to ``user`` for a request in ``namespace`` ("" for none)."""
        return _grants(self.index(), user, namespace)

    def rules_for(self, user: User, namespace: str) -> list[Rule]:
        """The rules ``user`` holds in ``namespace``: what ``auth can-i --list`` shows."""
        index = self.index()
        rules: dict[Rule, None] = {}
        for grant in _grants(index, user, namespace):
            rules.update(dict.fromkeys(index.rules_of(grant) or ()))
        return list(rules)

    def authorize(self, attrs: RequestAttributes) -> Decision:
        if MASTERS in attrs.user.groups:
            return allow(f'RBAC: allowed by group "{MASTERS}"')
        index = self.index()
        # A RoleBinding never covers a cluster-scoped or non-resource request.
        namespace = attrs.namespace if attrs.resource_request else ""
        problems: list[str] = []
        for grant in _grants(index, attrs.user, namespace):
            rules = index.rules_of(grant)
            if rules is None:
                problems.append(_missing(grant))
                continue
            for rule in rules:
                if rule.allows(attrs):
                    return allow(f"RBAC: allowed by {grant.binding}")
        if not problems:
            return no_opinion()
        if len(problems) == 1:
            return no_opinion(f"RBAC: {problems[0]}")
        return no_opinion("RBAC: [" + ", ".join(problems) + "]")


def static_source(
    roles: Iterable[Mapping[str, Any]] = (),
    cluster_roles: Iterable[Mapping[str, Any]] = (),
    role_bindings: Iterable[Mapping[str, Any]] = (),
    cluster_role_bindings: Iterable[Mapping[str, Any]] = (),
) -> PolicySource:
    """A fixed policy (tests, and the built-in defaults before the cache is ready)."""
    frozen = (list(roles), list(cluster_roles), list(role_bindings), list(cluster_role_bindings))
    return PolicySource(
        lambda: frozen[0],
        lambda: frozen[1],
        lambda: frozen[2],
        lambda: frozen[3],
        version=lambda: 0,
    )
