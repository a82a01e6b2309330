"""Events expire: written with an etcd lease of --event-ttl, as kube-apiserver writes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from controlplane.storage.etcd import EtcdClient, prefix_end
from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corral.objects import Obj
from tests.conftest import LocalCluster, unique_name

EVENTS = REGISTRY.by_kind("v1", "Event")
CONFIGMAPS = REGISTRY.by_kind("v1", "ConfigMap")
assert EVENTS is not None and CONFIGMAPS is not None
TTL = 5


def _event(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Tested",
        "message": "an event that must expire",
        "type": "Normal",
    }


async def _count(etcd: EtcdClient, prefix: bytes) -> int:
    """Keys under ``prefix``, read from etcd itself rather than through the API's cache."""
    return (await etcd.range(prefix, prefix_end(prefix), count_only=True)).count


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "still there"
        await asyncio.sleep(0.5)


async def test_events_older_than_the_ttl_are_gone_from_etcd_and_others_stay(
    cluster_factory: Callable[..., LocalCluster],
) -> None:
    local = cluster_factory(apiserver_args=("--event-ttl", f"{TTL}s"))
    assert local.etcd is not None
    etcd = EtcdClient([local.etcd.endpoint])
    prefix = b"/registry/events/default/"
    try:
        async with Client(local.client_config()) as client:
            names = [unique_name("expiring") for _ in range(20)]
            for name in names:
                await client.create(EVENTS, _event(name), "default")
            kept = unique_name("kept")
            await client.create(
                CONFIGMAPS,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": kept}},
                "default",
            )
            assert await _count(etcd, prefix) == 20
            # An update renews an Event's lease, as it does in Kubernetes.
            renewed = await client.get(EVENTS, names[0], "default")
            renewed["count"] = 2
            await client.replace(EVENTS, renewed, "default")

            async def gone() -> bool:
                return await _count(etcd, prefix) == 0

            await _until(gone, timeout=TTL * 4 + 10)
            assert (await client.get(CONFIGMAPS, kept, "default"))["metadata"]["name"] == kept
            listed = await client.list(EVENTS, "default")
            assert not [e for e in listed["items"] if e["metadata"]["name"] in names]
    finally:
        await etcd.close()


async def test_a_stream_of_events_keeps_a_bounded_count_in_etcd(
    cluster_factory: Callable[..., LocalCluster],
) -> None:
    local = cluster_factory(apiserver_args=("--event-ttl", f"{TTL}s"))
    assert local.etcd is not None
    etcd = EtcdClient([local.etcd.endpoint])
    prefix = b"/registry/events/default/"
    written = 0
    highest = 0
    try:
        async with Client(local.client_config()) as client:
            # Three TTLs' worth of events at about 10 a second: without expiry
            # every one of them would still be in etcd at the end.
            deadline = time.monotonic() + TTL * 3
            while time.monotonic() < deadline:
                await client.create(EVENTS, _event(unique_name("stream")), "default")
                written += 1
                if written % 10 == 0:
                    highest = max(highest, await _count(etcd, prefix))
                await asyncio.sleep(0.1)
        # A key lives its TTL plus the lease's reuse window (5 %), and etcd
        # checks expiry every half second: two TTLs' worth is a generous bound
        # that a store keeping everything would still break.
        rate = written / (TTL * 3)
        assert highest <= rate * TTL * 2, (highest, written)
        assert written > highest
    finally:
        await etcd.close()
