"""One pod on this node, driven level-triggered toward what its spec asks.

Each reconcile looks at the runtime and the desired pod and takes the next
steps: infra container, volumes, images, init containers in order, app
containers, restarts under the restart policy with CrashLoopBackOff, probes,
and graceful termination. Containers that are running and still match their
spec are never touched, which is what lets a restarted agent adopt them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from corral.clock import Clock
from nodeagent.backoff import Backoff
from nodeagent.localvolumes import ClaimNotReady
from nodeagent.podconfig import ConfigError, container_config, resolve_env, spec_hash
from nodeagent.probes import ProbeState, run_probe
from nodeagent.runtime.base import (
    ContainerConfig,
    ContainerRecord,
    ImageAuth,
    ImagePullError,
    Mount,
    Role,
    Runtime,
    RuntimeFailure,
    RuntimeUnavailable,
)
from nodeagent.status import ContainerView, build_status, pod_phase
from nodeagent.volumes import (
    SUBPATHS_DIR,
    PreparedVolume,
    VolumeError,
    cleanup,
    pod_dir,
    prepare,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]


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


def registry_of(image: str) -> str:
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def auth_for(image: str, secrets: list[Obj]) -> ImageAuth | None:
    """Credentials for ``image`` from dockerconfigjson Secrets, as the kubelet looks them up."""
    registry = registry_of(image)
    for secret in secrets:
        raw = (secret.get("data") or {}).get(".dockerconfigjson")
        if not raw:
            continue
        try:
            config = orjson.loads(base64.b64decode(raw))
        except (ValueError, orjson.JSONDecodeError):
            continue
        for server, entry in (config.get("auths") or {}).items():
            host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
            if host not in (registry, "index.docker.io") and not (
                registry == "docker.io" and host.endswith("docker.io")
            ):
                continue
            username, password = entry.get("username"), entry.get("password")
            if (not username or not password) and entry.get("auth"):
                decoded = base64.b64decode(entry["auth"]).decode(errors="replace")
                username, _, password = decoded.partition(":")
            if username and password:
                return ImageAuth(username, password, registry)
    return None


class PodWorker:
    def __init__(self, host: PodHost, uid: str, resync: float) -> None:
        self.host = host
        self.uid = uid
        self.resync = resync
        self.pod: Obj | None = None
        self.wanted = True  # False once the API no longer assigns the pod here
        self.changed = asyncio.Event()
        self.sandbox: ContainerRecord | None = None
        self.init: dict[str, ContainerState] = {}
        self.apps: dict[str, ContainerState] = {}
        self.volumes: dict[str, PreparedVolume] = {}
        self.pod_ip = ""
        self.start_time: Any = None
        self.last_status: Obj | None = None
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle of the worker ----------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pod-{self.uid[:8]}")

    def update(self, pod: Obj | None) -> None:
        if pod is None:
            self.wanted = False
        else:
            self.pod = pod
            self.wanted = True
        self.changed.set()

    def adopt(self, records: list[ContainerRecord]) -> None:
        """Take over containers found in the runtime after an agent restart."""
        by_name: dict[str, list[ContainerRecord]] = {}
        for record in records:
            if record.role == "sandbox":
                if record.state == "running" and (
                    self.sandbox is None or record.restart_count >= self.sandbox.restart_count
                ):
                    self.sandbox = record
                continue
            by_name.setdefault(f"{record.role}/{record.name}", []).append(record)
        for key, found in by_name.items():
            role, name = key.split("/", 1)
            found.sort(key=lambda r: r.restart_count)
            state = ContainerState(
                current=found[-1], previous=found[-2] if len(found) > 1 else None
            )
            (self.init if role == "init" else self.apps)[name] = state

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._stop_probes_all()

    async def _run(self) -> None:
        delay = 1.0
        while True:
            self.changed.clear()
            try:
                finished = await self.reconcile()
                delay = 1.0
            except RuntimeUnavailable as error:
                log.warning("pod %s: runtime unavailable: %s", self._name(), error)
                finished = False
                delay = min(delay * 2, 15.0)
                await self._wait(delay)
                continue
            except Exception:
                log.exception("pod %s: reconcile failed", self._name())
                finished = False
            if finished:
                self.finished.set()
                return
            await self._wait(self._next_wake())

    async def _wait(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.host.clock.sleep(seconds))
        changed = asyncio.ensure_future(self.changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    def _next_wake(self) -> float:
        now = self.host.clock.monotonic()
        wake = self.resync
        for state in (*self.init.values(), *self.apps.values()):
            if state.restart_at is not None:
                wake = min(wake, max(state.restart_at - now, 0.0))
        return wake

    def _name(self) -> str:
        if self.pod is None:
            return self.uid[:8]
        metadata = self.pod.get("metadata") or {}
        return f"{metadata.get('namespace')}/{metadata.get('name')}"

    # --- one reconcile --------------------------------------------------------------------

    async def reconcile(self) -> bool:
        pod = self.pod
        if pod is None or not self.wanted or (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self._terminate(pod)
            return True
        spec = pod.get("spec") or {}
        if self.start_time is None:
            self.start_time = self.host.clock.now()
        if not await self._ensure_sandbox(pod):
            self._report(pod, init_failed=False)
            return False
        try:
            local_volumes = getattr(self.host, "local_volumes", None)
            self.volumes = await prepare(
                pod,
                self.host.pods_dir,
                self.host.get_configmap,
                self.host.get_secret,
                local_volumes.resolve if local_volumes is not None else None,
            )
        except VolumeError as error:
            await self.host.event(
                pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {error}"
            )
            # A claim that is not usable here is configuration the user must fix
            # (or wait for); anything else is a mount still being set up.
            reason = (
                "CreateContainerConfigError"
                if isinstance(error, ClaimNotReady)
                else "ContainerCreating"
            )
            for name in [c["name"] for c in spec.get("containers") or []]:
                state = self.apps.setdefault(name, ContainerState())
                if state.current is None:
                    state.waiting_reason, state.waiting_message = reason, str(error)
            self._report(pod, init_failed=False)
            return False
        init_done, init_failed = await self._run_init(pod)
        if init_done:
            for container in spec.get("containers") or []:
                await self._ensure_container(pod, container, "app", self.apps)
        self._report(pod, init_failed=init_failed)
        return False

    # --- sandbox --------------------------------------------------------------------------

    async def _ensure_sandbox(self, pod: Obj) -> bool:
        if self.sandbox is not None:
            current = await self.host.runtime.inspect(self.sandbox.id)
            if current is not None and current.state == "running":
                self.sandbox = current
                if not self.pod_ip:
                    self.pod_ip = await self._wire(pod)
                return True
            await self.host.event(
                pod,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            )
            await self._kill_all(pod, grace=0, reason="")
        metadata = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        config = ContainerConfig(
            pod_uid=metadata.get("uid", ""),
            pod_name=metadata.get("name", ""),
            pod_namespace=metadata.get("namespace", "default"),
            name="POD",
            role="sandbox",
            image="",
            command=None,
            args=None,
            env={},
            working_dir=None,
            mounts=[],
            labels={},
            hostname=spec.get("hostname") or metadata.get("name", ""),
            host_network=bool(spec.get("hostNetwork")),
        )
        try:
            self.sandbox = await self.host.runtime.run_sandbox(config)
        except RuntimeFailure as error:
            if isinstance(error, RuntimeUnavailable):
                raise
            await self.host.event(
                pod,
                "Warning",
                "FailedCreatePodSandBox",
                f"Failed to create pod sandbox: {error.message}",
            )
            return False
        self.pod_ip = await self._wire(pod)
        return True

    async def _wire(self, pod: Obj) -> str:
        assert self.sandbox is not None
        if (pod.get("spec") or {}).get("hostNetwork"):
            return self.host.host_ip
        netns = await self.host.runtime.netns_path(self.sandbox)
        if not netns:
            return ""
        return await self.host.network_setup(pod, netns)

    # --- init and app containers --------------------------------------------------------

    async def _run_init(self, pod: Obj) -> tuple[bool, bool]:
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy", "Always")
        for container in spec.get("initContainers") or []:
            state = self.init.setdefault(container["name"], ContainerState())
            current = state.current
            if current is not None and current.state == "exited" and current.exit_code == 0:
                continue
            if current is not None and current.state == "exited" and policy == "Never":
                return False, True
            await self._ensure_container(pod, container, "init", self.init)
            return False, False
        return True, False

    async def _ensure_container(
        self, pod: Obj, container: Obj, role: Role, states: dict[str, ContainerState]
    ) -> None:
        name = container["name"]
        state = states.setdefault(name, ContainerState())
        runtime = self.host.runtime
        if state.current is not None:
            fresh = await runtime.inspect(state.current.id)
            if fresh is None:
                state.current = None
            else:
                state.current = fresh
        current = state.current
        if current is not None and current.state == "running":
            if current.spec_hash and current.spec_hash != spec_hash(container):
                await self.host.event(
                    pod,
                    "Normal",
                    "Killing",
                    f"Container {name} definition changed, will be restarted",
                    _path(role, name),
                )
                await self._stop_container(pod, state, role, name)
                await self._start_new(pod, container, role, state, state.previous)
                return
            if not state.probing:
                self._start_probes(pod, container, state)
            if self._liveness_failed(state):
                await self.host.event(
                    pod,
                    "Normal",
                    "Killing",
                    f"Container {name} failed liveness probe, will be restarted",
                    _path(role, name),
                )
                await self._stop_container(pod, state, role, name)
                # Falls through to the exited branch on the next reconcile.
                self.changed.set()
            state.waiting_reason = ""
            return
        if current is not None and current.state == "exited":
            self._stop_probes(state)
            if not self._should_restart(pod, current, role):
                state.waiting_reason = ""
                return
            now = self.host.clock.monotonic()
            key = f"{self.uid}/{role}/{name}"
            if state.restart_at is None:
                ran = 0.0
                if current.started_at and current.finished_at:
                    ran = (current.finished_at - current.started_at).total_seconds()
                delay = self.host.restarts.next_delay(key, ran)
                # The wait runs from the container's exit, not from when this
                # reconcile noticed it, as the kubelet's back-off does.
                since_exit = 0.0
                if current.finished_at is not None:
                    since_exit = (self.host.clock.now() - current.finished_at).total_seconds()
                state.restart_at = now + max(delay - max(since_exit, 0.0), 0.0)
            if now < state.restart_at:
                delay = self.host.restarts.current(key) or 0
                state.waiting_reason = "CrashLoopBackOff"
                state.waiting_message = (
                    f"back-off {delay:g}s restarting failed container={name} "
                    f"pod={(pod.get('metadata') or {}).get('name')}"
                )
                if not state.backoff_reported:
                    # One BackOff event per wait, not one per reconcile.
                    state.backoff_reported = True
                    await self.host.event(
                        pod,
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {name} in pod {self._name()}",
                        _path(role, name),
                    )
                return
            state.restart_at = None
            state.backoff_reported = False
            previous = current
            if state.previous is not None and state.previous.id != current.id:
                await runtime.remove(state.previous.id)
            await self._start_new(pod, container, role, state, previous)
            return
        if current is not None and current.state == "created":
            await self._start(pod, state, role, name)
            return
        await self._start_new(pod, container, role, state, state.previous)

    def _should_restart(self, pod: Obj, current: ContainerRecord, role: Role) -> bool:
        policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
        if role == "init":
            return current.exit_code != 0 and policy != "Never"
        if policy == "Always":
            return True
        if policy == "OnFailure":
            return current.exit_code != 0
        return False

    async def _start_new(
        self,
        pod: Obj,
        container: Obj,
        role: Role,
        state: ContainerState,
        previous: ContainerRecord | None,
    ) -> None:
        name = container["name"]
        assert self.sandbox is not None
        if not await self._ensure_image(pod, container, role, state):
            return
        restart_count = (previous.restart_count + 1) if previous is not None else 0
        try:
            env = await resolve_env(
                pod,
                container,
                self.host.get_configmap,
                self.host.get_secret,
                self.host.node_allocatable,
                await self.host.extra_env(pod),
            )
            config = container_config(
                pod,
                container,
                role,
                env,
                self.volumes,
                self._standard_mounts(pod, container, restart_count),
                restart_count,
                pod_dir(self.host.pods_dir, self.uid) / SUBPATHS_DIR,
                await self._image_user(pod, container),
            )
        except ConfigError as error:
            state.waiting_reason, state.waiting_message = "CreateContainerConfigError", str(error)
            await self.host.event(pod, "Warning", "Failed", f"Error: {error}", _path(role, name))
            return
        try:
            record = await self.host.runtime.create(config, self.sandbox)
        except RuntimeFailure as error:
            if isinstance(error, RuntimeUnavailable):
                raise
            state.waiting_reason, state.waiting_message = error.reason, error.message
            await self.host.event(
                pod, "Warning", "Failed", f"Error: {error.message}", _path(role, name)
            )
            return
        await self.host.event(
            pod, "Normal", "Created", f"Created container {name}", _path(role, name)
        )
        state.previous = previous
        state.current = record
        await self._start(pod, state, role, name)

    async def _start(self, pod: Obj, state: ContainerState, role: Role, name: str) -> None:
        assert state.current is not None
        try:
            await self.host.runtime.start(state.current.id)
        except RuntimeFailure as error:
            if isinstance(error, RuntimeUnavailable):
                raise
            state.waiting_reason, state.waiting_message = "RunContainerError", error.message
            await self.host.event(
                pod, "Warning", "Failed", f"Error: {error.message}", _path(role, name)
            )
            return
        state.current = await self.host.runtime.inspect(state.current.id) or state.current
        state.waiting_reason = state.waiting_message = ""
        state.seeded_ready = None
        await self.host.event(
            pod, "Normal", "Started", f"Started container {name}", _path(role, name)
        )

    def _standard_mounts(self, pod: Obj, container: Obj, restart: int) -> list[Mount]:
        """What the kubelet gives every container: the termination-message file, resolv.conf."""
        path = container.get("terminationMessagePath") or "/dev/termination-log"
        directory = pod_dir(self.host.pods_dir, self.uid) / "containers" / container["name"]
        directory.mkdir(parents=True, exist_ok=True)
        log_file = directory / f"termination-{restart}"
        log_file.touch(exist_ok=True)
        mounts = [Mount(source=str(log_file), target=path)]
        resolv = self.host.resolv_conf(pod)
        if resolv is not None:
            resolv_file = pod_dir(self.host.pods_dir, self.uid) / "resolv.conf"
            resolv_file.write_text(resolv)
            mounts.append(Mount(source=str(resolv_file), target="/etc/resolv.conf", read_only=True))
        return mounts

    async def _image_user(self, pod: Obj, container: Obj) -> str:
        """Only asked of the runtime when runAsNonRoot needs it."""
        security = container.get("securityContext") or {}
        pod_security = (pod.get("spec") or {}).get("securityContext") or {}
        if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            return ""
        if security.get("runAsUser", pod_security.get("runAsUser")) is not None:
            return ""
        return await self.host.runtime.image_user(container.get("image", ""))

    async def _ensure_image(
        self, pod: Obj, container: Obj, role: Role, state: ContainerState
    ) -> bool:
        image = container.get("image", "")
        name = container["name"]
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        runtime = self.host.runtime
        present = await runtime.image_present(image)
        if policy == "Never":
            if not present:
                state.waiting_reason = "ErrImageNeverPull"
                state.waiting_message = (
                    f'Container image "{image}" is not present with pull policy of Never'
                )
                await self.host.event(
                    pod, "Warning", "ErrImageNeverPull", state.waiting_message, _path(role, name)
                )
                return False
            return True
        if present and policy == "IfNotPresent":
            return True
        key = f"pull/{self.uid}/{name}"
        now = self.host.clock.monotonic()
        if (
            state.restart_at is not None
            and now < state.restart_at
            and (state.waiting_reason in ("ErrImagePull", "ImagePullBackOff"))
        ):
            state.waiting_reason = "ImagePullBackOff"
            state.waiting_message = f'Back-off pulling image "{image}"'
            return False
        await self.host.event(
            pod, "Normal", "Pulling", f'Pulling image "{image}"', _path(role, name)
        )
        secrets = []
        for reference in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            found = await self.host.get_secret(
                (pod.get("metadata") or {}).get("namespace", "default"), reference.get("name", "")
            )
            if found is not None:
                secrets.append(found)
        try:
            await runtime.pull(image, auth_for(image, secrets))
        except ImagePullError as error:
            delay = self.host.pulls.next_delay(key, 0)
            state.restart_at = now + delay
            state.waiting_reason, state.waiting_message = "ErrImagePull", error.message
            await self.host.event(pod, "Warning", "Failed", error.message, _path(role, name))
            return False
        self.host.pulls.forget(key)
        state.restart_at = None
        await self.host.event(
            pod, "Normal", "Pulled", f'Successfully pulled image "{image}"', _path(role, name)
        )
        return True

    # --- probes ---------------------------------------------------------------------------

    def _start_probes(self, pod: Obj, container: Obj, state: ContainerState) -> None:
        current = state.current
        if current is None:
            return
        started = self.host.clock.monotonic()
        state.probes = {}
        state.probing = True
        for kind, key in (
            ("startup", "startupProbe"),
            ("liveness", "livenessProbe"),
            ("readiness", "readinessProbe"),
        ):
            spec = container.get(key)
            if spec:
                probe = ProbeState(kind, spec, started)
                if kind == "readiness" and state.seeded_ready is not None:
                    probe.result = state.seeded_ready
                state.probes[kind] = probe
        for probe in state.probes.values():
            state.probe_tasks.append(
                asyncio.create_task(self._probe_loop(pod, container, state, probe, current.id))
            )

    async def _probe_loop(
        self, pod: Obj, container: Obj, state: ContainerState, probe: ProbeState, container_id: str
    ) -> None:
        clock = self.host.clock
        while state.current is not None and state.current.id == container_id:
            startup = state.probes.get("startup")
            if probe.kind != "startup" and startup is not None and startup.result is not True:
                await clock.sleep(1.0)
                continue
            if probe.kind == "startup" and probe.result is True:
                return  # a startup probe stops once it has passed
            now = clock.monotonic()
            if not probe.due(now):
                await clock.sleep(probe.next_due(now))
                continue
            netns = ""
            if self.sandbox is not None:
                with contextlib.suppress(RuntimeFailure):
                    netns = await self.host.runtime.netns_path(self.sandbox)
            outcome = await run_probe(
                probe.spec, container, container_id, self.host.runtime, netns, self.pod_ip
            )
            flipped = probe.record(outcome, clock.monotonic())
            if not outcome.ok:
                await self.host.event(
                    pod,
                    "Warning",
                    "Unhealthy",
                    f"{probe.kind.capitalize()} probe failed: {outcome.message}",
                    _path("app", container["name"]),
                )
            if flipped:
                self.changed.set()

    def _liveness_failed(self, state: ContainerState) -> bool:
        liveness = state.probes.get("liveness")
        startup = state.probes.get("startup")
        if startup is not None and startup.result is False:
            return True
        return liveness is not None and liveness.result is False

    def _ready(self, state: ContainerState) -> bool:
        current = state.current
        if current is None or current.state != "running":
            return False
        readiness = state.probes.get("readiness")
        if readiness is None:
            return self._started(state)
        return readiness.result is True and self._started(state)

    def _started(self, state: ContainerState) -> bool:
        if state.current is None or state.current.state != "running":
            return False
        startup = state.probes.get("startup")
        return startup is None or startup.result is True

    def _stop_probes(self, state: ContainerState) -> None:
        for task in state.probe_tasks:
            task.cancel()
        state.probe_tasks.clear()
        state.probes = {}
        state.probing = False

    def _stop_probes_all(self) -> None:
        for state in (*self.init.values(), *self.apps.values()):
            self._stop_probes(state)

    def seed_from_status(self, pod: Obj) -> None:
        """Carry readiness over from the last reported status, for adopted containers."""
        for reported in (pod.get("status") or {}).get("containerStatuses") or []:
            state = self.apps.get(reported.get("name", ""))
            if state is None or state.current is None:
                continue
            if reported.get("containerID", "").endswith(state.current.id):
                state.seeded_ready = bool(reported.get("ready"))

    # --- stopping -------------------------------------------------------------------------

    async def _stop_container(self, pod: Obj, state: ContainerState, role: Role, name: str) -> None:
        if state.current is None:
            return
        self._stop_probes(state)
        spec = pod.get("spec") or {}
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
        await self.host.runtime.stop(state.current.id, grace)
        state.current = await self.host.runtime.inspect(state.current.id) or state.current

    async def _kill_all(self, pod: Obj | None, grace: int, reason: str) -> None:
        runtime = self.host.runtime
        stops = []
        for role, states in (("app", self.apps), ("init", self.init)):
            for name, state in states.items():
                self._stop_probes(state)
                if state.current is not None and state.current.state == "running":
                    if pod is not None and reason:
                        await self.host.event(
                            pod,
                            "Normal",
                            "Killing",
                            f"Stopping container {name}",
                            _path(role, name),
                        )
                    stops.append(runtime.stop(state.current.id, grace))
        await asyncio.gather(*stops, return_exceptions=True)
        records = [s.current for s in (*self.apps.values(), *self.init.values()) if s.current]
        records += [s.previous for s in (*self.apps.values(), *self.init.values()) if s.previous]
        for record in records:
            await runtime.remove(record.id)
        self.apps.clear()
        self.init.clear()
        if self.sandbox is not None:
            await runtime.stop(self.sandbox.id, 0)
            await runtime.remove(self.sandbox.id)
            self.sandbox = None
        self.pod_ip = ""

    async def _terminate(self, pod: Obj | None) -> None:
        grace = 2
        if pod is not None:
            metadata = pod.get("metadata") or {}
            configured = metadata.get("deletionGracePeriodSeconds")
            if configured is None:
                configured = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            grace = int(configured)
        await self._kill_all(pod, grace, reason="Killing")
        if pod is not None:
            with contextlib.suppress(Exception):
                await self.host.network_teardown(pod)
        cleanup(self.host.pods_dir, self.uid)
        self.host.restarts.forget_prefix(self.uid)
        if pod is not None and (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self.host.confirm_deleted(pod)

    # --- status ---------------------------------------------------------------------------

    def _report(self, pod: Obj, init_failed: bool) -> None:
        spec = pod.get("spec") or {}
        init_views = [self._view(c, self.init) for c in spec.get("initContainers") or []]
        views = [self._view(c, self.apps) for c in spec.get("containers") or []]
        init_done = all(
            v.current is not None and v.current.state == "exited" and v.current.exit_code == 0
            for v in init_views
        )
        phase = pod_phase(spec.get("restartPolicy", "Always"), init_done, init_failed, views)
        status = build_status(
            pod,
            phase=phase,
            init_views=init_views,
            views=views,
            init_done=init_done,
            host_ip=self.host.host_ip,
            pod_ip=self.pod_ip,
            start_time=self.start_time,
            now=self.host.clock.now(),
        )
        comparable = _without_times(status)
        if self.last_status is not None and comparable == self.last_status:
            return
        self.last_status = comparable
        self.host.report_status(pod, status)

    def _view(self, container: Obj, states: dict[str, ContainerState]) -> ContainerView:
        name = container["name"]
        state = states.get(name) or ContainerState()
        message = ""
        current = state.current
        if current is not None and current.state == "exited":
            message = self._termination_message(container, current)
        return ContainerView(
            name=name,
            spec_image=container.get("image", ""),
            current=current,
            previous=state.previous,
            ready=self._ready(state),
            started=self._started(state),
            waiting_reason=state.waiting_reason,
            waiting_message=state.waiting_message,
            termination_message=message,
        )

    def _termination_message(self, container: Obj, record: ContainerRecord) -> str:
        path = (
            pod_dir(self.host.pods_dir, self.uid)
            / "containers"
            / container["name"]
            / f"termination-{record.restart_count}"
        )
        try:
            text: str = path.read_text(errors="replace")
        except OSError:
            return ""
        return text[:4096].strip()


def _path(role: str, name: str) -> str:
    return f"spec.{'initContainers' if role == 'init' else 'containers'}{{{name}}}"


def _without_times(status: Obj) -> Obj:
    """The status minus transition times, to tell a real change from a re-computation."""
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}
        for c in status.get("conditions") or []
    ]
    return out
