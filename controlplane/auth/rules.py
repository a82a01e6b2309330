"""One RBAC PolicyRule, compiled for matching, with Kubernetes' matching rules.

- verbs and apiGroups match exactly or through ``*``;
- resources match ``*``, the exact ``resource`` or ``resource/subresource``,
  or ``*/subresource`` for any resource's subresource;
- resourceNames, when present, must contain the request's name (so a rule
  with names never allows ``list`` or ``create``, whose requests carry no
  name, unless a field selector names the object);
- nonResourceURLs match ``*``, the exact path, or a prefix ending in ``*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.auth.attributes import RequestAttributes

ALL = "*"


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(v for v in value if isinstance(v, str))


@dataclass(frozen=True, slots=True)
class Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    # Ordered: prefixes are tried in turn, and a tuple keeps rules hashable.
    urls: tuple[str, ...]

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any]) -> Rule:
        return cls(
            verbs=frozenset(_strings(rule.get("verbs"))),
            api_groups=frozenset(_strings(rule.get("apiGroups"))),
            resources=frozenset(_strings(rule.get("resources"))),
            resource_names=frozenset(_strings(rule.get("resourceNames"))),
            urls=_strings(rule.get("nonResourceURLs")),
        )

    def to_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"verbs": sorted(self.verbs)}
        if self.api_groups:
            out["apiGroups"] = sorted(self.api_groups)
        if self.resources:
            out["resources"] = sorted(self.resources)
        if self.resource_names:
            out["resourceNames"] = sorted(self.resource_names)
        if self.urls:
            out["nonResourceURLs"] = list(self.urls)
        return out

    def allows(self, attrs: RequestAttributes) -> bool:
        if attrs.verb not in self.verbs and ALL not in self.verbs:
            return False
        if not attrs.resource_request:
            return self._url_matches(attrs.path)
        return (
            (attrs.api_group in self.api_groups or ALL in self.api_groups)
            and self._resource_matches(attrs.resource, attrs.subresource)
            and (not self.resource_names or attrs.name in self.resource_names)
        )

    def _resource_matches(self, resource: str, subresource: str) -> bool:
        resources = self.resources
        if ALL in resources:
            return True
        if not subresource:
            return resource in resources
        return f"{resource}/{subresource}" in resources or f"*/{subresource}" in resources

    def _url_matches(self, path: str) -> bool:
        for url in self.urls:
            if url in (ALL, path):
                return True
            if url.endswith("*") and path.startswith(url.rstrip("*")):
                return True
        return False


def compile_rules(rules: Iterable[Mapping[str, Any]] | None) -> tuple[Rule, ...]:
    return tuple(Rule.from_dict(r) for r in rules or () if isinstance(r, Mapping))
