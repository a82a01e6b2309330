"""VolumeBinding: a pod goes where its persistent volumes are, or can be.

Kubernetes' VolumeBinding plugin, for what corral has:

- pre-filter: every claim the pod names must exist and not be on its way
  out (``persistentvolumeclaim "data" not found`` is unresolvable until
  the claim appears); a claim of an ``Immediate`` class must already be
  bound; a bound claim's volume must exist;
- filter: a bound claim's volume must admit the node through its node
  affinity; an unbound ``WaitForFirstConsumer`` claim needs either a free
  volume that fits it and admits the node, or a provisioner that can make
  one anywhere (corral's local provisioner can); a claim already promised
  to a node (``volume.kubernetes.io/selected-node``) admits only that node.

The claims are promised to the chosen node at bind time (``scheduler.volumes.pre_bind``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corral import volumebinding as vb
from corral.api.storage import LOCAL_PROVISIONER, SELECTED_NODE_ANNOTATION
from corral.objects import Obj, annotations_of, meta, spec
from scheduler.events import ClusterEvent
from scheduler.framework import CycleState, Handle, Status
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins._args import no_args
from scheduler.podinfo import PodInfo
from scheduler.volumes import VolumeStore

AFFINITY_CONFLICT = "node(s) had volume node affinity conflict"
NO_VOLUME_TO_BIND = "node(s) didn't find available persistent volumes to bind"
SELECTED_ELSEWHERE = "node(s) were not the node the pod's claim was selected for"
_STATE_KEY = "VolumeBinding"
# Provisioners that can make a volume on whichever node the pod lands.
_ANYWHERE_PROVISIONERS = frozenset({LOCAL_PROVISIONER})


@dataclass(slots=True)
class _PodVolumes:
    bound: list[Obj] = field(default_factory=list)
    waiting: list[Obj] = field(default_factory=list)


class VolumeBinding:
    name = "VolumeBinding"
    events = ClusterEvent.NODE_ADDED | ClusterEvent.NODE_LABELS_CHANGED

    def __init__(self, store: VolumeStore) -> None:
        self.store = store

    @classmethod
    def new(cls, args: Mapping[str, Any], handle: Handle) -> VolumeBinding:
        no_args(cls.name, args)
        return cls(handle.volumes())

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        names = vb.claim_names(pod.obj)
        if not names:
            return Status.skip()
        found = _PodVolumes()
        for name in names:
            claim = self.store.claim(pod.namespace, name)
            if claim is None:
                return Status.unresolvable(f'persistentvolumeclaim "{name}" not found')
            if meta(claim).get("deletionTimestamp"):
                return Status.unresolvable(f'persistentvolumeclaim "{name}" is being deleted')
            volume_name = spec(claim).get("volumeName")
            if volume_name:
                volume = self.store.volume(volume_name)
                if volume is None:
                    return Status.unresolvable(
                        f'persistentvolume "{volume_name}" of claim "{name}" not found'
                    )
                found.bound.append(volume)
            elif self.store.waits_for_consumer(claim):
                found.waiting.append(claim)
            else:
                return Status.unresolvable("pod has unbound immediate PersistentVolumeClaims")
        state.write(_STATE_KEY, found)
        return Status.ok()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        found: _PodVolumes = state.read(_STATE_KEY)
        for volume in found.bound:
            if not vb.admits(volume, node.name, node.labels):
                return Status.unresolvable(AFFINITY_CONFLICT)
        for claim in found.waiting:
            selected = annotations_of(claim).get(SELECTED_NODE_ANNOTATION)
            if selected and selected != node.name:
                return Status.unresolvable(SELECTED_ELSEWHERE)
            if not self._can_serve(claim, node):
                return Status.unschedulable(NO_VOLUME_TO_BIND)
        return Status.ok()

    def select(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        # Pods with claims are few; one predicate call per node is cheap enough for them.
        return [node for node in nodes if self.filter(state, pod, node).is_success]

    def _can_serve(self, claim: Obj, node: NodeInfo) -> bool:
        storage_class = self.store.storage_class(vb.class_of(claim)) or {}
        if storage_class.get("provisioner") in _ANYWHERE_PROVISIONERS:
            return True
        volume = vb.best_fit(self.store.volumes(), claim, node=node.name, labels=node.labels)
        return volume is not None
