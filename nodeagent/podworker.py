"""One pod on this node, driven level-triggered toward what its spec asks.

Each reconcile looks at the runtime and the desired pod and takes the next
steps: infra container, volumes, images, init containers in order, app
containers, restarts under the restart policy with CrashLoopBackOff, probes,
and graceful termination. Containers that are running and still match their
spec are never touched, which is what lets a restarted agent adopt them.

As in the kubelet, the worker conducts parts of one idea each: the image
puller (pull policy, registry auth, ImagePullBackOff), the prober manager,
the restart policy (with its back-off) and the status view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from corral.backoff import Backoff
from corral.objects import Obj, meta, spec
from nodeagent.agentmetrics import PodStartClock
from nodeagent.imagepuller import ImagePuller
from nodeagent.localvolumes import ClaimNotReady
from nodeagent.podconfig import ConfigError, container_config, resolve_env, spec_hash
from nodeagent.podstate import ContainerState, PodHost, field_path, pod_name
from nodeagent.prober import ProberManager
from nodeagent.restartpolicy import RestartPolicy
from nodeagent.runtime.base import (
    ContainerConfig,
    ContainerRecord,
    Mount,
    Role,
    RuntimeFailure,
    RuntimeUnavailable,
)
from nodeagent.statusview import StatusView, termination_log
from nodeagent.volumes import (
    SUBPATHS_DIR,
    PreparedVolume,
    VolumeError,
    cleanup,
    pod_dir,
    prepare,
)

log = logging.getLogger(__name__)

# Retrying after the runtime was unreachable: from 2 s, doubling, at most this.
_UNAVAILABLE_RETRY_MAX = 15.0
# The grace period of a pod the worker never saw (adopted, then not listed).
_UNKNOWN_POD_GRACE = 2


class PodWorker:
    """Drives one pod of this node; the agent starts it, feeds it the pod, and reaps it."""

    def __init__(self, host: PodHost, uid: str, resync: float) -> None:
        self.host = host
        self.uid = uid
        self.resync = resync
        self.pod: Obj | None = None
        self.wanted = True  # False once the API no longer assigns the pod here
        self.sandbox: ContainerRecord | None = None
        self.init: dict[str, ContainerState] = {}
        self.apps: dict[str, ContainerState] = {}
        self.volumes: dict[str, PreparedVolume] = {}
        self.pod_ip = ""
        self.start_time: datetime | None = None
        self.start_clock = PodStartClock(host.clock.monotonic)
        self.images = ImagePuller(host, uid)
        self.prober = ProberManager(host, lambda: self.sandbox, lambda: self.pod_ip, self.wake)
        self.restart_policy = RestartPolicy(host, uid)
        self.status = StatusView(host, uid, self.prober)
        self._changed = asyncio.Event()
        self._finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- what the agent drives ------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether ``start`` was called; a worker is started once, and never again."""
        return self._task is not None

    @property
    def done(self) -> bool:
        """The pod is terminated and cleaned up; the worker has nothing left to do."""
        return self._finished.is_set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pod-{self.uid[:8]}")

    def update(self, pod: Obj | None) -> None:
        if pod is None:
            self.wanted = False
        else:
            self.pod = pod
            self.wanted = True
        self.wake()

    def wake(self) -> None:
        """Reconcile soon: the pod or one of its containers changed."""
        self._changed.set()

    async def wait(self) -> None:
        """Until the pod is terminated and cleaned up."""
        await self._finished.wait()

    async def stop(self) -> None:
        """Stop driving the pod (the agent is stopping); its containers keep running."""
        if self._task is not None:
            self._task.cancel()
            # The CancelledError is the one just asked for; _run lets nothing
            # else out (it logs what a reconcile raises).
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.prober.stop_all((*self.init.values(), *self.apps.values()))

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

    def seed_from_status(self, pod: Obj) -> None:
        """Carry readiness over from the last reported status, for adopted containers."""
        self.prober.seed_readiness(pod, self.apps)

    def running_container_id(self, name: str) -> str | None:
        """The ID of app container ``name`` while it runs."""
        state = self.apps.get(name)
        current = state.current if state is not None else None
        return current.id if current is not None and current.state == "running" else None

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        # Jittered: every pod of a node waits on the same runtime, and would
        # otherwise all ask it again at the same moments.
        backoff = Backoff(2.0, _UNAVAILABLE_RETRY_MAX)
        while True:
            self._changed.clear()
            try:
                finished = await self.reconcile()
                backoff.reset()
            except RuntimeUnavailable as error:
                log.warning("pod %s: runtime unavailable: %s", self._name(), error)
                await self._sleep(backoff.next())
                continue
            except Exception:
                log.exception("pod %s: reconcile failed", self._name())
                finished = False
            if finished:
                self._finished.set()
                return
            await self._sleep(self._next_wake())

    async def _sleep(self, seconds: float) -> None:
        """For ``seconds``, or until woken."""
        sleeper = asyncio.ensure_future(self.host.clock.sleep(seconds))
        changed = asyncio.ensure_future(self._changed.wait())
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
        return pod_name(self.pod, self.uid)

    # --- one reconcile --------------------------------------------------------------------

    async def reconcile(self) -> bool:
        """One step toward the spec; True once the pod is terminated and cleaned up."""
        pod = self.pod
        if pod is None or not self.wanted or meta(pod).get("deletionTimestamp"):
            await self._terminate(pod)
            return True
        if self.start_time is None:
            self.start_time = self.host.clock.now()
            self.start_clock.mark("queued")
        init_failed = False
        if await self._ensure_sandbox(pod) and await self._mount_volumes(pod):
            init_done, init_failed = await self._run_init(pod)
            if init_done:
                for container in spec(pod).get("containers") or []:
                    await self._ensure_container(pod, container, "app", self.apps)
                self._note_started(pod)
        self.status.report(
            pod,
            init_failed=init_failed,
            init=self.init,
            apps=self.apps,
            pod_ip=self.pod_ip,
            start_time=self.start_time,
        )
        return False

    def _note_started(self, pod: Obj) -> None:
        """kubelet_pod_start_duration_seconds, once every container has run."""
        if self.start_clock.observed:
            return
        names = [c["name"] for c in spec(pod).get("containers") or []]
        states = [self.apps.get(name) for name in names]
        if names and all(
            state is not None and state.current is not None and state.current.state == "running"
            for state in states
        ):
            self.start_clock.running(self._name())

    async def _mount_volumes(self, pod: Obj) -> bool:
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
            for name in [c["name"] for c in spec(pod).get("containers") or []]:
                state = self.apps.setdefault(name, ContainerState())
                if state.current is None:
                    state.waiting_reason, state.waiting_message = reason, str(error)
            return False
        self.start_clock.mark("volumes")
        return True

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
        try:
            self.sandbox = await self.host.runtime.run_sandbox(_sandbox_config(pod))
            self.start_clock.mark("sandbox")
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
        self.start_clock.mark("network")
        return True

    async def _wire(self, pod: Obj) -> str:
        assert self.sandbox is not None
        if spec(pod).get("hostNetwork"):
            return self.host.host_ip
        netns = await self.host.runtime.netns_path(self.sandbox)
        if not netns:
            return ""
        return await self.host.network_setup(pod, netns)

    # --- init and app containers --------------------------------------------------------

    async def _run_init(self, pod: Obj) -> tuple[bool, bool]:
        """(all init containers succeeded, one failed for good)."""
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
        state = states.setdefault(container["name"], ContainerState())
        if state.current is not None:
            state.current = await self.host.runtime.inspect(state.current.id)
        current = state.current
        if current is None:
            await self._start_new(pod, container, role, state, state.previous)
        elif current.state == "running":
            await self._keep_running(pod, container, role, state, current)
        elif current.state == "exited":
            await self._after_exit(pod, container, role, state, current)
        elif current.state == "created":
            await self._start(pod, state, role, container["name"])
        else:
            await self._start_new(pod, container, role, state, state.previous)

    async def _keep_running(
        self,
        pod: Obj,
        container: Obj,
        role: Role,
        state: ContainerState,
        current: ContainerRecord,
    ) -> None:
        """Restart a running container whose spec changed or whose liveness failed."""
        name = container["name"]
        if current.spec_hash and current.spec_hash != spec_hash(container):
            await self.host.event(
                pod,
                "Normal",
                "Killing",
                f"Container {name} definition changed, will be restarted",
                field_path(role, name),
            )
            await self._stop_container(pod, state)
            await self._start_new(pod, container, role, state, state.previous)
            return
        if not state.probing:
            self.prober.start(pod, container, state)
        if self.prober.liveness_failed(state):
            await self.host.event(
                pod,
                "Normal",
                "Killing",
                f"Container {name} failed liveness probe, will be restarted",
                field_path(role, name),
            )
            await self._stop_container(pod, state)
            # Falls through to the exited branch on the next reconcile.
            self.wake()
        state.waiting_reason = ""

    async def _after_exit(
        self,
        pod: Obj,
        container: Obj,
        role: Role,
        state: ContainerState,
        exited: ContainerRecord,
    ) -> None:
        """Start an exited container again, if its restart policy and back-off allow."""
        self.prober.stop(state)
        if not self.restart_policy.restarts(pod, exited, role):
            state.waiting_reason = ""
            return
        if await self.restart_policy.holds(pod, container["name"], role, state, exited):
            return
        if state.previous is not None and state.previous.id != exited.id:
            await self.host.runtime.remove(state.previous.id)
        await self._start_new(pod, container, role, state, exited)

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
        if not await self.images.ensure(pod, container, role, state):
            return
        self.start_clock.mark("image")
        restart_count = (previous.restart_count + 1) if previous is not None else 0
        try:
            config = await self._container_config(pod, container, role, restart_count)
        except ConfigError as error:
            state.waiting_reason, state.waiting_message = "CreateContainerConfigError", str(error)
            await self.host.event(
                pod, "Warning", "Failed", f"Error: {error}", field_path(role, name)
            )
            return
        self.start_clock.mark("config")
        try:
            record = await self.host.runtime.create(config, self.sandbox)
            self.start_clock.mark("create")
        except RuntimeFailure as error:
            if isinstance(error, RuntimeUnavailable):
                raise
            state.waiting_reason, state.waiting_message = error.reason, error.message
            await self.host.event(
                pod, "Warning", "Failed", f"Error: {error.message}", field_path(role, name)
            )
            return
        await self.host.event(
            pod, "Normal", "Created", f"Created container {name}", field_path(role, name)
        )
        self.start_clock.mark("events")
        state.previous = previous
        state.current = record
        await self._start(pod, state, role, name)

    async def _container_config(
        self, pod: Obj, container: Obj, role: Role, restart_count: int
    ) -> ContainerConfig:
        """What the runtime creates the container from; raises ConfigError."""
        env = await resolve_env(
            pod,
            container,
            self.host.get_configmap,
            self.host.get_secret,
            self.host.node_allocatable,
            await self.host.extra_env(pod),
        )
        return container_config(
            pod,
            container,
            role,
            env,
            self.volumes,
            self._standard_mounts(pod, container, restart_count),
            restart_count,
            pod_dir(self.host.pods_dir, self.uid) / SUBPATHS_DIR,
            await self.images.image_user(pod, container),
        )

    async def _start(self, pod: Obj, state: ContainerState, role: Role, name: str) -> None:
        assert state.current is not None
        try:
            await self.host.runtime.start(state.current.id)
            self.start_clock.mark("start")
        except RuntimeFailure as error:
            if isinstance(error, RuntimeUnavailable):
                raise
            state.waiting_reason, state.waiting_message = "RunContainerError", error.message
            await self.host.event(
                pod, "Warning", "Failed", f"Error: {error.message}", field_path(role, name)
            )
            return
        state.current = await self.host.runtime.inspect(state.current.id) or state.current
        self.start_clock.mark("inspect")
        state.waiting_reason = state.waiting_message = ""
        state.seeded_ready = None
        await self.host.event(
            pod, "Normal", "Started", f"Started container {name}", field_path(role, name)
        )
        self.start_clock.mark("events")

    def _standard_mounts(self, pod: Obj, container: Obj, restart: int) -> list[Mount]:
        """What the kubelet gives every container: the termination-message file, resolv.conf."""
        path = container.get("terminationMessagePath") or "/dev/termination-log"
        log_file = termination_log(self.host.pods_dir, self.uid, container["name"], restart)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.touch(exist_ok=True)
        mounts = [Mount(source=str(log_file), target=path)]
        resolv = self.host.resolv_conf(pod)
        if resolv is not None:
            resolv_file = pod_dir(self.host.pods_dir, self.uid) / "resolv.conf"
            resolv_file.write_text(resolv)
            mounts.append(Mount(source=str(resolv_file), target="/etc/resolv.conf", read_only=True))
        return mounts

    # --- stopping -------------------------------------------------------------------------

    async def _stop_container(self, pod: Obj, state: ContainerState) -> None:
        if state.current is None:
            return
        self.prober.stop(state)
        spec = pod.get("spec") or {}
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
        await self.host.runtime.stop(state.current.id, grace)
        state.current = await self.host.runtime.inspect(state.current.id) or state.current

    async def _kill_all(self, pod: Obj | None, grace: int, reason: str) -> None:
        """Stop and remove every container of the pod, and its sandbox."""
        runtime = self.host.runtime
        stopping: list[str] = []
        stops = []
        for role, states in (("app", self.apps), ("init", self.init)):
            for name, state in states.items():
                self.prober.stop(state)
                if state.current is not None and state.current.state == "running":
                    if pod is not None and reason:
                        await self.host.event(
                            pod,
                            "Normal",
                            "Killing",
                            f"Stopping container {name}",
                            field_path(role, name),
                        )
                    stopping.append(name)
                    stops.append(runtime.stop(state.current.id, grace))
        # Every container gets its stop at once, so one slow to go does not
        # hold the others; one that fails to stop is still removed below.
        outcomes = await asyncio.gather(*stops, return_exceptions=True)
        for name, outcome in zip(stopping, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning(
                    "pod %s: container %s did not stop cleanly (%s); removing it",
                    self._name(),
                    name,
                    _reason(outcome),
                )
        known = (*self.apps.values(), *self.init.values())
        records = [s.current for s in known if s.current]
        records += [s.previous for s in known if s.previous]
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
        grace = _UNKNOWN_POD_GRACE
        if pod is not None:
            metadata = meta(pod)
            configured = metadata.get("deletionGracePeriodSeconds")
            if configured is None:
                configured = spec(pod).get("terminationGracePeriodSeconds", 30)
            grace = int(configured)
        await self._kill_all(pod, grace, reason="Killing")
        if pod is not None:
            await self._unwire(pod)
        cleanup(self.host.pods_dir, self.uid)
        self.restart_policy.forget()
        if pod is not None and meta(pod).get("deletionTimestamp"):
            await self.host.confirm_deleted(pod)

    async def _unwire(self, pod: Obj) -> None:
        try:
            await self.host.network_teardown(pod)
        except Exception as error:
            # The containers are gone already; whatever of the pod's network
            # is left must not keep its deletion from being confirmed, so this
            # is logged for the operator and termination carries on.
            log.warning(
                "pod %s: network teardown failed: %s", pod_name(pod, self.uid), _reason(error)
            )


def _sandbox_config(pod: Obj) -> ContainerConfig:
    metadata = meta(pod)
    spec = pod.get("spec") or {}
    return ContainerConfig(
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


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
