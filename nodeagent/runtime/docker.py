"""The Docker runtime: pods as real containers, through Docker's Engine API.

Every call is made on the event loop over pooled connections to dockerd's
socket (nodeagent/runtime/dockerapi.py). A pod's infra container runs with
networking off; its app containers join its network and IPC namespaces, as
Kubernetes' pause container does.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import shutil
import tarfile
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

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
from nodeagent.runtime.dockerapi import (
    DEFAULT_TIMEOUT,
    DockerAPI,
    DockerError,
    NotFound,
    Unreachable,
    demux,
    quote,
    read_frame,
    registry_auth,
)
from nodeagent.runtime.startslots import APP, SANDBOX, StartSlots

log = logging.getLogger(__name__)

T = TypeVar("T")

PAUSE_IMAGE = "corral.local/pause:1"
# An image seen locally is assumed still there for this long; pull policies
# Always and Never do not depend on the answer.
_IMAGE_SEEN_SECONDS = 60.0
_MIN_CONNECTIONS = 16
_CONNECTIONS_BESIDE_STARTS = 6


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
        # A connection for every start in flight, with room beside them for
        # inspects, pulls and the prober's execs, which must not queue behind them.
        self.api = DockerAPI(
            base_url,
            connections=max(_MIN_CONNECTIONS, parallel_starts + _CONNECTIONS_BESIDE_STARTS),
        )
        # Past some number in flight, dockerd only makes every creation slower
        # (it serializes much of it), so starts are bounded.
        self._starts = StartSlots(parallel_starts)
        self._images_seen: dict[str, float] = {}
        self._image_users: dict[str, tuple[float, str]] = {}
        self._closed = False

    # --- plumbing -----------------------------------------------------------------------

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except Unreachable as error:
            raise RuntimeUnavailable(str(error)) from None
        except DockerError as error:
            # dockerd up but its own backend (containerd) gone: the runtime, not the request.
            if error.status >= 500 and "connection" in error.explanation.lower():
                raise RuntimeUnavailable(str(error)) from None
            raise

    async def close(self) -> None:
        self._closed = True
        await self.api.close()

    async def version(self) -> str:
        info = await self._call(self.api.request("GET", "/version"))
        return f"docker://{info.get('Version', 'unknown')}"

    async def ping(self) -> None:
        try:
            await self._call(self.api.request("GET", "/_ping"))
        except DockerError as error:
            raise RuntimeUnavailable(str(error)) from None

    # --- images -------------------------------------------------------------------------

    async def _inspect_image(self, image: str) -> dict[str, Any] | None:
        try:
            found = await self._call(self.api.request("GET", f"/images/{quote(image)}/json"))
        except NotFound:
            return None
        return found if isinstance(found, dict) else None

    async def image_user(self, image: str) -> str:
        # Every container of a replicated workload asks for the same image: read it once a
        # minute, like its presence, not once per container.
        known = self._image_users.get(image)
        if known is not None and time.monotonic() - known[0] < _IMAGE_SEEN_SECONDS:
            return known[1]
        info = await self._inspect_image(image)
        if info is None:
            return ""
        found = str((info.get("Config") or {}).get("User") or "")
        self._image_users[image] = (time.monotonic(), found)
        return found

    async def image_present(self, image: str) -> bool:
        seen = self._images_seen.get(image)
        if seen is not None and time.monotonic() - seen < _IMAGE_SEEN_SECONDS:
            return True
        present = await self._inspect_image(image) is not None
        if present:
            self._images_seen[image] = time.monotonic()
        return present

    async def pull(self, image: str, auth: ImageAuth | None) -> str:
        repository, tag = _split_image(image)
        headers = {"X-Registry-Auth": registry_auth(auth.username, auth.password)} if auth else {}

        # A pull may bring a new image under the same name, with its own user.
        self._image_users.pop(image, None)

        def failed(explanation: str) -> ImagePullError:
            return ImagePullError("ErrImagePull", f'failed to pull image "{image}": {explanation}')

        error_text = ""
        try:
            # dockerd answers 200 at once and reports a failure inside the progress stream.
            progress = self.api.json_lines(
                "POST",
                "/images/create",
                params={"fromImage": repository, "tag": tag or None},
                headers=headers,
            )
            async with contextlib.aclosing(progress):
                async for line in progress:
                    if line.get("error"):
                        error_text = str(line["error"])
                        break
            if error_text:
                raise failed(error_text)
            info = await self._inspect_image(image)
        except DockerError as error:
            raise failed(error.explanation or str(error)) from None
        except Unreachable as error:
            raise RuntimeUnavailable(str(error)) from None
        if info is None:
            raise failed("the image is not there after its pull")
        return str(info.get("Id", ""))

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
        data = await asyncio.to_thread(pause_image_tar, source)
        repository, tag = _split_image(self.pause_image)
        await self._call(
            self.api.request(
                "POST",
                "/images/create",
                params={"fromSrc": "-", "repo": repository, "tag": tag},
                data=data,
                headers={"Content-Type": "application/tar"},
            )
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
        """HostConfig's security fields, in the Engine API's names."""
        options = []
        if config.no_new_privileges and not config.privileged:
            options.append("no-new-privileges:true")
        if config.seccomp_unconfined:
            options.append("seccomp=unconfined")
        return {
            "SecurityOpt": options or None,
            "CapAdd": config.cap_add or None,
            "CapDrop": config.cap_drop or None,
            "Privileged": config.privileged,
            "ReadonlyRootfs": config.read_only_root,
        }

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

    async def _create(self, name: str, body: dict[str, Any]) -> str:
        created = await self._call(
            self.api.request("POST", "/containers/create", params={"name": name}, body=body)
        )
        return str(created["Id"])

    async def _start(self, container_id: str) -> None:
        await self._call(self.api.request("POST", f"/containers/{quote(container_id)}/start"))

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
        body = {
            "Image": self.pause_image,
            "Cmd": ["/bin/sleep", "2147483647"],
            "Labels": self._labels(config),
            "Hostname": None if config.host_network else (config.hostname or None),
            "StopSignal": "SIGKILL",
            "HostConfig": {
                "NetworkMode": "host" if config.host_network else "none",
                "IpcMode": "shareable",
                "SecurityOpt": security["SecurityOpt"],
                "CapDrop": security["CapDrop"],
            },
        }
        async with self._starts.slot(SANDBOX):
            container_id = await self._create(self._docker_name(config), body)
            await self._start(container_id)
        # A read, outside the slot: the slots bound what dockerd serializes, creations and starts.
        record = await self.inspect(container_id)
        if record is None:
            raise RuntimeFailure("SandboxGone", f"the infra container {container_id[:12]} is gone")
        return record

    async def create(self, config: ContainerConfig, sandbox: ContainerRecord) -> ContainerRecord:
        mounts = []
        for m in config.mounts:
            mount: dict[str, Any] = {
                "Target": m.target,
                "Source": m.source,
                "Type": "bind",
                "ReadOnly": m.read_only,
            }
            if m.propagation:
                mount["BindOptions"] = {"Propagation": m.propagation}
            mounts.append(mount)
        host_config: dict[str, Any] = {
            "Mounts": mounts,
            "NetworkMode": f"container:{sandbox.id}",
            "IpcMode": f"container:{sandbox.id}",
            "LogConfig": self.log_limits.docker_log_config(),
            **self._security(config),
        }
        if config.cpu_limit_milli:
            host_config["NanoCpus"] = config.cpu_limit_milli * 1_000_000
        if config.cpu_request_milli:
            host_config["CpuShares"] = max(2, config.cpu_request_milli * 1024 // 1000)
        if config.memory_limit_bytes:
            host_config["Memory"] = config.memory_limit_bytes
            host_config["MemorySwap"] = config.memory_limit_bytes
        labels = self._labels(config)
        body = {
            "Image": config.image,
            "Cmd": config.args,
            "Entrypoint": config.command,
            "Env": [f"{key}={value}" for key, value in config.env.items()],
            "WorkingDir": config.working_dir or None,
            "Labels": labels,
            "Tty": config.tty,
            "OpenStdin": config.stdin,
            # What the SDK sent: one attach may use stdin, then it closes.
            "StdinOnce": config.stdin,
            "AttachStdin": config.stdin,
            "AttachStdout": True,
            "AttachStderr": True,
            "StopSignal": "SIGTERM",
            "User": config.user or None,
            "HostConfig": host_config,
        }
        try:
            async with self._starts.slot(APP):
                container_id = await self._create(self._docker_name(config), body)
        except NotFound as error:
            raise RuntimeFailure("ErrImageNeverPull", error.explanation or str(error)) from None
        except DockerError as error:
            raise RuntimeFailure("CreateContainerError", error.explanation or str(error)) from None
        return ContainerRecord(
            id=container_id,
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

    async def start(self, container_id: str) -> None:
        try:
            async with self._starts.slot(APP):
                await self._start(container_id)
        except DockerError as error:
            raise RuntimeFailure("StartError", error.explanation or str(error)) from None

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        grace = max(grace_seconds, 0)
        try:
            await self._call(
                self.api.request(
                    "POST",
                    f"/containers/{quote(container_id)}/stop",
                    params={"t": grace},
                    timeout=DEFAULT_TIMEOUT + grace,
                )
            )
        except NotFound:
            pass  # gone already, which is what stopping it was for

    async def remove(self, container_id: str) -> None:
        try:
            await self._call(
                self.api.request(
                    "DELETE", f"/containers/{quote(container_id)}", params={"force": True}
                )
            )
        except NotFound:
            pass  # removed already: removing is idempotent

    async def _inspect_raw(self, container_id: str) -> dict[str, Any] | None:
        try:
            found = await self._call(
                self.api.request("GET", f"/containers/{quote(container_id)}/json")
            )
        except NotFound:
            return None
        return found if isinstance(found, dict) else None

    async def inspect(self, container_id: str) -> ContainerRecord | None:
        info = await self._inspect_raw(container_id)
        return None if info is None else _record(info)

    async def list_containers(self, node: str) -> list[ContainerRecord]:
        found = await self._call(
            self.api.request(
                "GET",
                "/containers/json",
                params={"all": True, "filters": {"label": [f"{LABEL_NODE}={node}"]}},
            )
        )
        out = []
        for summary in found or []:
            record = await self.inspect(summary["Id"])
            if record is not None:  # else removed between the listing and its inspection
                out.append(record)
        return out

    async def container_stats(self, container_id: str) -> dict[str, Any] | None:
        """One reading of Docker's stats, unaveraged (``one-shot``): the usage fallback."""
        try:
            found = await self._call(
                self.api.request(
                    "GET",
                    f"/containers/{quote(container_id)}/stats",
                    params={"stream": False, "one-shot": True},
                )
            )
        except NotFound:
            return None
        return found if isinstance(found, dict) else None

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
        info = await self._inspect_raw(container_id)
        if info is None:
            return
        # A tty's output is one raw stream; otherwise dockerd frames stdout and stderr.
        tty = bool((info.get("Config") or {}).get("Tty"))
        params: dict[str, Any] = {
            "stdout": True,
            "stderr": True,
            "follow": follow,
            "timestamps": timestamps,
            "tail": tail if tail is not None and tail >= 0 else "all",
        }
        if since is not None:
            params["since"] = int(since.timestamp())
        try:
            async with self.api.stream(
                "GET", f"/containers/{quote(container_id)}/logs", params=params
            ) as content:
                if tty:
                    async for chunk in content.iter_any():
                        yield chunk
                    return
                while (frame := await read_frame(content)) is not None:
                    yield frame[1]
        except (DockerError, Unreachable) as error:
            log.debug("log stream of %s ended: %s", container_id[:12], error)

    async def exec(
        self, container_id: str, command: list[str], *, timeout: float
    ) -> tuple[int, bytes]:
        async def run() -> tuple[int, bytes]:
            created = await self._call(
                self.api.request(
                    "POST",
                    f"/containers/{quote(container_id)}/exec",
                    body={"AttachStdout": True, "AttachStderr": True, "Cmd": command},
                )
            )
            exec_id = quote(str(created["Id"]))
            output = await self._call(
                self.api.request(
                    "POST",
                    f"/exec/{exec_id}/start",
                    body={"Detach": False, "Tty": False},
                    timeout=None,
                    raw=True,
                )
            )
            inspected = await self._call(self.api.request("GET", f"/exec/{exec_id}/json"))
            return int(inspected.get("ExitCode") or 0), demux(output)

        try:
            async with asyncio.timeout(timeout):
                return await run()
        except DockerError as error:
            raise RuntimeFailure("ExecError", error.explanation or str(error)) from None

    async def exec_stream(
        self, container_id: str, command: list[str], *, tty: bool, stdin: bool
    ) -> Any:
        created = await self._call(
            self.api.request(
                "POST",
                f"/containers/{quote(container_id)}/exec",
                body={
                    "AttachStdin": stdin,
                    "AttachStdout": True,
                    "AttachStderr": True,
                    "Tty": tty,
                    "Cmd": command,
                },
            )
        )
        exec_id = str(created["Id"])
        try:
            reader, writer = await self.api.hijack(
                f"/exec/{quote(exec_id)}/start", {"Detach": False, "Tty": tty}
            )
        except Unreachable as error:
            raise RuntimeUnavailable(str(error)) from None
        return DockerExecSession(self, exec_id, reader, writer, tty)

    async def exec_exit_code(self, exec_id: str) -> int:
        inspected = await self._call(self.api.request("GET", f"/exec/{quote(exec_id)}/json"))
        return int(inspected.get("ExitCode") or 0)

    # --- events -------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[str]:
        """The pod UIDs of containers that started, died or were OOM-killed."""
        filters = {"type": ["container"], "label": [f"{LABEL_NODE}={self.node}"]}
        try:
            async for event in self.api.json_lines("GET", "/events", params={"filters": filters}):
                if self._closed:
                    return
                # "Action" is the event's name in every API version; "status" is deprecated.
                if (event.get("Action") or event.get("status")) in _POD_EVENTS:
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    yield attributes.get(LABEL_POD_UID, "")
        except (DockerError, Unreachable) as error:
            log.info("docker event stream ended: %s", error)


_POD_EVENTS = frozenset(("die", "oom", "start", "destroy", "kill"))


class DockerExecSession:
    """One interactive exec: bytes in, (stream, bytes) out, then an exit code."""

    def __init__(
        self,
        runtime: DockerRuntime,
        exec_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tty: bool,
    ) -> None:
        self.runtime = runtime
        self.exec_id = exec_id
        self.tty = tty
        self._reader = reader
        self._writer = writer

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close_stdin(self) -> None:
        # The process may have exited and closed the stream first: stdin is closed either way.
        with contextlib.suppress(OSError, RuntimeError):
            if self._writer.can_write_eof():
                self._writer.write_eof()

    async def read(self) -> tuple[int, bytes] | None:
        """The next output as (1 for stdout or 2 for stderr, data); None at the end."""
        try:
            if self.tty:
                data = await self._reader.read(65536)
                return (1, data) if data else None
            frame = await read_frame(self._reader)
        except OSError:
            return None
        if frame is None:
            return None
        return (2 if frame[0] == 2 else 1, frame[1])

    def close(self) -> None:
        """End the session early (its client left): the process's stdin closes, reads end."""
        self._writer.transport.abort()

    async def exit_code(self) -> int:
        # The output is all read; the exit code comes from dockerd, not this socket.
        self._writer.transport.abort()
        return await self.runtime.exec_exit_code(self.exec_id)
