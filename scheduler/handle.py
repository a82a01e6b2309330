"""What plugins may read of the cluster: the cache and the spreading selectors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from corral.api.labels import LabelSelector
from scheduler.cache import Cache
from scheduler.framework import NodeSummary
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.selectors import SpreadingSelectors
from scheduler.volumes import VolumeStore


class ClusterHandle:
    def __init__(
        self, cache: Cache, selectors: SpreadingSelectors, volumes: VolumeStore | None = None
    ) -> None:
        self.cache = cache
        self.selectors = selectors
        self._volumes = volumes or VolumeStore()

    def pods_matching(self, namespace: str, selectors: Sequence[LabelSelector]) -> list[PodInfo]:
        return self.cache.pods_matching(namespace, selectors)

    def count_matching(
        self, namespace: str, selectors: Sequence[LabelSelector]
    ) -> tuple[Mapping[str, int], Mapping[str, int]]:
        return self.cache.count_matching(namespace, selectors)

    def node(self, name: str) -> NodeInfo | None:
        return self.cache.node(name)

    def node_list(self) -> Sequence[NodeInfo]:
        return self.cache.node_list()

    def node_summary(self) -> NodeSummary:
        return self.cache.summary

    def namespaces(self) -> list[str]:
        return self.cache.namespaces()

    def pods_with_required_anti_affinity(self) -> list[PodInfo]:
        return self.cache.pods_with_required_anti_affinity()

    def spreading_selectors(self, pod: PodInfo) -> list[LabelSelector]:
        return self.selectors.for_pod(pod)

    def volumes(self) -> VolumeStore:
        return self._volumes
