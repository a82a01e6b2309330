"""Informers, leader election and events against a real API server."""

from __future__ import annotations

import asyncio

import prometheus_client

from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corral.events import EventRecorder
from corral.informer import Informer, object_key, wait_synced
from corral.leaderelection import ElectionConfig, LeaderElector
from tests.conftest import LocalCluster
from tests.integration.test_crud import PODS, pod
from tests.support import eventually

EVENTS = REGISTRY.resolve("events")


async def test_informer_lists_then_follows(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("before"), namespace)
    informer = Informer(client, PODS, namespace=namespace)
    informer.add_index("app", lambda o: [o["metadata"].get("labels", {}).get("app", "")])
    seen: list[tuple[str, str]] = []
    informer.add_handlers(
        on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
        on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
        on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    await wait_synced([informer], 10)
    assert seen == [("add", "before")]
    await client.create(PODS, pod("after", app="db"), namespace)
    await client.patch(PODS, "before", {"metadata": {"labels": {"x": "1"}}}, namespace)
    await client.delete(PODS, "after", namespace)
    await eventually(lambda: len(seen) >= 4, message="four informer events")
    stop.set()
    await asyncio.wait_for(task, 10)
    assert seen == [("add", "before"), ("add", "after"), ("update", "before"), ("delete", "after")]
    assert [o["metadata"]["name"] for o in informer.by_index("app", "web")] == ["before"]
    assert informer.get(f"{namespace}/before") is not None
    assert object_key(informer.items()[0]) == f"{namespace}/before"


async def test_an_informer_cancelled_mid_watch_ends_cancelled_not_broken(
    client: Client, namespace: str
) -> None:
    # A controller manager that loses its lease cancels its informers while
    # each waits for its next watch event; that once ended in
    # "aclose(): asynchronous generator is already running".
    informer = Informer(client, PODS, namespace=namespace)
    task = asyncio.create_task(informer.run(asyncio.Event()))
    await wait_synced([informer], 10)
    await asyncio.sleep(0.2)  # into the watch's wait for an event
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done, "the informer did not end once cancelled"
    assert task.cancelled(), task.exception()


async def test_only_one_elector_leads(cluster: LocalCluster, namespace: str) -> None:
    leading: list[str] = []
    stops = {name: asyncio.Event() for name in ("a", "b")}

    async def candidate(name: str) -> None:
        async with Client(cluster.client_config()) as c:
            elector = LeaderElector(
                c,
                ElectionConfig(
                    name="election-test",
                    identity=name,
                    namespace=namespace,
                    lease_duration=3,
                    renew_deadline=2,
                    retry_period=0.2,
                ),
            )

            async def lead() -> None:
                leading.append(name)
                await asyncio.Event().wait()

            await elector.run(lead, stops[name])

    tasks = {name: asyncio.create_task(candidate(name)) for name in stops}
    await eventually(lambda: leading, message="a leader")
    await asyncio.sleep(1.0)
    assert len(leading) == 1
    first = leading[0]
    other = "b" if first == "a" else "a"
    stops[first].set()  # a clean stop hands the lease over at once
    await asyncio.wait_for(tasks[first], 10)
    await eventually(lambda: len(leading) >= 2, message="the standby to take over")
    assert leading == [first, other]
    assert _status("election-test") == 1.0  # the metric the HA clock fault test samples
    stops[other].set()
    await asyncio.wait_for(tasks[other], 10)
    assert _status("election-test") == 0.0


def _status(lease: str) -> float | None:
    return prometheus_client.REGISTRY.get_sample_value(
        "leader_election_master_status", {"name": lease}
    )


async def test_repeated_events_are_counted(client: Client, namespace: str) -> None:
    created = await client.create(PODS, pod("noisy"), namespace)
    recorder = EventRecorder(client, "test-component", host="node-a")
    for _ in range(3):
        await recorder.record(created, "Warning", "BackOff", "Back-off restarting container")
    await recorder.record(created, "Normal", "Pulled", "Image is present")
    assert EVENTS is not None
    selector = f"involvedObject.name=noisy,involvedObject.namespace={namespace}"
    listed = await client.list(EVENTS, namespace, field_selector=selector)
    by_reason = {e["reason"]: e for e in listed["items"]}
    assert by_reason["BackOff"]["count"] == 3
    assert by_reason["Pulled"]["count"] == 1
    assert by_reason["BackOff"]["source"] == {"component": "test-component", "host": "node-a"}
