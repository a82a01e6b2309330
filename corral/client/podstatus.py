"""Marking a pod not ready on behalf of a node that can no longer say so itself.

The node lifecycle controller does it for a node it stopped hearing from;
``corral up`` for simulated hosts it has just made anew. Both send the same
status patch, pinned to the pod's uid so that a pod recreated under the same
name is left alone.
"""

from __future__ import annotations

from typing import Any, Protocol

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.objects import Obj, meta


class StatusPatcher(Protocol):
    async def patch(
        self,
        rt: Any,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> Obj: ...


async def mark_pod_not_ready(client: StatusPatcher, pod: Obj, now: str) -> bool:
    """Set the pod's Ready condition to False; False if it is gone or was replaced."""
    pods = REGISTRY.resolve("pods")
    assert pods is not None
    metadata = meta(pod)
    patch = {
        "metadata": {"uid": metadata.get("uid")},
        "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]},
    }
    try:
        await client.patch(
            pods,
            str(metadata.get("name")),
            patch,
            str(metadata.get("namespace")),
            patch_type="strategic",
            subresource="status",
        )
    except ApiError as error:
        # Gone or changed meanwhile: its agent or controller has it in hand.
        if error.code not in (404, 409):
            raise
        return False
    return True
