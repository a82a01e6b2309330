"""The YAML alias bomb (CVE-2019-11253) and other bodies that decode dear.

Against a real API server over HTTPS, as the cluster administrator. Before
the fix, 617 bytes of anchors nested seven deep under metadata.managedFields
took seconds and a gigabyte of memory in the API server, and the event loop
decoded every body itself, so /healthz on another connection stalled for as
long as any decode took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import LocalCluster, unique_name

pytestmark = pytest.mark.integration

YAML = "application/yaml"
Answer = tuple[int, Any]


def alias_bomb(name: str, levels: int = 7) -> bytes:
    """A ConfigMap whose managedFields name each level ten times from the next."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", f"  name: {name}"]
    lines.append("  managedFields:")
    lines.append('  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]')
    for level in range(1, levels + 1):
        lines.append(f"  - &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


def heavy_yaml(items: int) -> bytes:
    """No aliases, but hundreds of thousands of nodes: seconds of CPU to decode."""
    return b"[" + b"~, " * items + b"~]\n"


@pytest.fixture
async def admin(cluster: LocalCluster) -> AsyncIterator[aiohttp.ClientSession]:
    # One connection per request: the attack runs on connections of its own.
    connector = aiohttp.TCPConnector(ssl=cluster.ssl_context(), limit=0, force_close=True)
    async with aiohttp.ClientSession(cluster.url, connector=connector) as session:
        yield session


async def send(
    session: aiohttp.ClientSession, method: str, path: str, body: bytes, content_type: str
) -> Answer:
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    async with session.request(
        method, path, data=body, headers=headers, timeout=timeout
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_the_alias_bomb_is_refused_and_health_answers_throughout(
    cluster: LocalCluster, admin: aiohttp.ClientSession, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    bomb = alias_bomb("lol")
    assert len(bomb) < 1024

    # The health checker's own connection, opened before the attack starts.
    probe = aiohttp.TCPConnector(ssl=cluster.ssl_context(), limit=1)
    async with aiohttp.ClientSession(cluster.url, connector=probe) as health:
        async with health.get("/healthz") as response:
            assert response.status == 200

        heavy = [
            asyncio.create_task(send(admin, "POST", path, heavy_yaml(150_000), YAML))
            for _ in range(3)
        ]
        bombs = [asyncio.create_task(send(admin, "POST", path, bomb, YAML)) for _ in range(4)]
        attack = [*heavy, *bombs]

        waits: list[float] = []
        while not all(task.done() for task in heavy):
            started = time.monotonic()
            # The one wall-clock bound here, the issue's: health answers within 1 s.
            async with health.get("/healthz", timeout=aiohttp.ClientTimeout(total=1.0)) as response:
                assert response.status == 200
                assert await response.text() == "ok"
            waits.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
        answers = await asyncio.gather(*attack)

    # The decoding took long enough that health was asked while it ran.
    assert len(waits) >= 3, waits
    print(f"\nFIGURE yaml attack: {len(waits)} health checks, slowest {max(waits) * 1000:.0f} ms")

    for code, status in answers[len(heavy) :]:
        assert code == 400, status
        assert status["kind"] == "Status" and status["reason"] == "BadRequest"
        assert "aliases are not allowed" in status["message"]
    for code, status in answers[: len(heavy)]:
        # A list is no ConfigMap: refused, but only once it was decoded.
        assert code == 400, status
        assert "aliases" not in status["message"]
    async with admin.get(f"{path}/lol") as response:
        assert response.status == 404


async def test_plain_yaml_still_creates_and_reads_back(
    cluster: LocalCluster, admin: aiohttp.ClientSession, namespace: str
) -> None:
    name = unique_name("plain")
    body = (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata:\n  name: {name}\n  labels: {{app: yaml}}\n"
        "data:\n  script: |\n    echo one\n    echo two\n  when: '2024-01-01'\n"
    ).encode()
    code, created = await send(
        admin, "POST", f"/api/v1/namespaces/{namespace}/configmaps", body, YAML
    )
    assert code == 201, created
    assert created["data"] == {"script": "echo one\necho two\n", "when": "2024-01-01"}
    assert created["metadata"]["labels"] == {"app": "yaml"}

    update = body.replace(b"echo two", b"echo three")
    update = update.replace(
        b"metadata:\n",
        f"metadata:\n  resourceVersion: '{created['metadata']['resourceVersion']}'\n".encode(),
    )
    code, updated = await send(
        admin, "PUT", f"/api/v1/namespaces/{namespace}/configmaps/{name}", update, YAML
    )
    assert code == 200, updated
    assert updated["data"]["script"] == "echo one\necho three\n"


async def test_deep_yaml_is_a_400_not_a_500(
    cluster: LocalCluster, admin: aiohttp.ClientSession, namespace: str
) -> None:
    # Two bytes a level: before, the pure-Python loader hit the recursion limit (a 500).
    body = (
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  k:\n    "
        + b"- " * 900
        + b"x\n"
    )
    code, status = await send(
        admin, "POST", f"/api/v1/namespaces/{namespace}/configmaps", body, YAML
    )
    assert code == 400, status
    assert "levels" in status["message"]


async def test_a_body_under_the_limit_that_decodes_over_it_is_413(
    cluster: LocalCluster, admin: aiohttp.ClientSession, namespace: str
) -> None:
    # JSON writes 1e15 back as 1000000000000000.0: 1.2 MB of text, 3.8 MB decoded,
    # over the 3 MiB limit the raw body is held to; no model is built from it.
    numbers = b"[" + b"1e15," * 200_000 + b"1e15]"
    body = b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "wide"}, "extra": '
    body += numbers + b"}"
    assert len(body) < 3 * 1024 * 1024 // 2
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    code, status = await send(admin, "POST", path, body, "application/json")
    assert code == 413, status
    assert status["reason"] == "RequestEntityTooLarge"
