"""Expiring keys: etcd leases shared between writes, as kube-apiserver's lease manager does.

Events are written with a time to live (``--event-ttl``, one hour by
default) so that a stream of them cannot fill etcd. A lease per write would
double the writes and leave etcd one lease per Event to expire; instead a
lease is reused by every write for a short window (5 % of the TTL, at most
a minute) and granted that much longer, so a key lives between its TTL and
its TTL plus the window. A lease also carries at most a bounded number of
keys, so that its expiry deletes a bounded batch.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from controlplane.storage.etcd import EtcdClient
from corral.clock import Clock

REUSE_FRACTION = 0.05
REUSE_MAX_SECONDS = 60.0
MAX_KEYS_PER_LEASE = 1000


@dataclass(slots=True)
class _Lease:
    id: int
    expires_at: float
    keys: int


class LeaseManager:
    def __init__(self, client: EtcdClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock
        self._current: dict[float, _Lease] = {}
        # Two writes at once must not each grant a lease of their own.
        self._lock = asyncio.Lock()

    async def lease_for(self, ttl_seconds: float) -> int:
        """A lease that outlives ``ttl_seconds`` from now by less than the reuse window."""
        reuse = min(ttl_seconds * REUSE_FRACTION, REUSE_MAX_SECONDS)
        async with self._lock:
            now = self.clock.monotonic()
            lease = self._current.get(ttl_seconds)
            if (
                lease is not None
                and lease.expires_at - now >= ttl_seconds
                and lease.keys < MAX_KEYS_PER_LEASE
            ):
                lease.keys += 1
                return lease.id
            granted = math.ceil(ttl_seconds + reuse)
            lease_id = await self.client.grant_lease(granted)
            self._current[ttl_seconds] = _Lease(lease_id, now + granted, 1)
            return lease_id
