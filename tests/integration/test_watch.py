"""WATCH: ordered, complete, resumable, and 410 Gone once history is compacted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controlplane.storage.etcd import EtcdClient
from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.objects import Obj
from tests.integration.test_crud import NAMESPACES, PODS, pod


async def collect(client: Client, namespace: str, count: int, **kwargs: Any) -> list[Obj]:
    events: list[Obj] = []

    async def run() -> None:
        async for event in client.watch(PODS, namespace, **kwargs):
            events.append(event)
            if len(events) >= count:
                return

    await asyncio.wait_for(run(), 20)
    return events


async def test_watch_from_version_gets_exactly_later_events(client: Client, namespace: str) -> None:
    first = await client.create(PODS, pod("a"), namespace)
    start = first["metadata"]["resourceVersion"]
    await client.patch(PODS, "a", {"metadata": {"labels": {"x": "1"}}}, namespace)
    await client.create(PODS, pod("b"), namespace)
    await client.delete(PODS, "a", namespace)
    events = await collect(client, namespace, 3, resource_version=start)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(start)


async def test_watch_without_version_starts_with_current_state(
    client: Client, namespace: str
) -> None:
    await client.create(PODS, pod("a"), namespace)
    await client.create(PODS, pod("b"), namespace)
    events = await collect(client, namespace, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


async def test_watch_with_selector_sees_objects_leave_and_enter(
    client: Client, namespace: str
) -> None:
    created = await client.create(PODS, pod("a", app="web"), namespace)
    start = created["metadata"]["resourceVersion"]

    async def change() -> None:
        await client.patch(PODS, "a", {"metadata": {"labels": {"app": "db"}}}, namespace)
        await client.patch(PODS, "a", {"metadata": {"labels": {"app": "web"}}}, namespace)

    await change()
    events = await collect(client, namespace, 2, resource_version=start, label_selector="app=web")
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]


async def test_initial_events_end_with_a_bookmark(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("a"), namespace)
    events = await collect(client, namespace, 2, send_initial_events=True, allow_bookmarks=True)
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations["k8s.io/initial-events-end"] == "true"


async def test_many_watchers_share_one_stream(client: Client, namespace: str) -> None:
    created = await client.create(PODS, pod("seed"), namespace)
    start = created["metadata"]["resourceVersion"]
    watchers = [
        asyncio.create_task(collect(client, namespace, 5, resource_version=start))
        for _ in range(20)
    ]
    await asyncio.sleep(0.2)
    for i in range(5):
        await client.create(PODS, pod(f"p{i}"), namespace)
    results = await asyncio.gather(*watchers)
    for events in results:
        assert [e["object"]["metadata"]["name"] for e in events] == [f"p{i}" for i in range(5)]


async def test_compacted_version_is_gone(cluster_factory: Any) -> None:
    local = cluster_factory()
    async with Client(local.client_config()) as c:
        await c.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}}
        )
        first = await c.create(PODS, pod("a"), "w")
        for i in range(3):
            await c.create(PODS, pod(f"b{i}"), "w")
        etcd = EtcdClient([local.etcd.endpoint])
        try:
            await etcd.compact(await etcd.current_revision())
        finally:
            await etcd.close()
        # Restart so that the old version is outside the watch cache's window too.
        local.restart_apiserver()
        with pytest.raises(ApiError) as caught:
            async for _ in c.watch(
                PODS, "w", resource_version=first["metadata"]["resourceVersion"]
            ):
                break
        assert caught.value.code == 410
        assert caught.value.reason == "Expired"
