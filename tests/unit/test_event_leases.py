"""The lease manager: one lease shared by the writes of a short window, as kube-apiserver's."""

from __future__ import annotations

from controlplane.storage.leases import MAX_KEYS_PER_LEASE, LeaseManager
from corral.clock import ManualClock


class Grants:
    """Stands in for etcd's LeaseGrant: hands out ids and remembers each TTL."""

    def __init__(self) -> None:
        self.ttls: list[int] = []

    async def grant_lease(self, ttl_seconds: int) -> int:
        self.ttls.append(ttl_seconds)
        return len(self.ttls)


async def test_writes_within_the_reuse_window_share_a_lease_and_later_ones_get_a_new_one() -> None:
    clock = ManualClock()
    etcd = Grants()
    leases = LeaseManager(etcd, clock)  # type: ignore[arg-type]
    first = await leases.lease_for(3600)
    # The window is 5 % of an hour, capped at a minute: the lease outlives
    # the TTL by that much, so every key sharing it lives at least the TTL.
    assert etcd.ttls == [3660]
    clock.advance(59)
    assert await leases.lease_for(3600) == first
    clock.advance(2)
    second = await leases.lease_for(3600)
    assert second != first and etcd.ttls == [3660, 3660]


async def test_a_short_ttl_reuses_for_a_twentieth_of_it() -> None:
    clock = ManualClock()
    etcd = Grants()
    leases = LeaseManager(etcd, clock)  # type: ignore[arg-type]
    first = await leases.lease_for(20)
    assert etcd.ttls == [21]
    clock.advance(0.9)
    assert await leases.lease_for(20) == first
    clock.advance(0.2)
    assert await leases.lease_for(20) != first


async def test_a_lease_carries_a_bounded_number_of_keys() -> None:
    leases = LeaseManager(Grants(), ManualClock())  # type: ignore[arg-type]
    ids = {await leases.lease_for(3600) for _ in range(MAX_KEYS_PER_LEASE + 1)}
    assert len(ids) == 2
