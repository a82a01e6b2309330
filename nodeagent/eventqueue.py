"""The agent's Events, recorded in the background and in order.

Recording an Event is a round trip to the control plane (and a write to
etcd); a pod's start used to wait for two of them per container. As the
kubelet's event broadcaster does, the agent hands them to a bounded queue
and one task records them: a pod's start never waits on its Events, and
when the control plane is slower than the Events come, the newest are
dropped (and counted in the log) rather than the agent's memory growing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from corral.events import EventRecorder
from corral.objects import Obj

log = logging.getLogger(__name__)

# The kubelet's event broadcaster holds as many.
QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class PendingEvent:
    obj: Obj
    kind: str
    reason: str
    message: str
    field_path: str


class EventQueue:
    def __init__(self, recorder: EventRecorder, limit: int = QUEUE_LIMIT) -> None:
        self.recorder = recorder
        self._queue: asyncio.Queue[PendingEvent] = asyncio.Queue(maxsize=limit)
        self.dropped = 0

    def put(self, obj: Obj, kind: str, reason: str, message: str, field_path: str = "") -> None:
        try:
            self._queue.put_nowait(PendingEvent(obj, kind, reason, message, field_path))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "%d events dropped: the control plane records them too slowly", self.dropped
                )

    async def run(self) -> None:
        """Record the queued Events one after another, until cancelled."""
        while True:
            pending = await self._queue.get()
            # record() never raises: a failed Event is logged and the next one goes.
            await self.recorder.record(
                pending.obj, pending.kind, pending.reason, pending.message, pending.field_path
            )

    async def drain(self, timeout: float) -> None:
        """Record what is queued, for at most ``timeout`` seconds (the agent is stopping)."""
        try:
            async with asyncio.timeout(timeout):
                while not self._queue.empty():
                    pending = self._queue.get_nowait()
                    await self.recorder.record(
                        pending.obj,
                        pending.kind,
                        pending.reason,
                        pending.message,
                        pending.field_path,
                    )
        except TimeoutError:
            log.info("%d events not recorded: the agent is stopping", self._queue.qsize())
