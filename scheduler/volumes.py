"""The scheduler's view of storage: claims, volumes and classes, and the claims' PreBind.

The VolumeBinding plugin reads claims, volumes and classes from here (the
scheduler's informers fill the stores). After a node is chosen and before
the pod is bound, ``pre_bind`` writes ``volume.kubernetes.io/selected-node``
on each of the pod's unbound ``WaitForFirstConsumer`` claims, which is what
tells the controller manager where to bind or provision them. A claim that
another pod has meanwhile sent to a different node stops the bind; the pod
goes back to the queue and is placed again.
"""

from __future__ import annotations

from collections.abc import Mapping

from corral import volumebinding as vb
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.api.storage import SELECTED_NODE_ANNOTATION
from corral.client.rest import Client
from corral.objects import Obj, meta, namespace_of, spec

PVCS = REGISTRY.by_kind("v1", "PersistentVolumeClaim")
assert PVCS is not None


class VolumeBindingConflict(Exception):
    """A claim of the pod is already promised to another node."""


class VolumeStore:
    """Read-only lookups over the scheduler's claim, volume and class stores (informer dicts)."""

    def __init__(
        self,
        claims: Mapping[str, Obj] | None = None,
        volumes: Mapping[str, Obj] | None = None,
        classes: Mapping[str, Obj] | None = None,
    ) -> None:
        self._claims = claims if claims is not None else {}
        self._volumes = volumes if volumes is not None else {}
        self._classes = classes if classes is not None else {}

    def claim(self, namespace: str, name: str) -> Obj | None:
        return self._claims.get(f"{namespace}/{name}")

    def volume(self, name: str) -> Obj | None:
        return self._volumes.get(name)

    def volumes(self) -> list[Obj]:
        return list(self._volumes.values())

    def storage_class(self, name: str) -> Obj | None:
        return self._classes.get(name) if name else None

    def waits_for_consumer(self, claim: Obj) -> bool:
        storage_class = self.storage_class(vb.class_of(claim))
        return (storage_class or {}).get("volumeBindingMode") == "WaitForFirstConsumer"

    def claims_to_place(self, pod: Obj) -> list[Obj]:
        """The pod's claims that are unbound and wait for their first consumer: this pod."""
        namespace = namespace_of(pod)
        out = []
        for name in vb.claim_names(pod):
            claim = self.claim(namespace, name)
            if claim is None or spec(claim).get("volumeName"):
                continue
            if self.waits_for_consumer(claim):
                out.append(claim)
        return out


async def pre_bind(client: Client, store: VolumeStore, pod: Obj, node: str) -> None:
    """Promise the pod's waiting claims to ``node``; ``VolumeBindingConflict`` if one is taken."""
    assert PVCS is not None
    for claim in store.claims_to_place(pod):
        metadata = meta(claim)
        selected = (metadata.get("annotations") or {}).get(SELECTED_NODE_ANNOTATION)
        if selected == node:
            continue
        if selected:
            raise VolumeBindingConflict(
                f'persistentvolumeclaim "{metadata.get("name")}" is already selected for node '
                f'"{selected}"'
            )
        patch = {
            "metadata": {
                # Exactly the version looked at: a rival pod's promise wins the race.
                "resourceVersion": metadata.get("resourceVersion"),
                "annotations": {SELECTED_NODE_ANNOTATION: node},
            }
        }
        try:
            await client.patch(PVCS, str(metadata.get("name")), patch, metadata.get("namespace"))
        except ApiError as error:
            if error.code == 409:
                raise VolumeBindingConflict(
                    f'persistentvolumeclaim "{metadata.get("name")}" changed while binding'
                ) from None
            raise
