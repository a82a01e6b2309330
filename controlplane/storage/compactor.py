"""Compaction: keep a bounded window of etcd history, as the Kubernetes API server does.

Each interval the compactor compacts to the revision it saw one interval
earlier, so clients always have at least one interval in which to resume a
watch, and etcd's history does not grow without end.
"""

from __future__ import annotations

import logging

from controlplane.storage.etcd import EtcdClient, EtcdError
from corral.clock import Clock

log = logging.getLogger(__name__)


class Compactor:
    def __init__(self, client: EtcdClient, clock: Clock, interval: float) -> None:
        self.etcd = client
        self.clock = clock
        self.interval = interval
        self.compacted = 0

    async def run(self) -> None:
        previous = 0
        while True:
            await self.clock.sleep(self.interval)
            try:
                if previous > self.compacted:
                    await self.etcd.compact(previous)
                    self.compacted = previous
                    log.info("compacted etcd history up to revision %d", previous)
                previous = await self.etcd.current_revision()
            except EtcdError as error:
                log.warning("compaction skipped: %s", error)
