"""The Docker runtime: pods as real containers, through the docker SDK.

The SDK is synchronous; its calls run on a small thread pool of their own,
and Docker's event stream on a thread that hands events to the event loop.
A pod's infra container runs with networking off; its app containers join
its network and IPC namespaces, as Kubernetes' pause container does.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import shutil
import socket
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import docker
import docker.errors
import requests.exceptions

from nodeagent.containerlogs import ContainerLogLimits
from nodeagent.runtime.base import (
    LABEL_CLUSTER,
    LABEL_CONTAINER,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_RESTARTS,
    LABEL_ROLE,
    LABEL_SPEC_HASH,
    ContainerConfig,
    ContainerRecord,
    ImageAuth,
    ImagePullError,
    RuntimeFailure,
    RuntimeUnavailable,
)
from nodeagent.runtime.startslots import APP, SANDBOX, StartSlots

log = logging.getLogger(__name__)

T = TypeVar("T")

PAUSE_IMAGE = "corral.local/pause:1"
# An image seen locally is assumed still there for this long; pull policies
# Always and Never do not depend on the answer.
_IMAGE_SEEN_SECONDS = 60.0
_MIN_THREADS = 16
_THREADS_BESIDE_STARTS = 6
_UNAVAILABLE = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    FileNotFoundError,
)


def _time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-"):
        return None
    # Docker reports nanoseconds; Python keeps microseconds.
    head, _, rest = text.partition(".")
    fraction = "".join(c for c in rest if c.isdigit())[:6]
    zone = rest[len("".join(c for c in rest if c.isdigit())) :] if rest else text[19:]
    zone = "+00:00" if zone in ("Z", "") else zone
    try:
        return datetime.fromisoformat(f"{head}.{fraction or '0'}{zone}").astimezone(UTC)
    except ValueError:
        return None


def _record(info: dict[str, Any]) -> ContainerRecord:
    labels = (info.get("Config") or {}).get("Labels") or {}
    state = info.get("State") or {}
    status = state.get("Status", "unknown")
    mapped = {
        "created": "created",
        "running": "running",
        "restarting": "running",
        "paused": "running",
        "exited": "exited",
        "dead": "exited",
        "removing": "exited",
    }.get(status, "unknown")
    return ContainerRecord(
        id=info["Id"],
        name=labels.get(LABEL_CONTAINER, ""),
        role=labels.get(LABEL_ROLE, "app"),
        pod_uid=labels.get(LABEL_POD_UID, ""),
        pod_name=labels.get(LABEL_POD_NAME, ""),
        pod_namespace=labels.get(LABEL_POD_NAMESPACE, ""),
        state=mapped,  # type: ignore[arg-type]
        image=(info.get("Config") or {}).get("Image", ""),
        image_id=info.get("Image", ""),
        exit_code=state.get("ExitCode") if mapped == "exited" else None,
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error", ""),
        created_at=_time(info.get("Created")),
        started_at=_time(state.get("StartedAt")),
        finished_at=_time(state.get("FinishedAt")),
        restart_count=int(labels.get(LABEL_RESTARTS, "0") or 0),
        spec_hash=labels.get(LABEL_SPEC_HASH, ""),
        pid=int(state.get("Pid") or 0),
        labels=dict(labels),
    )


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        return image, ""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, "latest"
    return name, tag


def is_static_elf(path: str) -> bool:
    """Whether an ELF executable needs no dynamic loader (has no PT_INTERP header)."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only
            return False
        order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
        phoff = int.from_bytes(header[32:40], order)
        phentsize = int.from_bytes(header[54:56], order)
        phnum = int.from_bytes(header[56:58], order)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    for index in range(phnum):
        kind = int.from_bytes(table[index * phentsize : index * phentsize + 4], order)
        if kind == 3:  # PT_INTERP
            return False
    return True


def pause_image_tar(busybox: str) -> bytes:
    """A root filesystem holding only a static busybox: enough for an infra container."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo("bin")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        archive.addfile(directory)
        with open(busybox, "rb") as handle:
            data = handle.read()
        binary = tarfile.TarInfo("bin/busybox")
        binary.size = len(data)
        binary.mode = 0o755
        archive.addfile(binary, io.BytesIO(data))
        for applet in ("sh", "sleep"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            archive.addfile(link)
    return buffer.getvalue()


class DockerRuntime:
    name = "docker"

    def __init__(
        self,
        base_url: str,
        node: str,
        *,
        pause_image: str = PAUSE_IMAGE,
        parallel_starts: int = 10,
        cluster: str = "",
        log_limits: ContainerLogLimits | None = None,
    ) -> None:
        self.base_url = base_url
        self.log_limits = log_limits or ContainerLogLimits()
        self.node = node
        self.cluster = cluster
        self.pause_image = pause_image
        # Every start in flight, with room beside them for inspects, pulls and
        # the prober's execs, which must not queue behind the starts.
        self._threads = max(_MIN_THREADS, parallel_starts + _THREADS_BESIDE_STARTS)
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="docker")
        # Past some number in flight, dockerd only makes every creation slower
        # (it serializes much of it), so starts are bounded.
        self._starts = StartSlots(parallel_starts)
        self._images_seen: dict[str, float] = {}
        self._image_users: dict[str, tuple[float, str]] = {}
        self._client: docker.DockerClient | None = None
        self._closed = False

    # --- plumbing -----------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            # A pooled connection for every thread: the SDK keeps 10 by default,
            # and a thread without one opens a new connection, then drops it.
            self._client = docker.DockerClient(
                base_url=self.base_url, timeout=60, max_pool_size=self._threads
            )
        return self._client

    async def _call(self, func: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, func)
        except _UNAVAILABLE as error:
            raise RuntimeUnavailable(f"docker is unreachable at {self.base_url}: {error}") from None
        except docker.errors.APIError as error:
            if (
                error.response is not None
                and error.response.status_code >= 500
                and ("connection" in str(error).lower())
            ):
                raise RuntimeUnavailable(str(error)) from None
            raise

    async def close(self) -> None:
        self._closed = True
        if self._client is not None:
            try:
                self._client.close()
            except Exception as error:
                # Closing only drops pooled connections to dockerd; the agent is stopping.
                log.debug("docker client not closed cleanly: %s", error)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def version(self) -> str:
        info = await self._call(self.client.version)
        return f"docker://{info.get('Version', 'unknown')}"

    async def ping(self) -> None:
        try:
            await self._call(self.client.ping)
        except docker.errors.APIError as error:
            raise RuntimeUnavailable(str(error)) from None

    # --- images -------------------------------------------------------------------------

    async def image_user(self, image: str) -> str:
        # Asked for every container created: an image's user is read once a
        # minute, like its presence, not once per container.
        known = self._image_users.get(image)
        if known is not None and time.monotonic() - known[0] < _IMAGE_SEEN_SECONDS:
            return known[1]

        def user() -> str | None:
            try:
                config = self.client.api.inspect_image(image).get("Config") or {}
            except docker.errors.ImageNotFound:
                return None
            return str(config.get("User") or "")

        found = await self._call(user)
        if found is None:
            return ""
        self._image_users[image] = (time.monotonic(), found)
        return found

    async def image_present(self, image: str) -> bool:
        seen = self._images_seen.get(image)
        if seen is not None and time.monotonic() - seen < _IMAGE_SEEN_SECONDS:
            return True

        def check() -> bool:
            try:
                self.client.api.inspect_image(image)
            except docker.errors.ImageNotFound:
                return False
            return True

        present = await self._call(check)
        if present:
            self._images_seen[image] = time.monotonic()
        return present

    async def pull(self, image: str, auth: ImageAuth | None) -> str:
        repository, tag = _split_image(image)
        auth_config = {"username": auth.username, "password": auth.password} if auth else None

        # A pull may bring a new image under the same name, with its own user.
        self._image_users.pop(image, None)

        def pull() -> str:
            try:
                self.client.api.pull(repository, tag=tag or None, auth_config=auth_config)
                return str(self.client.images.get(image).id)
            except docker.errors.APIError as error:
                explanation = error.explanation or str(error)
                raise ImagePullError(
                    "ErrImagePull", f'failed to pull image "{image}": {explanation}'
                ) from None

        return await self._call(pull)

    async def ensure_pause_image(self, busybox: str = "/bin/busybox") -> None:
        """Build the infra image from the host's static busybox if it is not there.

        No registry need be reachable: the image is imported from a local file.
        """
        if await self.image_present(self.pause_image):
            return
        source = (
            busybox if await asyncio.to_thread(Path(busybox).exists) else (shutil.which("busybox"))
        )
        if source is not None and not await asyncio.to_thread(is_static_elf, source):
            source = None
        if source is None:
            raise RuntimeFailure(
                "PauseImage",
                "no static busybox to build the infra image from (install Debian's busybox-static)",
            )
        data = pause_image_tar(source)
        repository, tag = _split_image(self.pause_image)
        await self._call(
            lambda: self.client.api.import_image_from_data(data, repository=repository, tag=tag)
        )

    # --- containers ---------------------------------------------------------------------

    def _labels(self, config: ContainerConfig) -> dict[str, str]:
        return {
            **config.labels,
            LABEL_NODE: self.node,
            **({LABEL_CLUSTER: self.cluster} if self.cluster else {}),
            LABEL_POD_UID: config.pod_uid,
            LABEL_POD_NAME: config.pod_name,
            LABEL_POD_NAMESPACE: config.pod_namespace,
            LABEL_CONTAINER: config.name,
            LABEL_ROLE: config.role,
            LABEL_RESTARTS: str(config.restart_count),
            LABEL_SPEC_HASH: config.spec_hash,
        }

    def _security(self, config: ContainerConfig) -> dict[str, Any]:
        options = []
        if config.no_new_privileges and not config.privileged:
            options.append("no-new-privileges:true")
        if config.seccomp_unconfined:
            options.append("seccomp=unconfined")
        out: dict[str, Any] = {
            "security_opt": options or None,
            "cap_add": config.cap_add or None,
            "cap_drop": config.cap_drop or None,
            "privileged": config.privileged,
            "read_only": config.read_only_root,
        }
        if config.user:
            out["user"] = config.user
        return out

    def _docker_name(self, config: ContainerConfig) -> str:
        return "_".join(
            [
                "corral",
                config.name if config.role != "sandbox" else "POD",
                config.pod_name,
                config.pod_namespace,
                config.pod_uid[:8],
                str(config.restart_count),
            ]
        )

    async def run_sandbox(self, config: ContainerConfig) -> ContainerRecord:
        security = self._security(
            ContainerConfig(
                pod_uid=config.pod_uid,
                pod_name=config.pod_name,
                pod_namespace=config.pod_namespace,
                name="POD",
                role="sandbox",
                image=self.pause_image,
                command=None,
                args=None,
                env={},
                working_dir=None,
                mounts=[],
                labels={},
                cap_drop=["ALL"],
            )
        )

        def run() -> ContainerRecord:
            api = self.client.api
            host_config = api.create_host_config(
                network_mode="host" if config.host_network else "none",
                ipc_mode="shareable",
                security_opt=security["security_opt"],
                cap_drop=security["cap_drop"],
            )
            created = api.create_container(
                self.pause_image,
                command=["/bin/sleep", "2147483647"],
                name=self._docker_name(config),
                labels=self._labels(config),
                hostname=None if config.host_network else (config.hostname or None),
                stop_signal="SIGKILL",
                host_config=host_config,
            )
            api.start(created["Id"])
            return _record(api.inspect_container(created["Id"]))

        async with self._starts.slot(SANDBOX):
            return await self._call(run)

    async def create(self, config: ContainerConfig, sandbox: ContainerRecord) -> ContainerRecord:
        mounts = [
            docker.types.Mount(
                target=m.target,
                source=m.source,
                type="bind",
                read_only=m.read_only,
                propagation=m.propagation or None,
            )
            for m in config.mounts
        ]
        resources: dict[str, Any] = {}
        if config.cpu_limit_milli:
            resources["nano_cpus"] = config.cpu_limit_milli * 1_000_000
        if config.cpu_request_milli:
            resources["cpu_shares"] = max(2, config.cpu_request_milli * 1024 // 1000)
        if config.memory_limit_bytes:
            resources["mem_limit"] = config.memory_limit_bytes
            resources["memswap_limit"] = config.memory_limit_bytes

        security = self._security(config)
        labels = self._labels(config)

        def create() -> ContainerRecord:
            # The low-level API: one call, where the SDK's containers.create
            # makes two (it reads the container back).
            api = self.client.api
            host_config = api.create_host_config(
                mounts=mounts,
                network_mode=f"container:{sandbox.id}",
                ipc_mode=f"container:{sandbox.id}",
                security_opt=security["security_opt"],
                cap_add=security["cap_add"],
                cap_drop=security["cap_drop"],
                privileged=security["privileged"],
                read_only=security["read_only"],
                log_config=self.log_limits.docker_log_config(),
                **resources,
            )
            created = api.create_container(
                config.image,
                command=config.args,
                entrypoint=config.command,
                environment=config.env,
                working_dir=config.working_dir or None,
                name=self._docker_name(config),
                labels=labels,
                tty=config.tty,
                stdin_open=config.stdin,
                stop_signal="SIGTERM",
                user=security.get("user"),
                host_config=host_config,
            )
            return ContainerRecord(
                id=created["Id"],
                name=config.name,
                role=config.role,
                pod_uid=config.pod_uid,
                pod_name=config.pod_name,
                pod_namespace=config.pod_namespace,
                state="created",
                image=config.image,
                restart_count=config.restart_count,
                spec_hash=config.spec_hash,
                labels=labels,
            )

        try:
            async with self._starts.slot(APP):
                return await self._call(create)
        except docker.errors.ImageNotFound as error:
            raise RuntimeFailure("ErrImageNeverPull", str(error.explanation or error)) from None
        except docker.errors.APIError as error:
            raise RuntimeFailure("CreateContainerError", str(error.explanation or error)) from None

    async def start(self, container_id: str) -> None:
        try:
            async with self._starts.slot(APP):
                await self._call(lambda: self.client.api.start(container_id))
        except docker.errors.APIError as error:
            raise RuntimeFailure("StartError", str(error.explanation or error)) from None

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        def stop() -> None:
            try:
                self.client.api.stop(container_id, timeout=max(grace_seconds, 0))
            except docker.errors.NotFound:
                pass  # gone already, which is what stopping it was for

        await self._call(stop)

    async def remove(self, container_id: str) -> None:
        def remove() -> None:
            try:
                self.client.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass  # removed already: removing is idempotent

        await self._call(remove)

    async def inspect(self, container_id: str) -> ContainerRecord | None:
        def inspect() -> ContainerRecord | None:
            try:
                return _record(self.client.api.inspect_container(container_id))
            except docker.errors.NotFound:
                return None

        return await self._call(inspect)

    async def list_containers(self, node: str) -> list[ContainerRecord]:
        def list_all() -> list[ContainerRecord]:
            found = self.client.api.containers(all=True, filters={"label": f"{LABEL_NODE}={node}"})
            out = []
            for summary in found:
                try:
                    out.append(_record(self.client.api.inspect_container(summary["Id"])))
                except docker.errors.NotFound:
                    continue  # removed between the listing and its inspection
            return out

        return await self._call(list_all)

    async def container_stats(self, container_id: str) -> dict[str, Any] | None:
        """One reading of Docker's stats, unaveraged (``one-shot``): the usage fallback."""

        def stats() -> dict[str, Any] | None:
            try:
                found = self.client.api.stats(container_id, stream=False, one_shot=True)
            except docker.errors.NotFound:
                return None
            return found if isinstance(found, dict) else None

        return await self._call(stats)

    async def netns_path(self, sandbox: ContainerRecord) -> str:
        # The pid from the last inspect is still right while its /proc entry exists (a
        # /proc lookup never blocks); probes ask every period, so spare dockerd the query.
        if sandbox.pid and os.path.exists(f"/proc/{sandbox.pid}/ns/net"):  # noqa: ASYNC240
            return f"/proc/{sandbox.pid}/ns/net"
        record = await self.inspect(sandbox.id)
        if record is None or not record.pid:
            raise RuntimeFailure(
                "SandboxGone", f"the infra container {sandbox.id[:12]} is not running"
            )
        return f"/proc/{record.pid}/ns/net"

    # --- logs and exec ------------------------------------------------------------------

    async def logs(
        self,
        container_id: str,
        *,
        follow: bool,
        tail: int | None,
        since: datetime | None,
        timestamps: bool,
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)
        stop = threading.Event()

        def produce() -> None:
            try:
                stream = self.client.api.logs(
                    container_id,
                    stream=True,
                    follow=follow,
                    timestamps=timestamps,
                    tail=tail if tail is not None and tail >= 0 else "all",
                    since=since,
                )
                for chunk in stream:
                    if stop.is_set():
                        break
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except Exception as error:
                log.debug("log stream of %s ended: %s", container_id[:12], error)
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop)

        thread = threading.Thread(target=produce, name=f"logs-{container_id[:12]}", daemon=True)
        thread.start()
        try:
            while True:
                chunk = await queue.get()
                if chunk is None:
                    return
                yield chunk
        finally:
            stop.set()

    async def exec(
        self, container_id: str, command: list[str], *, timeout: float
    ) -> tuple[int, bytes]:
        def run() -> tuple[int, bytes]:
            created = self.client.api.exec_create(container_id, command, stdout=True, stderr=True)
            output = self.client.api.exec_start(created["Id"], demux=False)
            inspected = self.client.api.exec_inspect(created["Id"])
            return int(inspected.get("ExitCode") or 0), output or b""

        try:
            async with asyncio.timeout(timeout):
                return await self._call(run)
        except docker.errors.APIError as error:
            raise RuntimeFailure("ExecError", str(error.explanation or error)) from None

    async def exec_stream(
        self, container_id: str, command: list[str], *, tty: bool, stdin: bool
    ) -> Any:
        def start() -> tuple[str, Any]:
            created = self.client.api.exec_create(
                container_id, command, stdout=True, stderr=True, stdin=stdin, tty=tty
            )
            sock = self.client.api.exec_start(created["Id"], socket=True, tty=tty)
            return created["Id"], sock

        exec_id, sock = await self._call(start)
        return DockerExecSession(self, exec_id, sock, tty)

    async def exec_exit_code(self, exec_id: str) -> int:
        inspected = await self._call(lambda: self.client.api.exec_inspect(exec_id))
        return int(inspected.get("ExitCode") or 0)

    # --- events -------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[str]:
        """The pod UIDs of containers that started, died or were OOM-killed."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def produce() -> None:
            try:
                stream = self.client.api.events(
                    decode=True,
                    filters={"type": "container", "label": f"{LABEL_NODE}={self.node}"},
                )
                for event in stream:
                    if self._closed:
                        break
                    if event.get("status") in ("die", "oom", "start", "destroy", "kill"):
                        attributes = (event.get("Actor") or {}).get("Attributes") or {}
                        uid = attributes.get(LABEL_POD_UID, "")
                        loop.call_soon_threadsafe(queue.put_nowait, uid)
            except Exception as error:
                log.info("docker event stream ended: %s", error)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        thread = threading.Thread(target=produce, name="docker-events", daemon=True)
        thread.start()
        while True:
            item = await queue.get()
            if item is None:
                return
            yield item


class DockerExecSession:
    """One interactive exec: bytes in, (stream, bytes) out, then an exit code."""

    def __init__(self, runtime: DockerRuntime, exec_id: str, sock: Any, tty: bool) -> None:
        self.runtime = runtime
        self.exec_id = exec_id
        self.tty = tty
        self._raw = getattr(sock, "_sock", sock)

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._raw.sendall, data)

    async def close_stdin(self) -> None:
        # The process may have exited and closed the stream first: stdin is closed either way.
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._raw.shutdown, socket.SHUT_WR)

    async def read(self) -> tuple[int, bytes] | None:
        """The next output as (1 for stdout or 2 for stderr, data); None at the end."""
        if self.tty:
            data = await asyncio.to_thread(self._raw.recv, 65536)
            return (1, data) if data else None
        header = await asyncio.to_thread(self._read_exact, 8)
        if not header:
            return None
        size = int.from_bytes(header[4:8], "big")
        payload = await asyncio.to_thread(self._read_exact, size)
        return (2 if header[0] == 2 else 1, payload)

    def _read_exact(self, size: int) -> bytes:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            data = self._raw.recv(remaining)
            if not data:
                return b"".join(chunks) if chunks and remaining < size else b""
            chunks.append(data)
            remaining -= len(data)
        return b"".join(chunks)

    def close(self) -> None:
        """End the session early (its client left): the process's stdin closes, reads end."""
        # shutdown wakes a read blocked in its thread; close alone would not.
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._raw.close()

    async def exit_code(self) -> int:
        # The output is all read; the exit code comes from dockerd, not this socket.
        with contextlib.suppress(OSError):
            self._raw.close()
        return await self.runtime.exec_exit_code(self.exec_id)
