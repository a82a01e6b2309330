"""The node agent: registers its node, follows its pods, and keeps them running.

It talks to the control plane over one gRPC channel (NodeControl): its node,
its lease, its pods and their status, the ConfigMaps and Secrets those pods
reference, and Events. A restarted agent lists what its runtime is
running, adopts it, and lets the full pod state from the control plane
decide what stays: nothing that should run is restarted, and whatever was
deleted meanwhile is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import socket
from pathlib import Path
from typing import Any

import grpc
import orjson

from corral.backoff import Backoff as RetryBackoff
from corral.backoff import jittered
from corral.client.kubeconfig import ClientConfig
from corral.events import EventRecorder
from corral.objects import Obj, labels_of, meta, spec
from corral.pki import KeyPair
from corral.proto import agent_pb2 as pb
from corral.replication import CONDITION as REPLICATION_CONDITION
from corral.replication import HOOKS_ANNOTATION as REPLICATION_HOOKS
from corral.version import KUBE_MAJOR, KUBE_MINOR, VERSION
from nodeagent import memory
from nodeagent.agentserver import start_agent_server
from nodeagent.backoff import Backoff
from nodeagent.config import AgentConfig
from nodeagent.controlchannel import ControlChannel
from nodeagent.credentials import CertDir, CredentialsError, NodeCredentials, obtain_serving
from nodeagent.eventqueue import EventQueue
from nodeagent.fencing import SelfFence, must_not_run_twice
from nodeagent.localvolumes import LocalVolumes
from nodeagent.logshipping import ClientTLS, LogShipper
from nodeagent.network.netlink import NetlinkError
from nodeagent.podnetwork import PodNetworking
from nodeagent.podworker import PodWorker
from nodeagent.replication import ReplicationSupervisor
from nodeagent.runtime.base import Runtime, RuntimeUnavailable
from nodeagent.usage import sampler_for

log = logging.getLogger(__name__)

# ConfigMaps and Secrets are read again after this long, so edits reach pods.
_OBJECT_CACHE_SECONDS = 5.0
# Asking for the serving certificate again: from half a second, doubling, at
# most half a minute apart.
_SERVING_RETRY_FIRST = 0.5
_SERVING_RETRY_MAX = 30.0
# Stopping, the agent records the Events still queued for at most this long.
_EVENT_DRAIN_SECONDS = 2.0


def machine_capacity(config: AgentConfig) -> dict[str, str]:
    cpu = config.cpu or str(os.cpu_count() or 1)
    memory = config.memory
    if memory is None:
        memory = "1Gi"
        # Without /proc/meminfo (not Linux, or masked) the node offers the default.
        with contextlib.suppress(OSError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1])}Ki"
                    break
    return {"cpu": cpu, "memory": memory, "pods": str(config.max_pods)}


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        # Node info only: a host without (or hiding) this file reports it empty,
        # as the kubelet does.
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def local_ip_towards(target: str) -> str:
    """The address this host uses to reach ``target`` (a UDP connect sends nothing)."""
    host = target.rsplit(":", 1)[0].strip("[]")
    # No route to the control plane yet: loopback, which --node-ip overrides.
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, 9))
        return str(sock.getsockname()[0])
    return "127.0.0.1"


def _channel(
    target: str, credentials: NodeCredentials | None, options: list[tuple[str, Any]]
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials.channel(), options=options)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        runtime: Runtime,
        *,
        credentials: NodeCredentials | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.runtime = runtime
        self.clock = config.clock
        self.pods_dir = config.pods_dir
        self.node = config.node_name
        self.host_ip = config.node_ip or local_ip_towards(config.control)
        self.capacity = machine_capacity(config)
        self.node_allocatable: Obj = dict(self.capacity)
        self.restarts = Backoff(config.backoff_base, config.backoff_max, config.backoff_reset)
        self.pulls = Backoff(config.backoff_base, config.backoff_max, config.backoff_reset)
        self.workers: dict[str, PodWorker] = {}
        self.pod_cidr = ""
        self.cluster_cidr = ""
        self.service_cidr = ""
        self.network: PodNetworking | None = None
        self.registered = asyncio.Event()
        self.synced = asyncio.Event()
        self.runtime_error = ""
        self._agent_server: grpc.aio.Server | None = None
        self._control: Any = None
        self._events: EventQueue | None = None
        self._cache: dict[tuple[str, str, str], tuple[float, Obj | None]] = {}
        self._pending_status: dict[str, tuple[str, str, str, bytes]] = {}
        self._status_ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._reapers: set[asyncio.Task[None]] = set()
        self.heartbeat_interval = 4.0
        # Persistent volumes' data: under the data dir, which outlives pods and restarts.
        self.local_volumes = LocalVolumes(
            config.data_dir / "volumes",
            self.node,
            lambda: config.labels,
            self._cached,
            clock_sleep=self.clock.sleep,
        )
        self.fence = SelfFence(self.clock, config.fence_after)
        self._pods_task: asyncio.Task[None] | None = None
        self._replication_conditions: dict[str, Obj] = {}
        self._last_status: dict[str, tuple[Obj, Obj]] = {}
        self.replication = ReplicationSupervisor(self)

    # --- the PodHost interface ------------------------------------------------------------

    async def get_configmap(self, namespace: str, name: str) -> Obj | None:
        return await self._cached("ConfigMap", namespace, name)

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        return await self._cached("Secret", namespace, name)

    async def _cached(self, kind: str, namespace: str, name: str) -> Obj | None:
        key = (kind, namespace, name)
        now = self.clock.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < _OBJECT_CACHE_SECONDS:
            return hit[1]
        reply = await self._control.GetObject(
            pb.ObjectRef(node_name=self.node, kind=kind, namespace=namespace, name=name),
            timeout=15,
        )
        found: Obj | None = orjson.loads(reply.object_json) if reply.found else None
        self._cache[key] = (now, found)
        return found

    async def event(
        self, pod: Obj, kind: str, reason: str, message: str, field_path: str = ""
    ) -> None:
        if self._events is not None:
            self._events.put(pod, kind, reason, message, field_path)

    def container_id(self, uid: str, container: str) -> str | None:
        worker = self.workers.get(uid)
        return worker.running_container_id(container) if worker is not None else None

    def last_contact(self) -> float:
        """When the last heartbeat the control plane acknowledged was sent (monotonic).

        Only heartbeats renew the node's Lease, which is what the control
        plane judges the node by; replicated primaries are fenced from it,
        as the StatefulSet fence is.
        """
        return self.fence.acknowledged_at

    def report_replication(self, pod: Obj, condition: Obj) -> None:
        """A replicated pod's role, sent with the pod's last status (or its next)."""
        metadata = meta(pod)
        uid = str(metadata.get("uid", ""))
        self._replication_conditions[uid] = condition
        last = self._last_status.get(uid)
        if last is not None:
            self.report_status(last[0], last[1])

    def report_status(self, pod: Obj, status: Obj) -> None:
        metadata = meta(pod)
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        uid = str(metadata.get("uid", ""))
        if REPLICATION_HOOKS in (metadata.get("annotations") or {}):
            self._last_status[uid] = (pod, status)
        replication = self._replication_conditions.get(uid)
        if replication is not None:
            # The pod worker builds the rest of the status; the role is this
            # agent's replication loop's, and travels in every report.
            others = [
                c for c in status.get("conditions") or [] if c.get("type") != REPLICATION_CONDITION
            ]
            status = {**status, "conditions": [*others, replication]}
        self._pending_status[key] = (
            metadata.get("namespace", ""),
            metadata.get("name", ""),
            metadata.get("uid", ""),
            orjson.dumps(status),
        )
        self._status_ready.set()

    async def confirm_deleted(self, pod: Obj) -> None:
        metadata = meta(pod)
        request = pb.PodRef(
            node_name=self.node,
            namespace=metadata.get("namespace", ""),
            name=metadata.get("name", ""),
            uid=metadata.get("uid", ""),
        )
        backoff = RetryBackoff(0.2, 2.0, jitter=0.5)
        for _ in range(5):
            try:
                await self._control.ConfirmPodDeleted(request, timeout=10)
                return
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ABORTED):
                    return
                await self.clock.sleep(backoff.next())

    async def network_setup(self, pod: Obj, netns: str) -> str:
        if self.network is None:
            return ""
        return await self.network.attach(pod, netns)

    async def network_teardown(self, pod: Obj) -> None:
        if self.network is not None:
            await self.network.detach(pod)

    async def extra_env(self, pod: Obj) -> dict[str, str]:
        if self.network is None:
            return {}
        return await self.network.service_env(pod)

    def resolv_conf(self, pod: Obj) -> str | None:
        if self.network is None or spec(pod).get("hostNetwork"):
            return None
        return self.network.resolv_conf(pod)

    def _api_config(self) -> ClientConfig:
        """The REST API as this node: its own certificate when the cluster has TLS."""
        if self.credentials is None:
            return ClientConfig(server=self.config.server)
        return self.credentials.client_config(self.config.server)

    async def _start_network(self) -> None:
        options = self.config.network
        if options is None:
            return
        if not self.pod_cidr:
            log.warning("node %s has no pod CIDR: pods get loopback only", self.node)
            return
        # The control plane's address plan wins over the agent's defaults.
        options = dataclasses.replace(
            options,
            cluster_cidr=self.cluster_cidr or options.cluster_cidr,
            service_cidr=self.service_cidr or options.service_cidr,
        )
        network = PodNetworking(
            options,
            node_ip=self.host_ip,
            state_dir=self.config.network_state_dir,
            api=self._api_config(),
            clock=self.clock,
        )
        await network.start(self.pod_cidr)
        self.network = network

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        options: list[tuple[str, Any]] = [
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ]
        # Several API servers: one channel at a time, the next when it fails.
        self._control = ControlChannel(
            self.config.control, lambda target: _channel(target, self.credentials, options)
        )
        self._events = EventQueue(
            EventRecorder(
                None,
                "kubelet",
                host=self.node,
                clock=self.clock,
                sink=GrpcEventSink(self._control, self.node),
            )
        )
        events = self._events
        if self.credentials is None:
            self._agent_server = await start_agent_server(
                self, self.config.listen_host, self.config.listen_port
            )
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._adopt()
            await self._register()
            await self._start_network()
            tasks = [
                asyncio.create_task(self._heartbeats(), name="heartbeats"),
                asyncio.create_task(self._fence_loop(), name="fence"),
                asyncio.create_task(self._send_statuses(), name="statuses"),
                asyncio.create_task(
                    self.local_volumes.reclaim_loop(lambda: self._control), name="volumes"
                ),
                asyncio.create_task(self._runtime_events(), name="runtime-events"),
                asyncio.create_task(events.run(), name="events"),
                asyncio.create_task(memory.trim_loop(self.clock), name="malloc-trim"),
                asyncio.create_task(
                    sampler_for(
                        self.node,
                        self.runtime,
                        self._control,
                        self.clock,
                        self.config.usage_interval,
                    ).run(),
                    name="usage",
                ),
            ]
            if self.config.log_store:
                tasks.append(asyncio.create_task(self._log_shipper().run(), name="log-shipping"))
            if self.credentials is not None:
                tasks.append(asyncio.create_task(self._serve_agent_port(), name="agent-port"))
            self._restart_pod_stream()
            await self._stop.wait()
        finally:
            if self._pods_task is not None:
                tasks.append(self._pods_task)
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            for task, outcome in zip(tasks, outcomes, strict=True):
                # Cancelled is how they were asked to end; anything else had
                # ended the loop before, unseen until now.
                if isinstance(outcome, Exception):
                    log.error("the agent's %s loop had failed: %r", task.get_name(), outcome)
            await self.replication.stop()
            for worker in list(self.workers.values()):
                await worker.stop()
            if self._agent_server is not None:
                await self._agent_server.stop(grace=1)
            if self.network is not None:
                await self.network.close()
            await events.drain(_EVENT_DRAIN_SECONDS)
            await self._control.close()
            await self.runtime.close()

    def _log_shipper(self) -> LogShipper:
        def pod_labels(uid: str) -> dict[str, str]:
            worker = self.workers.get(uid)
            return dict(labels_of(worker.pod)) if worker is not None and worker.pod else {}

        state = self.config.data_dir / "logshipping"
        certs = CertDir(self.config.certs_dir)
        tls = None
        if self.config.log_store.startswith("https://"):
            tls = ClientTLS(self.config.ca_file, certs.cert, certs.key)
        return LogShipper(
            self.config.log_store, self.runtime, self.node, pod_labels, state, tls=tls
        )

    def stop(self) -> None:
        self._stop.set()

    async def _serve_agent_port(self) -> None:
        """Serve logs and exec over TLS, once the control plane signs the serving certificate.

        It signs only for a registered node's own addresses, so this runs
        after registration; pods run meanwhile, only logs and exec wait.
        """
        assert self.credentials is not None
        serving = await self._serving_certificate(self.credentials)
        try:
            self._agent_server = await start_agent_server(
                self, self.config.listen_host, self.config.listen_port, self.credentials, serving
            )
        except Exception as error:
            # As a failed bind stopped the agent before the port moved here.
            log.error("cannot serve logs and exec on port %d: %s", self.config.listen_port, error)
            self.stop()
            return
        log.info("serving logs and exec on %s:%d", self.config.listen_host, self.config.listen_port)

    async def _serving_certificate(self, credentials: NodeCredentials) -> KeyPair:
        # Exactly the addresses _register lists: the only ones the signer allows.
        hosts = sorted({self.node, self.host_ip})
        cert_dir = CertDir(self.config.certs_dir)
        backoff = RetryBackoff(_SERVING_RETRY_FIRST, _SERVING_RETRY_MAX, jitter=0.5)
        while True:
            try:
                return await obtain_serving(
                    credentials,
                    node_name=self.node,
                    server_url=self.config.server,
                    cert_dir=cert_dir,
                    hosts=hosts,
                )
            except CredentialsError as error:
                # Jittered, so agents restarted together do not ask in step.
                wait = backoff.next()
                log.warning(
                    "no serving certificate for logs and exec yet (%s); retrying in %.1fs",
                    error,
                    wait,
                )
                await self.clock.sleep(wait)

    async def _adopt(self) -> None:
        """Take over what the runtime is running for this node, before anything else."""
        while True:
            try:
                records = await self.runtime.list_containers(self.node)
                break
            except RuntimeUnavailable as error:
                self.runtime_error = str(error)
                log.warning("cannot list containers yet: %s", error)
                await self.clock.sleep(jittered(2.0))
        by_pod: dict[str, list[Any]] = {}
        for record in records:
            if record.pod_uid:
                by_pod.setdefault(record.pod_uid, []).append(record)
        for uid, found in by_pod.items():
            worker = PodWorker(self, uid, self.config.resync_seconds)
            worker.adopt(found)
            self.workers[uid] = worker
        if by_pod:
            log.info("adopted the containers of %d pods", len(by_pod))

    def _node_info(self, runtime_version: str) -> Any:
        machine = platform.machine().lower()
        return pb.NodeInfo(
            machine_id=_read("/etc/machine-id"),
            system_uuid=_read("/sys/class/dmi/id/product_uuid"),
            boot_id=_read("/proc/sys/kernel/random/boot_id"),
            kernel_version=platform.release(),
            os_image=_os_image(),
            container_runtime_version=runtime_version,
            kubelet_version=f"v{KUBE_MAJOR}.{KUBE_MINOR}.0+corral-{VERSION}",
            operating_system="linux",
            architecture={"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine),
        )

    async def _conditions(self) -> list[Any]:
        try:
            await self.runtime.ping()
            self.runtime_error = ""
        except RuntimeUnavailable as error:
            self.runtime_error = str(error)
        ready = not self.runtime_error
        conditions = [
            pb.Condition(
                type="Ready",
                status="True" if ready else "False",
                reason="KubeletReady" if ready else "KubeletNotReady",
                message="corral agent is posting ready status"
                if ready
                else f"container runtime is down: {self.runtime_error}",
            ),
        ]
        for kind, reason in (
            ("MemoryPressure", "KubeletHasSufficientMemory"),
            ("DiskPressure", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "KubeletHasSufficientPID"),
        ):
            conditions.append(
                pb.Condition(
                    type=kind, status="False", reason=reason, message=f"corral agent has no {kind}"
                )
            )
        return conditions

    async def _register(self) -> None:
        backoff = RetryBackoff(0.2, 5.0)
        while not self._stop.is_set():
            try:
                runtime_version = "unknown"
                # The runtime being down is reported by the Ready condition
                # sent with this request; only its version is missing.
                with contextlib.suppress(RuntimeUnavailable):
                    runtime_version = await self.runtime.version()
                labels = {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": self._node_info("").architecture,
                    **self.config.labels,
                }
                response = await self._control.Register(
                    pb.RegisterRequest(
                        node_name=self.node,
                        capacity=self.capacity,
                        allocatable=self.node_allocatable,
                        addresses=[
                            pb.Address(type="InternalIP", address=self.host_ip),
                            pb.Address(type="Hostname", address=self.node),
                        ],
                        labels=labels,
                        node_info=self._node_info(runtime_version),
                        agent_port=self.config.listen_port,
                        agent_host=self.config.listen_host,
                        conditions=await self._conditions(),
                    ),
                    timeout=15,
                )
                self.pod_cidr = response.pod_cidr
                self.cluster_cidr = response.cluster_cidr
                self.service_cidr = response.service_cidr
                self.heartbeat_interval = response.heartbeat_interval_seconds or 4.0
                self.registered.set()
                log.info("registered node %s (pod CIDR %s)", self.node, self.pod_cidr or "none")
                return
            except grpc.aio.AioRpcError as error:
                log.warning("registration failed (%s); retrying", error.details())
                await self._control.failed(error)
                await self.clock.sleep(backoff.next())

    async def _heartbeats(self) -> None:
        while True:
            await self.clock.sleep(self.heartbeat_interval)
            # The lease renewal this sends happens after now: the fence counts from here.
            sent = self.clock.monotonic()
            try:
                response = await self._control.Heartbeat(
                    pb.HeartbeatRequest(node_name=self.node, conditions=await self._conditions()),
                    timeout=10,
                )
                self.heartbeat_interval = response.heartbeat_interval_seconds or 4.0
            except grpc.aio.AioRpcError as error:
                log.warning("heartbeat failed: %s", error.details())
                await self._control.failed(error)
                continue
            self.fence.acknowledged(sent)
            if self.fence.fenced:
                log.warning("the control plane answers again: relisting this node's pods")
                self.fence.relisted()
                self._restart_pod_stream()
            if self.network is not None:
                peers = {p.node_name: (p.pod_cidr, p.node_ip) for p in response.peers}
                try:
                    await self.network.set_peers(peers)
                except (OSError, NetlinkError) as error:
                    log.warning("routes to other nodes not updated: %s", error)

    def _restart_pod_stream(self) -> None:
        """Follow this node's pods from a fresh list (the stream before it, if any, ends)."""
        if self._pods_task is not None:
            self._pods_task.cancel()
        self._pods_task = asyncio.create_task(self._follow_pods(), name="pods")

    async def _fence_loop(self) -> None:
        """Stop the pods that must not run twice once the control plane is silent too long."""
        while True:
            await self.clock.sleep(1.0)
            if not self.fence.due():
                continue
            for uid, worker in list(self.workers.items()):
                if uid in self.fence.stopped or not must_not_run_twice(worker.pod):
                    continue
                if not self.fence.fenced:
                    log.warning(
                        "no heartbeat acknowledged for %.0fs: fencing this node's StatefulSet pods",
                        self.fence.silent_for(),
                    )
                    self.fence.fenced = True
                self.fence.stopped.add(uid)
                if worker.pod is None and not worker.started:
                    worker.start()
                worker.update(None)

    async def _follow_pods(self) -> None:
        version = ""
        backoff = RetryBackoff(0.2, 5.0)
        while True:
            seen: set[str] | None = None
            try:
                stream = self._control.WatchPods(
                    pb.WatchPodsRequest(node_name=self.node, resource_version=version)
                )
                async for event in stream:
                    backoff.reset()
                    if event.type == pb.PodEvent.SYNC_START:
                        seen = set()
                    elif event.type == pb.PodEvent.SYNC_END:
                        if seen is not None:
                            self._forget_unseen(seen)
                        seen = None
                        self.synced.set()
                    elif event.type in (pb.PodEvent.ADDED, pb.PodEvent.MODIFIED):
                        pod = orjson.loads(event.pod_json)
                        uid = meta(pod).get("uid", "")
                        if seen is not None:
                            seen.add(uid)
                        self._dispatch(pod)
                    elif event.type == pb.PodEvent.DELETED:
                        pod = orjson.loads(event.pod_json)
                        uid = meta(pod).get("uid", "")
                        self._forget_pod(uid)
                        worker = self.workers.get(uid)
                        if worker is not None:
                            worker.update(None)
                    if event.resource_version:
                        version = event.resource_version
            except grpc.aio.AioRpcError as error:
                log.info(
                    "pod stream broke (%s); resuming from %s",
                    error.code().name,
                    version or "the start",
                )
            await self.clock.sleep(backoff.next())

    def _forget_unseen(self, seen: set[str]) -> None:
        """After a full sync, pods the control plane no longer assigns here are stopped."""
        for uid, worker in list(self.workers.items()):
            if uid not in seen:
                if worker.pod is None and not worker.started:
                    worker.start()
                worker.update(None)

    def _dispatch(self, pod: Obj) -> None:
        metadata = meta(pod)
        uid = metadata.get("uid", "")
        if self.fence.holds(uid):
            return  # fenced: it runs again only if a fresh list still binds it here
        if spec(pod).get("nodeName") != self.node:
            self._forget_pod(uid)
            worker = self.workers.get(uid)
            if worker is not None:
                worker.update(None)
            return
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(self, uid, self.config.resync_seconds)
            self.workers[uid] = worker
        first = worker.pod is None
        if first:
            worker.seed_from_status(pod)
        worker.update(pod)
        self.replication.update(uid, pod)
        if not worker.started:
            worker.start()
            reaper = asyncio.create_task(self._reap(uid, worker))
            self._reapers.add(reaper)
            reaper.add_done_callback(self._reapers.discard)

    async def _reap(self, uid: str, worker: PodWorker) -> None:
        await worker.wait()
        if self.workers.get(uid) is worker:
            del self.workers[uid]
            self._forget_pod(uid)

    def _forget_pod(self, uid: str) -> None:
        self.replication.update(uid, None)
        self._replication_conditions.pop(uid, None)
        self._last_status.pop(uid, None)

    async def _send_statuses(self) -> None:
        backoff = RetryBackoff(0.2, 5.0)
        while True:
            await self._status_ready.wait()
            await self.clock.sleep(self.config.status_batch_seconds)
            self._status_ready.clear()
            batch = self._pending_status
            self._pending_status = {}
            if not batch:
                continue
            updates = [
                pb.PodStatusUpdate(namespace=ns, name=name, uid=uid, status_json=data)
                for ns, name, uid, data in batch.values()
            ]
            sending = self.clock.monotonic()
            try:
                response = await self._control.ReportPodStatus(
                    pb.PodStatusBatch(node_name=self.node, updates=updates), timeout=15
                )
                backoff.reset()
                log.debug(
                    "reported %d pod statuses in %.3fs",
                    len(updates),
                    self.clock.monotonic() - sending,
                )
            except grpc.aio.AioRpcError as error:
                log.warning("status report failed (%s); will retry", error.details())
                for key, value in batch.items():
                    self._pending_status.setdefault(key, value)
                self._status_ready.set()
                await self.clock.sleep(backoff.next())
                continue
            for result in response.results:
                if result.code not in (200, 404):
                    log.warning(
                        "status of %s/%s refused: %s", result.namespace, result.name, result.message
                    )

    async def _runtime_events(self) -> None:
        while True:
            try:
                async for uid in self.runtime.events():
                    worker = self.workers.get(uid)
                    if worker is not None:
                        worker.wake()
            except RuntimeUnavailable as error:
                log.debug("runtime events stopped: %s", error)
            # The stream ended (the runtime restarted, or is down): pods are
            # reconciled on their own timers meanwhile; reconnect shortly.
            await self.clock.sleep(jittered(1.0))


class GrpcEventSink:
    """Events over the agent protocol, where the node may speak only of itself and its pods."""

    def __init__(self, control: Any, node: str) -> None:
        self.control = control
        self.node = node

    async def create(self, namespace: str, event: Obj) -> str:
        reply = await self.control.RecordEvent(
            pb.EventRecord(
                node_name=self.node, namespace=namespace, event_json=orjson.dumps(event)
            ),
            timeout=15,
        )
        return str(reply.name)

    async def update(self, namespace: str, name: str, patch: Obj) -> bool:
        try:
            await self.control.RecordEvent(
                pb.EventRecord(
                    node_name=self.node,
                    namespace=namespace,
                    patch_name=name,
                    patch_json=orjson.dumps(patch),
                ),
                timeout=15,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True
