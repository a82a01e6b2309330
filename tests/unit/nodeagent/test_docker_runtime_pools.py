"""The Docker runtime's pools and caches, against a stand-in for the SDK's client."""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
import pytest

from nodeagent.runtime.docker import DockerRuntime


class Api:
    def __init__(self) -> None:
        self.inspected: list[str] = []
        self.users = {"app:1": "1000"}

    def inspect_image(self, image: str) -> dict[str, Any]:
        self.inspected.append(image)
        if image not in self.users:
            raise docker.errors.ImageNotFound(image)
        return {"Config": {"User": self.users[image]}}


class Client:
    def __init__(self) -> None:
        self.api = Api()


def _runtime(parallel_starts: int = 10) -> tuple[DockerRuntime, Api]:
    runtime = DockerRuntime("unix:///nonexistent.sock", "node-1", parallel_starts=parallel_starts)
    client = Client()
    runtime._client = client  # type: ignore[assignment]
    return runtime, client.api


async def test_an_images_user_is_read_once_not_for_every_container() -> None:
    runtime, api = _runtime()
    try:
        assert [await runtime.image_user("app:1") for _ in range(5)] == ["1000"] * 5
        assert api.inspected == ["app:1"]
    finally:
        await runtime.close()


async def test_a_missing_image_is_asked_again_and_a_pull_forgets_the_user() -> None:
    runtime, api = _runtime()
    try:
        assert await runtime.image_user("new:1") == ""
        api.users["new:1"] = "nobody"
        # Not remembered as userless: once it is there, its user is read.
        assert await runtime.image_user("new:1") == "nobody"
        api.users["new:1"] = "root"
        assert await runtime.image_user("new:1") == "nobody"
        runtime._image_users.pop("new:1")  # what a pull does, without a registry
        assert await runtime.image_user("new:1") == "root"
        assert api.inspected == ["new:1", "new:1", "new:1"]
    finally:
        await runtime.close()


def test_every_docker_thread_has_a_pooled_connection_and_starts_have_room_beside_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(docker, "DockerClient", lambda **options: made.append(options) or Client())
    for parallel in (1, 10, 30):
        runtime = DockerRuntime("unix:///nonexistent.sock", "node-1", parallel_starts=parallel)
        threads = runtime._pool._max_workers
        assert threads >= parallel + 6
        assert runtime.client is runtime.client
        # The SDK keeps 10 connections unless told: a busier thread would open and drop its own.
        assert made[-1]["max_pool_size"] == threads
        runtime._pool.shutdown()
    assert len(made) == 3
