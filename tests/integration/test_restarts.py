"""Crashes and outages: no acknowledged write is lost, no event is missed or repeated."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from controlplane.storage.etcd import EtcdClient, prefix_end
from corral.api.errors import ApiError
from corral.client.rest import Client, ConnectionFailed
from tests.conftest import LocalCluster
from tests.integration.test_crud import NAMESPACES, PODS, pod


async def _namespace(client: Client, name: str) -> None:
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


async def _retry(operation: Any, attempts: int = 200) -> Any:
    """Keep trying through a restart: connection errors and 503s are expected then."""
    for _ in range(attempts):
        try:
            return await operation()
        except ConnectionFailed:
            pass
        except ApiError as error:
            if error.code != 503:
                raise
        await asyncio.sleep(0.05)
    raise AssertionError("the API never came back")


async def _etcd_history(endpoint: str, prefix: bytes, after: int) -> list[tuple[str, str, str]]:
    """Every change under ``prefix`` after revision ``after``, straight from etcd's history."""
    client = EtcdClient([endpoint])
    try:
        until = await client.current_revision()
        events: list[tuple[str, str, str]] = []
        if until <= after:
            return events
        async with client.watch(prefix, prefix_end(prefix), start_revision=after + 1) as watch:
            async for batch in watch:
                for event in batch.events:
                    kv = event.kv
                    name = kv.key.decode().rsplit("/", 1)[-1]
                    if event.kind == "DELETE":
                        kind = "DELETED"
                    elif kv.create_revision == kv.mod_revision:
                        kind = "ADDED"
                    else:
                        kind = "MODIFIED"
                    events.append((kind, name, str(kv.mod_revision)))
                if events and int(events[-1][2]) >= until:
                    return events
    finally:
        await client.close()
    return events


async def test_watch_across_apiserver_restart(cluster_factory: Any) -> None:
    local: LocalCluster = cluster_factory()
    assert local.etcd is not None
    async with Client(local.client_config()) as client:
        await _namespace(client, "w")
        start = (await client.create(PODS, pod("seed"), "w"))["metadata"]["resourceVersion"]
        stop = asyncio.Event()

        async def writer() -> None:
            """Creates, label changes and deletes, retried through the restarts.

            A write whose response was lost to a crash may already have
            happened, so a retried delete may find nothing: that is fine, since
            the expected events come from etcd's history, not from this list.
            """
            rng = random.Random(7)
            live: list[str] = []
            i = 0
            while not stop.is_set() or i < 60:
                i += 1
                try:
                    if live and rng.random() < 0.3:
                        name = live.pop(rng.randrange(len(live)))
                        await _retry(lambda n=name: client.delete(PODS, n, "w"))
                    elif live and rng.random() < 0.5:
                        name = rng.choice(live)
                        await _retry(
                            lambda n=name, v=i: client.patch(
                                PODS, n, {"metadata": {"labels": {"v": str(v)}}}, "w"
                            )
                        )
                    else:
                        name = f"p{i}"
                        live.append(name)
                        await _retry(lambda n=name: client.create(PODS, pod(n), "w"))
                except ApiError as error:
                    if error.code not in (404, 409):
                        raise

        received: list[tuple[str, str, str]] = []
        progress = asyncio.Event()

        async def watcher() -> None:
            """Watch from ``start``, resuming from the last version seen after every break."""
            resume = start
            async with Client(local.client_config()) as watch_client:
                while True:
                    try:
                        async for event in watch_client.watch(
                            PODS, "w", resource_version=resume, timeout_seconds=30
                        ):
                            obj = event["object"]
                            resume = obj["metadata"]["resourceVersion"]
                            received.append((event["type"], obj["metadata"]["name"], resume))
                            progress.set()
                    except ConnectionFailed:
                        await asyncio.sleep(0.05)

        watch_task = asyncio.create_task(watcher())
        write_task = asyncio.create_task(writer())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(local.restart_apiserver)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(local.restart_apiserver, kill=True)
        stop.set()
        await asyncio.wait_for(write_task, 60)
        prefix = b"/registry/pods/w/"
        expected = await _etcd_history(local.etcd.endpoint, prefix, int(start))
        async with asyncio.timeout(60):
            while len(received) < len(expected):
                progress.clear()
                await progress.wait()
        watch_task.cancel()
        assert len(expected) > 60
        assert received == expected


async def test_acknowledged_creates_survive_sigkill(cluster_factory: Any) -> None:
    local: LocalCluster = cluster_factory()
    total, writers = 2000, 8
    acknowledged: set[str] = set()
    quarter_done = asyncio.Event()
    async with Client(local.client_config()) as client:
        await _namespace(client, "k")

    async def create_range(index: int) -> None:
        async with Client(local.client_config()) as c:
            for n in range(index, total, writers):
                name = f"p{n}"
                while True:
                    try:
                        await c.create(PODS, pod(name), "k")
                        acknowledged.add(name)
                        if len(acknowledged) >= total // 4:
                            quarter_done.set()
                        break
                    except ConnectionFailed:
                        await asyncio.sleep(0.05)
                    except ApiError as error:
                        if error.code == 409:
                            break  # created before the crash, but never acknowledged
                        if error.code != 503:
                            raise
                        await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(create_range(i)) for i in range(writers)]
    await asyncio.wait_for(quarter_done.wait(), 120)
    await asyncio.to_thread(local.restart_apiserver, kill=True)
    await asyncio.wait_for(asyncio.gather(*tasks), 300)

    async with Client(local.client_config()) as c:
        listed = await c.list(PODS, "k")
    names = [p["metadata"]["name"] for p in listed["items"]]
    uids = [p["metadata"]["uid"] for p in listed["items"]]
    assert acknowledged <= set(names)
    assert len(names) == len(set(names)) == total
    assert len(uids) == len(set(uids))


async def test_etcd_outage_gives_503_then_recovers(cluster_factory: Any) -> None:
    local: LocalCluster = cluster_factory()
    assert local.etcd is not None
    async with Client(local.client_config(), timeout=30) as client:
        await _namespace(client, "o")
        await client.create(PODS, pod("before"), "o")
        local.etcd.stop()
        for operation in (
            lambda: client.get(PODS, "before", "o"),
            lambda: client.list(PODS, "o"),
            lambda: client.create(PODS, pod("during"), "o"),
            lambda: client.patch(PODS, "before", {"metadata": {"labels": {"x": "y"}}}, "o"),
        ):
            with pytest.raises(ApiError) as caught:
                await operation()
            assert caught.value.code == 503
            assert caught.value.reason == "ServiceUnavailable"
        local.etcd.start()
        await asyncio.to_thread(local.etcd.wait_ready)
        await _retry(lambda: client.create(PODS, pod("after"), "o"))
        names = [p["metadata"]["name"] for p in (await client.list(PODS, "o"))["items"]]
        assert names == ["after", "before"]
        patched = await client.patch(PODS, "before", {"metadata": {"labels": {"x": "y"}}}, "o")
        assert patched["metadata"]["labels"]["x"] == "y"
