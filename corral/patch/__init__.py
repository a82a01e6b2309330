"""Patch algorithms of the API server and CLI.

- JSON merge patch (RFC 7386): :func:`apply_merge_patch`, :func:`create_merge_patch`
- JSON patch (RFC 6902): :func:`apply_json_patch`
- Kubernetes strategic merge patch: :func:`apply_strategic_merge_patch`,
  :func:`create_two_way_merge_patch`, :func:`create_three_way_merge_patch`

All of them raise :class:`PatchError` for a bad patch and never modify their inputs.
"""

from __future__ import annotations

from corral.patch.errors import PatchError
from corral.patch.jsonpatch import apply_json_patch
from corral.patch.merge import apply_merge_patch, create_merge_patch
from corral.patch.schema import EMPTY, PatchSchema
from corral.patch.strategic import apply_strategic_merge_patch
from corral.patch.strategicdiff import (
    create_three_way_merge_patch,
    create_two_way_merge_patch,
)

__all__ = [
    "EMPTY",
    "PatchError",
    "PatchSchema",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "create_merge_patch",
    "create_three_way_merge_patch",
    "create_two_way_merge_patch",
]
