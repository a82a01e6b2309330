"""The container runtime interface the agent drives, and what it reports back.

A pod is a *sandbox* (an infra container that owns the network namespace,
started with networking off so that the agent can wire it) plus app and init
containers that join it. Every container carries labels naming its pod and
its own place in it, which is how a restarted agent finds everything it
started and adopts it instead of starting it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

LABEL_POD_UID = "io.corral.pod.uid"
LABEL_POD_NAME = "io.corral.pod.name"
LABEL_POD_NAMESPACE = "io.corral.pod.namespace"
LABEL_NODE = "io.corral.node"
# The local cluster (corral up's id) the node belongs to, where one machine runs several.
LABEL_CLUSTER = "io.corral.cluster"
LABEL_CONTAINER = "io.corral.container.name"
LABEL_ROLE = "io.corral.container.role"  # sandbox, init or app
LABEL_RESTARTS = "io.corral.container.restart-count"
LABEL_SPEC_HASH = "io.corral.container.spec-hash"
LABEL_GRACE = "io.corral.pod.termination-grace-seconds"

Role = Literal["sandbox", "init", "app"]
State = Literal["created", "running", "exited", "unknown"]


class RuntimeFailure(Exception):
    """The runtime failed an operation; ``reason`` is a kubelet-style word for status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RuntimeUnavailable(RuntimeFailure):
    def __init__(self, message: str) -> None:
        super().__init__("RuntimeUnavailable", message)


class ImagePullError(RuntimeFailure):
    pass


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False
    propagation: str = ""


@dataclass(frozen=True)
class ContainerConfig:
    """Everything the runtime needs to create one container of a pod."""

    pod_uid: str
    pod_name: str
    pod_namespace: str
    name: str
    role: Role
    image: str
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str]
    working_dir: str | None
    mounts: list[Mount]
    labels: dict[str, str]
    restart_count: int = 0
    spec_hash: str = ""
    cpu_limit_milli: int | None = None
    cpu_request_milli: int | None = None
    memory_limit_bytes: int | None = None
    tty: bool = False
    stdin: bool = False
    privileged: bool = False
    read_only_root: bool = False
    user: str | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool = True
    seccomp_unconfined: bool = False
    hosts: dict[str, str] = field(default_factory=dict)
    dns_servers: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    hostname: str = ""
    grace_seconds: int = 30
    host_network: bool = False


@dataclass
class ContainerRecord:
    """What the runtime knows about one container, as the agent needs it."""

    id: str
    name: str  # the container's name within its pod
    role: Role
    pod_uid: str
    pod_name: str
    pod_namespace: str
    state: State
    image: str
    image_id: str = ""
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restart_count: int = 0
    spec_hash: str = ""
    pid: int = 0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageAuth:
    username: str
    password: str
    registry: str


class Runtime(Protocol):
    """What the agent asks of a container runtime. All methods are async."""

    name: str

    async def version(self) -> str: ...

    async def ping(self) -> None:
        """Raise RuntimeUnavailable if the runtime cannot be used right now."""
        ...

    async def image_present(self, image: str) -> bool: ...

    async def image_user(self, image: str) -> str:
        """The user the image runs as ("" for root), for runAsNonRoot."""
        ...

    async def pull(self, image: str, auth: ImageAuth | None) -> str:
        """Pull the image; its ID. Raises ImagePullError."""
        ...

    async def run_sandbox(self, config: ContainerConfig) -> ContainerRecord:
        """Create and start the pod's infra container, with networking off."""
        ...

    async def create(self, config: ContainerConfig, sandbox: ContainerRecord) -> ContainerRecord:
        """Create an app or init container joined to ``sandbox``'s namespaces."""
        ...

    async def start(self, container_id: str) -> None: ...

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        """SIGTERM, then SIGKILL after ``grace_seconds``."""
        ...

    async def remove(self, container_id: str) -> None: ...

    async def inspect(self, container_id: str) -> ContainerRecord | None: ...

    async def list_containers(self, node: str) -> list[ContainerRecord]:
        """Every container this node's agent started, running or not."""
        ...

    async def netns_path(self, sandbox: ContainerRecord) -> str:
        """The sandbox's network namespace, for wiring and for probes."""
        ...

    def logs(
        self,
        container_id: str,
        *,
        follow: bool,
        tail: int | None,
        since: datetime | None,
        timestamps: bool,
    ) -> AsyncIterator[bytes]: ...

    async def exec(
        self,
        container_id: str,
        command: list[str],
        *,
        timeout: float,
    ) -> tuple[int, bytes]:
        """Run a command to completion (probes, hooks): its exit code and output."""
        ...

    async def exec_stream(
        self, container_id: str, command: list[str], *, tty: bool, stdin: bool
    ) -> Any:
        """An interactive session; see ExecSession."""
        ...

    def events(self) -> AsyncIterator[str]:
        """Pod UIDs whose containers changed state (exits, OOM kills), as it happens."""
        ...

    async def close(self) -> None: ...
