"""Optimistic concurrency: read-modify-write races lose nothing."""

from __future__ import annotations

import asyncio

from corral.api.errors import ApiError
from corral.client.rest import Client
from tests.conftest import LocalCluster
from tests.integration.test_crud import RCS, rc

CLIENTS = 20
INCREMENTS = 50
KEY = "corral.test/counter"


async def test_concurrent_increments_are_exact(cluster: LocalCluster, namespace: str) -> None:
    async with Client(cluster.client_config(namespace)) as setup:
        body = rc("counter")
        body["metadata"]["annotations"] = {KEY: "0"}
        await setup.create(RCS, body, namespace)
    conflicts = 0

    async def worker() -> None:
        nonlocal conflicts
        async with Client(cluster.client_config(namespace)) as client:
            done = 0
            while done < INCREMENTS:
                current = await client.get(RCS, "counter", namespace)
                annotations = current["metadata"]["annotations"]
                annotations[KEY] = str(int(annotations[KEY]) + 1)
                try:
                    await client.replace(RCS, current, namespace)
                except ApiError as error:
                    assert error.code == 409, error
                    conflicts += 1
                    continue
                done += 1

    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    async with Client(cluster.client_config(namespace)) as check:
        final = await check.get(RCS, "counter", namespace)
    assert final["metadata"]["annotations"][KEY] == str(CLIENTS * INCREMENTS)
    # The race is real: with 20 writers some of them must have lost.
    assert conflicts > 0
