"""What the parts of a pod worker share: its host, and its memory of each container.

The pod worker conducts an image puller, a prober manager, a restart policy
and a status view, as the kubelet's does; each of them reads and updates the
same ``ContainerState`` and speaks to the agent through ``PodHost``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from corral.clock import Clock
from corral.objects import Obj, meta
from nodeagent.backoff import Backoff
from nodeagent.probes import ProbeState
from nodeagent.runtime.base import ContainerRecord, Runtime


class PodHost(Protocol):
    """What a pod worker needs from its agent."""

    runtime: Runtime
    clock: Clock
    pods_dir: Path
    host_ip: str
    node_allocatable: Obj
    restarts: Backoff
    pulls: Backoff

    async def get_configmap(self, namespace: str, name: str) -> Obj | None: ...

    async def get_secret(self, namespace: str, name: str) -> Obj | None: ...

    async def event(
        self, pod: Obj, kind: str, reason: str, message: str, field_path: str = ""
    ) -> None: ...

    def report_status(self, pod: Obj, status: Obj) -> None: ...

    async def confirm_deleted(self, pod: Obj) -> None: ...

    async def network_setup(self, pod: Obj, netns: str) -> str:
        """Wire the pod's network namespace; its IP ('' when there is no pod network)."""
        ...

    async def network_teardown(self, pod: Obj) -> None: ...

    async def extra_env(self, pod: Obj) -> dict[str, str]:
        """Environment every container of the pod gets first (Service variables)."""
        ...

    def resolv_conf(self, pod: Obj) -> str | None:
        """The pod's /etc/resolv.conf (cluster DNS), or None to keep the image's."""
        ...


@dataclass
class ContainerState:
    """The agent's memory of one container of the spec, across its instances."""

    current: ContainerRecord | None = None
    previous: ContainerRecord | None = None
    restart_at: float | None = None  # monotonic; not before this
    waiting_reason: str = ""
    waiting_message: str = ""
    probes: dict[str, ProbeState] = field(default_factory=dict)
    probe_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    probing: bool = False  # probes are set up for the current instance
    backoff_reported: bool = False  # the BackOff event of this wait was recorded
    seeded_ready: bool | None = None  # readiness carried over from before an agent restart


def field_path(role: str, name: str) -> str:
    """The container's place in the pod spec, as Events name it."""
    return f"spec.{'initContainers' if role == 'init' else 'containers'}{{{name}}}"


def pod_name(pod: Obj | None, uid: str) -> str:
    """namespace/name for logs and events; the uid's start before the pod is known."""
    if pod is None:
        return uid[:8]
    metadata = meta(pod)
    return f"{metadata.get('namespace')}/{metadata.get('name')}"
