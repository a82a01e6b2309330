"""Escalation prevention: nobody grants, through RBAC, more than they hold.

Kubernetes' rule for writes to Roles, ClusterRoles and their bindings:

- a Role or ClusterRole may be written only by someone who holds every
  permission it grants (in that namespace, or cluster-wide for a
  ClusterRole), or who may ``escalate`` on roles/clusterroles;
- a RoleBinding or ClusterRoleBinding may be written only by someone who
  holds every permission of the role it names, or who may ``bind`` that
  role (``resourceNames`` can limit ``bind`` to some roles);
- an ``aggregationRule`` may be set only by ``system:masters``, since what
  it gathers can change later.

Without this, ``create rolebindings`` in a namespace would be as good as
``cluster-admin`` there. Call ``check_rbac_write`` at admission, after the
body is decoded, for create and update of the four kinds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controlplane.auth.attributes import MASTERS, RequestAttributes, User
from controlplane.auth.authorizer import Authorizer
from controlplane.auth.rbac import RBACAuthorizer
from controlplane.auth.rules import ALL, Rule, compile_rules
from corral.api import errors
from corral.api.errors import ApiError
from corral.api.rbac import GROUP

_ROLE_RESOURCES = {"Role": "roles", "ClusterRole": "clusterroles"}
_PLURAL = {
    "Role": "roles",
    "ClusterRole": "clusterroles",
    "RoleBinding": "rolebindings",
    "ClusterRoleBinding": "clusterrolebindings",
}


def _atoms(rule: Rule) -> Iterable[Rule]:
    """The rule broken into single-verb, single-group, single-resource, single-name pieces."""
    one = frozenset
    for verb in rule.verbs:
        if rule.urls:
            for url in rule.urls:
                yield Rule(one((verb,)), one(), one(), one(), (url,))
            continue
        for group in rule.api_groups:
            for resource in rule.resources:
                names = rule.resource_names or (None,)
                for name in names:
                    yield Rule(
                        one((verb,)),
                        one((group,)),
                        one((resource,)),
                        one((name,)) if name is not None else one(),
                        (),
                    )


def _covers_atom(owner: Rule, atom: Rule) -> bool:
    (verb,) = atom.verbs
    if verb not in owner.verbs and ALL not in owner.verbs:
        return False
    if atom.urls:
        (url,) = atom.urls
        return any(
            u in (ALL, url) or (u.endswith("*") and url.startswith(u.rstrip("*")))
            for u in owner.urls
        )
    (group,) = atom.api_groups
    (resource,) = atom.resources
    if group not in owner.api_groups and ALL not in owner.api_groups:
        return False
    if not _resource_covered(owner.resources, resource):
        return False
    if not owner.resource_names:
        return True
    return bool(atom.resource_names) and atom.resource_names <= owner.resource_names


def _resource_covered(owned: frozenset[str], resource: str) -> bool:
    if ALL in owned or resource in owned:
        return True
    _, slash, sub = resource.partition("/")
    return bool(slash) and f"*/{sub}" in owned


def uncovered(owner: Sequence[Rule], wanted: Iterable[Rule]) -> list[Rule]:
    """The pieces of ``wanted`` that no rule of ``owner`` covers (empty: all held)."""
    return [
        atom
        for rule in wanted
        for atom in _atoms(rule)
        if not any(_covers_atom(o, atom) for o in owner)
    ]


def _describe(rules: Sequence[Rule]) -> str:
    shown = [str(r.to_dict()) for r in rules[:10]]
    more = f" and {len(rules) - 10} more" if len(rules) > 10 else ""
    return "; ".join(shown) + more


def _refusal(kind: str, name: str, user: User, message: str) -> ApiError:
    groups = ", ".join(f'"{g}"' for g in user.groups)
    return errors.forbidden(
        f'{_PLURAL[kind]}.{GROUP} "{name}" is forbidden: user "{user.name}" '
        f"(groups=[{groups}]) {message}",
        _PLURAL[kind],
        name,
        GROUP,
    )


def _may(
    authorizer: Authorizer, user: User, verb: str, resource: str, namespace: str, name: str
) -> bool:
    attrs = RequestAttributes(
        user,
        verb,
        api_group=GROUP,
        api_version="v1",
        resource=resource,
        namespace=namespace,
        name=name,
    )
    return authorizer.authorize(attrs).allowed


def check_rbac_write(
    authorizer: Authorizer,
    rbac: RBACAuthorizer,
    user: User,
    kind: str,
    obj: Mapping[str, Any],
) -> ApiError | None:
    """None when ``user`` may write ``obj`` (a Role, ClusterRole or binding); else the 403.

    ``authorizer`` is the whole chain (for the ``escalate`` and ``bind``
    checks); ``rbac`` is asked for the rules the user holds.
    """
    if kind not in _PLURAL or MASTERS in user.groups:
        return None
    raw_meta = obj.get("metadata")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "") if kind in ("Role", "RoleBinding") else ""
    if kind in _ROLE_RESOURCES:
        if kind == "ClusterRole" and obj.get("aggregationRule") is not None:
            return _refusal(
                kind, name, user, "must have cluster-admin privileges to use an aggregationRule"
            )
        if _may(authorizer, user, "escalate", _ROLE_RESOURCES[kind], namespace, name):
            return None
        wanted = compile_rules(obj.get("rules"))
    else:
        ref = obj.get("roleRef")
        if not isinstance(ref, Mapping):
            return None  # validation reports the missing roleRef
        ref_kind, ref_name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        if ref_kind not in _ROLE_RESOURCES:
            return None  # validation reports the kind
        # Asked in the binding's namespace, as Kubernetes does: "bind" may be
        # granted for some ClusterRoles in some namespaces only.
        if _may(authorizer, user, "bind", _ROLE_RESOURCES[ref_kind], namespace, ref_name):
            return None
        index = rbac.index()
        found = (
            index.cluster_role_rules.get(ref_name)
            if ref_kind == "ClusterRole"
            else index.role_rules.get((namespace, ref_name))
        )
        if found is None:
            return _refusal(
                kind,
                name,
                user,
                f'cannot bind {ref_kind.lower()} "{ref_name}": it does not exist, and binding '
                "it needs the bind verb on it",
            )
        wanted = found
    missing = uncovered(rbac.rules_for(user, namespace), wanted)
    if not missing:
        return None
    return _refusal(
        kind,
        name,
        user,
        f"is attempting to grant RBAC permissions not currently held: {_describe(missing)}",
    )
