"""The selectors of Services, ReplicationControllers and ReplicaSets, by namespace.

Replica spreading needs "which controllers and services pick this pod";
each selector is parsed once, when its object changes, not once per pod.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from corral.api.labels import LabelSelector, SelectorError, selector_from_dict, selector_from_set
from corral.objects import Obj, meta
from scheduler.podinfo import PodInfo

log = logging.getLogger(__name__)


def selector_of(kind: str, obj: Obj) -> LabelSelector | None:
    """The pod selector of a Service, ReplicationController or ReplicaSet; None if it has none.

    An empty selector picks nothing for spreading: a Service without one
    fronts no pods, and the API refuses such controllers.
    """
    spec = obj.get("spec") or {}
    raw = spec.get("selector")
    try:
        if kind == "ReplicaSet":
            if not isinstance(raw, Mapping) or not (
                raw.get("matchLabels") or raw.get("matchExpressions")
            ):
                return None
            return selector_from_dict(raw)
        if kind == "ReplicationController" and not raw:
            # The API defaults an RC's selector to its template's labels.
            raw = meta(spec.get("template") or {}).get("labels")
        if not raw or not isinstance(raw, Mapping):
            return None
        return selector_from_set(raw)
    except SelectorError as error:
        log.debug("ignoring the selector of %s %s: %s", kind, obj.get("metadata"), error)
        return None


class SpreadingSelectors:
    """Selectors by namespace, indexed by one of their ``label=value`` terms.

    A pod then looks up only the selectors filed under its own labels (plus
    the few with no equality term at all), instead of trying every one in
    its namespace.
    """

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], tuple[tuple[str, ...], LabelSelector]] = {}
        self._index: dict[tuple[str, ...], dict[tuple[str, str], LabelSelector]] = {}

    def set(self, kind: str, obj: Obj) -> None:
        self.remove(kind, obj)
        selector = selector_of(kind, obj)
        if selector is None:
            return
        metadata = meta(obj)
        namespace = metadata.get("namespace") or ""
        name = metadata.get("name") or ""
        exact = selector.exact_matches()
        if exact:
            label = min(exact)
            bucket: tuple[str, ...] = (namespace, label, exact[label])
        else:
            bucket = (namespace,)
        self._objects[(namespace, kind, name)] = (bucket, selector)
        self._index.setdefault(bucket, {})[(kind, name)] = selector

    def remove(self, kind: str, obj: Obj) -> None:
        metadata = meta(obj)
        namespace = metadata.get("namespace") or ""
        name = metadata.get("name") or ""
        known = self._objects.pop((namespace, kind, name), None)
        if known is None:
            return
        bucket = self._index.get(known[0])
        if bucket is not None:
            bucket.pop((kind, name), None)
            if not bucket:
                del self._index[known[0]]

    def for_pod(self, pod: PodInfo) -> list[LabelSelector]:
        """The distinct selectors in the pod's namespace that match it."""
        namespace = pod.namespace
        labels = pod.labels
        found: list[LabelSelector] = []
        candidates = [self._index.get((namespace, k, v)) for k, v in labels.items()]
        candidates.append(self._index.get((namespace,)))
        for bucket in candidates:
            if not bucket:
                continue
            for selector in bucket.values():
                if selector not in found and selector.matches(labels):
                    found.append(selector)
        return found
