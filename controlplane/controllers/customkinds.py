"""Informers for custom kinds, started and stopped as CustomResourceDefinitions come and go.

The controller manager's informers are fixed when it starts; a controller
that must see every kind (the garbage collector, as Kubernetes' does through
discovery) follows the CRD informer instead and runs one informer per
established CRD, at its storage version, which lists every object of the
kind whatever version wrote it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.controllers.base import Context
from corral.api.crd import is_established, resource_types
from corral.api.resources import REGISTRY, ResourceType
from corral.informer import Informer
from corral.objects import Obj

log = logging.getLogger(__name__)

CRDS = REGISTRY.require("apiextensions.k8s.io/v1", "CustomResourceDefinition")

# After its CRD goes, a kind's informer runs this long more, so that the
# deletions of its objects (the server deletes them with the CRD) reach the
# controller before the informer stops.
_LINGER_SECONDS = 30.0


def storage_type(crd: Obj) -> ResourceType | None:
    """The resource type of ``crd``'s storage version, if it is established and served."""
    if not is_established(crd):
        return None
    served = resource_types(crd)
    stored = [rt for rt in served if rt.custom and rt.version == rt.custom.storage_version]
    chosen = stored or served
    return chosen[0] if chosen else None


@dataclass
class _Running:
    rt: ResourceType
    informer: Informer
    stop: asyncio.Event
    task: asyncio.Task[None]
    stopping: asyncio.TimerHandle | None = None


class CustomKindInformers:
    """Runs an informer per custom kind; ``on_start`` sets each up before it lists."""

    def __init__(self, ctx: Context, on_start: Callable[[ResourceType, Informer], None]) -> None:
        self.ctx = ctx
        self.on_start = on_start
        self.running: dict[str, _Running] = {}
        self.by_group_kind: dict[tuple[str, str], ResourceType] = {}
        ctx.informer(CRDS).add_handlers(
            on_add=self._changed,
            on_update=lambda _old, new: self._changed(new),
            on_delete=self._deleted,
        )

    def resolve(self, api_version: str, kind: str) -> ResourceType | None:
        """The storage-version type of a custom kind named by any of its versions."""
        group = api_version.rpartition("/")[0]
        return self.by_group_kind.get((group, kind))

    def _changed(self, crd: Obj) -> None:
        rt = storage_type(crd)
        if rt is None:
            return
        existing = self.running.get(rt.qualified)
        if existing is not None:
            if existing.stopping is not None:  # defined again before its informer stopped
                existing.stopping.cancel()
                existing.stopping = None
            return
        informer = Informer(self.ctx.client, rt, clock=self.ctx.clock)
        self.on_start(rt, informer)
        stop = asyncio.Event()
        task = asyncio.create_task(informer.run(stop), name=f"informer {rt.qualified}")
        self.running[rt.qualified] = _Running(rt, informer, stop, task)
        self.by_group_kind[(rt.group, rt.kind)] = rt
        log.info("following custom kind %s", rt.qualified)

    def _deleted(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        qualified = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
        running = self.running.get(qualified)
        if running is not None and running.stopping is None:
            running.stopping = asyncio.get_running_loop().call_later(
                _LINGER_SECONDS, self._stop, qualified, running
            )

    def _stop(self, qualified: str, running: _Running) -> None:
        if self.running.get(qualified) is running:
            del self.running[qualified]
            self.by_group_kind.pop((running.rt.group, running.rt.kind), None)
        running.stop.set()

    async def stop_all(self) -> None:
        for running in self.running.values():
            if running.stopping is not None:
                running.stopping.cancel()
            running.stop.set()
        tasks = [r.task for r in self.running.values()]
        # An informer ends on its stop event; it logs its own errors and retries them.
        await asyncio.gather(*tasks, return_exceptions=True)
        self.running.clear()
