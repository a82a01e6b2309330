"""``corral up --publish``'s relay outlives the host it was using.

Two simulated hosts each serve the same port, as every host serves every
NodePort. The relay is given both; when the one it uses dies, whether it
refuses connections (its server gone) or swallows them (its traffic
dropped, as when a host's link is cut), the next connection goes through
the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nodeagent.network.testbed import (
    Testbed,
    cleanup,
    create_hosts,
    namespaces,
    run,
    start_http_server,
    stop,
)
from nodeagent.testbed import Relay

PREFIX = "crl-rf"
PORT = 8080


@pytest.fixture
async def bed() -> AsyncIterator[Testbed]:
    before = namespaces()
    await cleanup(prefix=PREFIX)
    built = await create_hosts(2, PREFIX)
    try:
        yield built
    finally:
        await cleanup(built, PREFIX)
        assert namespaces() == before


async def get_through(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(20):
            response = await reader.read()
    finally:
        writer.close()
    return response.split(b"\r\n\r\n", 1)[1].decode().split()[0] if response else ""


async def test_the_relay_moves_to_a_live_host_when_its_host_dies(bed: Testbed) -> None:
    first, second = bed.hosts
    servers = {
        first.name: await start_http_server(first.name, "first", PORT),
        second.name: await start_http_server(second.name, "second", PORT),
    }
    relay = Relay(
        [(first.name, (first.ip, PORT)), (second.name, (second.ip, PORT))],
        connect_timeout=1.0,
        max_connections=8,
    )
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await get_through(port) == "first"

        # The first host swallows its traffic: a connect there never completes.
        rules = (
            "table inet crl_relay_test {\n"
            "  chain input { type filter hook input priority 0; tcp dport 8080 drop; }\n"
            "}\n"
        )
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", first.name, "nft", "-f", "-",
            stdin=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await process.communicate(rules.encode())
        assert process.returncode == 0
        assert await get_through(port) == "second"
        assert relay.preferred == 1
        assert await get_through(port) == "second"

        # Now the second host's server is gone too, and the first answers again.
        await run(
            "ip", "netns", "exec", first.name, "nft", "delete", "table", "inet", "crl_relay_test"
        )  # fmt: skip
        await stop(servers.pop(second.name))
        assert await get_through(port) == "first"
        assert relay.preferred == 0
    finally:
        server.close()
        await server.wait_closed()
        for process in servers.values():
            await stop(process)
