"""The patch metadata a strategic merge patch needs about an object's shape.

Kubernetes keeps this in Go struct tags (`patchStrategy`, `patchMergeKey`);
corral derives the same tree from its API models (see corral.api.patchmeta),
so that the patch code itself knows nothing about any particular kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ListStrategy = Literal["replace", "merge"]


@dataclass(frozen=True, slots=True)
class PatchSchema:
    """One node of an object's shape, as far as patching cares.

    - An object node has ``fields``: the schema of each known key.
    - A map node (``map[string]T``) has ``values``: the schema of every value.
    - A list node has ``items`` and a ``list_strategy``. A list merged by key
      has ``merge_key`` ("name" for containers); a merged list without one is
      a list of primitives (finalizers), merged as a set.
    - ``retain_keys`` marks structs patched with the ``retainKeys`` strategy
      (for example a volume's source), where unlisted keys are cleared.

    A node that says nothing (the default) is atomic for lists and recursive
    for objects, which is also how unknown parts of a document are treated.
    """

    fields: dict[str, PatchSchema] = field(default_factory=dict)
    values: PatchSchema | None = None
    items: PatchSchema | None = None
    list_strategy: ListStrategy = "replace"
    merge_key: str | None = None
    retain_keys: bool = False

    def child(self, key: str) -> PatchSchema | None:
        """The schema under ``key`` of an object or map node, if known."""
        found = self.fields.get(key)
        if found is not None:
            return found
        return self.values


EMPTY = PatchSchema()
