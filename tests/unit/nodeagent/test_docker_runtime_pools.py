"""The Docker runtime's HTTP layer, caches and errors, against a stand-in dockerd.

The stand-in is an aiohttp server on a Unix socket answering the few Engine
API paths under test, so the real client code (connections, JSON, stream
frames, errors) runs; tests/e2e runs the same runtime against real dockerd.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from nodeagent.runtime.base import ImageAuth, ImagePullError, RuntimeUnavailable
from nodeagent.runtime.docker import DockerRuntime
from nodeagent.runtime.dockerapi import demux, registry_auth


def _frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


class FakeDockerd:
    def __init__(self) -> None:
        self.users = {"app:1": "1000"}
        self.inspected: list[str] = []
        self.pulls: list[dict[str, str]] = []
        self.finished = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/images/{name:.+}/json", self.inspect_image)
        app.router.add_post("/images/create", self.pull)
        app.router.add_get("/containers/{id}/json", self.inspect_container)
        app.router.add_get("/containers/{id}/logs", self.logs)
        app.router.add_post("/containers/{id}/exec", self.exec_create)
        app.router.add_post("/exec/{id}/start", self.exec_start)
        app.router.add_get("/exec/{id}/json", self.exec_inspect)
        app.router.add_get("/events", self.events)
        return app

    async def inspect_image(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.inspected.append(name)
        if name not in self.users:
            return web.json_response({"message": f"No such image: {name}"}, status=404)
        return web.json_response({"Id": "sha256:abc", "Config": {"User": self.users[name]}})

    async def pull(self, request: web.Request) -> web.StreamResponse:
        self.pulls.append({**request.query, "auth": request.headers.get("X-Registry-Auth", "")})
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b'{"status":"Pulling"}\r\n{"error":"manifest unknown",')
        await response.write(b'"errorDetail":{"message":"manifest unknown"}}\r\n')
        return response

    async def inspect_container(self, request: web.Request) -> web.Response:
        if request.match_info["id"] == "gone":
            return web.json_response({"message": "No such container"}, status=404)
        return web.json_response(
            {
                "Id": request.match_info["id"],
                "Config": {"Labels": {"io.corral.container.name": "web"}, "Tty": False},
                "State": {"Status": "exited", "ExitCode": 3, "Pid": 0},
            }
        )

    async def logs(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        # A frame cut across two writes must still come out whole.
        data = _frame(1, b"out\n") + _frame(2, b"err\n")
        await response.write(data[:5])
        await response.write(data[5:])
        if request.query.get("follow") == "1":
            await self.finished.wait()  # a followed log stays open until the test ends
        return response

    async def exec_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"Id": "exec-" + "-".join(body["Cmd"])}, status=201)

    async def exec_start(self, request: web.Request) -> web.Response:
        return web.Response(body=_frame(1, b"hello ") + _frame(2, b"world"))

    async def exec_inspect(self, request: web.Request) -> web.Response:
        return web.json_response({"ExitCode": 7})

    async def events(self, request: web.Request) -> web.StreamResponse:
        filters = json.loads(request.query["filters"])
        assert filters["label"] == ["io.corral.node=node-1"]
        response = web.StreamResponse()
        await response.prepare(request)
        for action, uid in (("start", "u1"), ("exec_start: sh", "u2"), ("die", "u3-é")):
            event = {"Type": "container", "Action": action}
            event["Actor"] = {"Attributes": {"io.corral.pod.uid": uid}}
            data = json.dumps(event, ensure_ascii=False).encode() + b"\n"
            # Cut inside the two bytes of é, as a chunk boundary may fall.
            cut = data.find("é".encode()) + 1 if "é" in uid else len(data) // 2
            await response.write(data[:cut])
            await response.write(data[cut:])
        return response


@pytest.fixture
async def dockerd(tmp_path: Path) -> AsyncIterator[tuple[FakeDockerd, str]]:
    fake = FakeDockerd()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    path = str(tmp_path / "docker.sock")
    site = web.UnixSite(runner, path)
    await site.start()
    try:
        yield fake, f"unix://{path}"
    finally:
        fake.finished.set()
        await runner.cleanup()


@pytest.fixture
async def runtime(dockerd: tuple[FakeDockerd, str]) -> AsyncIterator[DockerRuntime]:
    made = DockerRuntime(dockerd[1], "node-1")
    try:
        yield made
    finally:
        await made.close()


async def test_an_images_user_is_read_once_not_for_every_container(
    dockerd: tuple[FakeDockerd, str], runtime: DockerRuntime
) -> None:
    fake, _ = dockerd
    assert [await runtime.image_user("app:1") for _ in range(5)] == ["1000"] * 5
    assert fake.inspected == ["app:1"]


async def test_a_missing_image_is_asked_again_and_a_pull_forgets_the_user(
    dockerd: tuple[FakeDockerd, str], runtime: DockerRuntime
) -> None:
    fake, _ = dockerd
    assert await runtime.image_user("new:1") == ""
    fake.users["new:1"] = "nobody"
    # Not remembered as userless: once it is there, its user is read.
    assert await runtime.image_user("new:1") == "nobody"
    fake.users["new:1"] = "root"
    assert await runtime.image_user("new:1") == "nobody"
    with pytest.raises(ImagePullError):
        await runtime.pull("new:1", None)
    assert await runtime.image_user("new:1") == "root"
    assert fake.inspected == ["new:1", "new:1", "new:1"]


async def test_an_image_reference_with_a_registry_and_path_reaches_dockerd_whole(
    dockerd: tuple[FakeDockerd, str], runtime: DockerRuntime
) -> None:
    fake, _ = dockerd
    fake.users["registry.local:5000/team/app:2"] = ""
    assert await runtime.image_present("registry.local:5000/team/app:2")
    assert not await runtime.image_present("registry.local:5000/team/other:2")


async def test_a_pull_that_fails_inside_its_progress_stream_is_an_image_pull_error(
    dockerd: tuple[FakeDockerd, str], runtime: DockerRuntime
) -> None:
    fake, _ = dockerd
    with pytest.raises(ImagePullError) as failure:
        await runtime.pull("registry.local/app:9", ImageAuth("me", "secret", "registry.local"))
    assert failure.value.reason == "ErrImagePull"
    assert "manifest unknown" in failure.value.message
    assert fake.pulls[0]["fromImage"] == "registry.local/app"
    assert fake.pulls[0]["tag"] == "9"
    assert fake.pulls[0]["auth"] == registry_auth("me", "secret")


async def test_inspect_of_a_removed_container_is_none_and_of_one_there_a_record(
    runtime: DockerRuntime,
) -> None:
    assert await runtime.inspect("gone") is None
    record = await runtime.inspect("abc")
    assert record is not None
    assert (record.name, record.state, record.exit_code) == ("web", "exited", 3)


async def test_logs_of_a_container_without_a_tty_come_without_their_frames(
    runtime: DockerRuntime,
) -> None:
    chunks = [
        chunk
        async for chunk in runtime.logs(
            "abc", follow=False, tail=None, since=None, timestamps=False
        )
    ]
    assert b"".join(chunks) == b"out\nerr\n"


async def test_exec_returns_the_exit_code_and_both_streams(runtime: DockerRuntime) -> None:
    assert await runtime.exec("abc", ["sh", "-c", "true"], timeout=10) == (7, b"hello world")


async def test_events_name_the_pods_whose_containers_started_or_died(
    runtime: DockerRuntime,
) -> None:
    assert [uid async for uid in runtime.events()] == ["u1", "u3-é"]


async def test_a_missing_socket_is_runtime_unavailable(tmp_path: Path) -> None:
    runtime = DockerRuntime(f"unix://{tmp_path}/none.sock", "node-1")
    try:
        with pytest.raises(RuntimeUnavailable):
            await runtime.ping()
        with pytest.raises(RuntimeUnavailable):
            await runtime.inspect("abc")
    finally:
        await runtime.close()


def test_demux_joins_payloads_and_drops_a_cut_header() -> None:
    data = _frame(1, b"a") + _frame(2, b"bc") + b"\x01\x00"
    assert demux(data) == b"abc"


def test_connections_cover_every_start_with_room_beside_them() -> None:
    for parallel in (1, 10, 30):
        runtime = DockerRuntime("unix:///nonexistent.sock", "node-1", parallel_starts=parallel)
        assert runtime.api.connections >= parallel + 6


async def test_streams_held_open_leave_the_pool_free_for_calls(
    dockerd: tuple[FakeDockerd, str],
) -> None:
    # One pooled connection: a followed log holding it would block every call.
    runtime = DockerRuntime(dockerd[1], "node-1")
    runtime.api.connections = 1
    try:
        follows = [
            runtime.logs("abc", follow=True, tail=None, since=None, timestamps=False)
            for _ in range(3)
        ]
        for follow in follows:
            # each stream open and read from
            assert await asyncio.wait_for(anext(follow), 10) == b"out\n"
        assert await asyncio.wait_for(runtime.image_user("app:1"), 10) == "1000"
        for follow in follows:
            await follow.aclose()
    finally:
        await runtime.close()
