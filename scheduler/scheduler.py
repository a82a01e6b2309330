"""The scheduler: watches feed the cache and the queue; one loop places pods; binds run beside it.

Each cycle is synchronous from pop to assume: it reads the cache with no
await in between, so nothing changes under it. The bind then runs as a task
of its own, up to ``bindConcurrency`` at once, and the loop moves on to the
next pod, which already sees the previous one's resources as used. A bind
the API refuses forgets the assumption and requeues the pod; a pod that
fits nowhere gets one Event and a PodScheduled=False condition saying why.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.rest import Client, ConnectionFailed
from corral.clock import Clock, SystemClock, rfc3339
from corral.events import EventRecorder
from corral.informer import Informer, object_key
from corral.objects import Obj, meta, spec, status
from scheduler.binder import Binder, HttpBinder
from scheduler.cache import Cache
from scheduler.config import SchedulerConfig
from scheduler.diagnosis import FitError, SchedulingError
from scheduler.events import ClusterEvent
from scheduler.handle import ClusterHandle
from scheduler.metrics import Metrics
from scheduler.nodeinfo import NodeInfo
from scheduler.pipeline import Pipeline
from scheduler.podinfo import PodInfo, PodParseError, is_assigned, is_terminal
from scheduler.queue import QueueClosed, QueuedPod, SchedulingQueue
from scheduler.selectors import SpreadingSelectors
from scheduler.volumes import VolumeBindingConflict, VolumeStore, pre_bind

log = logging.getLogger(__name__)


def _resource(name: str) -> ResourceType:
    found = REGISTRY.resolve(name)
    if found is None:
        raise RuntimeError(f"the API registry has no {name}")
    return found


PODS = _resource("pods")
NODES = _resource("nodes")
SERVICES = _resource("services")
REPLICATION_CONTROLLERS = _resource("replicationcontrollers")
REPLICA_SETS = _resource("replicasets")
CLAIMS = _resource("persistentvolumeclaims")
VOLUMES = _resource("persistentvolumes")
STORAGE_CLASSES = _resource("storageclasses")

# How long a clean stop waits for binds already sent before it cancels them.
SHUTDOWN_GRACE_SECONDS = 5.0
# Explanations written at once; they must never crowd out binds.
EXPLANATION_CONCURRENCY = 8


class Scheduler:
    def __init__(
        self,
        client: Client,
        config: SchedulerConfig | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        binder: Binder | None = None,
    ) -> None:
        self.client = client
        self.config = config or SchedulerConfig()
        self.binder = binder or HttpBinder(client.config, max_idle=self.config.bind_concurrency)
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.cache = Cache()
        self.selectors = SpreadingSelectors()
        self.informers = {
            rt.plural: Informer(client, rt, clock=self.clock)
            for rt in (
                NODES,
                PODS,
                SERVICES,
                REPLICATION_CONTROLLERS,
                REPLICA_SETS,
                CLAIMS,
                VOLUMES,
                STORAGE_CLASSES,
            )
        }
        self.volumes = VolumeStore(
            self.informers[CLAIMS.plural].store,
            self.informers[VOLUMES.plural].store,
            self.informers[STORAGE_CLASSES.plural].store,
        )
        self.pipeline = Pipeline(
            self.config, ClusterHandle(self.cache, self.selectors, self.volumes), rng=rng
        )
        self.queue = SchedulingQueue(
            self.clock,
            initial_backoff=self.config.pod_initial_backoff_seconds,
            max_backoff=self.config.pod_max_backoff_seconds,
            max_unschedulable=self.config.pod_max_unschedulable_seconds,
        )
        self.events = EventRecorder(client, self.config.scheduler_name, clock=self.clock)
        self._handle(NODES, self._node_set, self._node_updated, self._node_deleted)
        self._handle(PODS, self._pod_added, self._pod_updated, self._pod_deleted)
        for rt, kind in (
            (SERVICES, "Service"),
            (REPLICATION_CONTROLLERS, "ReplicationController"),
            (REPLICA_SETS, "ReplicaSet"),
        ):
            self._handle_selectors(rt, kind)
        for rt in (CLAIMS, VOLUMES, STORAGE_CLASSES):
            self.informers[rt.plural].add_handlers(
                on_add=_guarded(self._storage_changed),
                on_update=_guarded(lambda old, new: self._storage_changed(new)),
            )
        self._bind_slots = asyncio.Semaphore(self.config.bind_concurrency)
        self._explanation_slots = asyncio.Semaphore(EXPLANATION_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        # The last explanation written per pod, so a retry with the same
        # outcome costs the API nothing.
        self._explained: dict[str, str] = {}
        self.metrics.cache_size("nodes", lambda: len(self.cache.node_list()))
        for place in ("active", "backoff", "unschedulable"):
            self.metrics.pending_pods(place, self._counter(place))

    def _counter(self, place: str) -> Callable[[], float]:
        return lambda: self.queue.counts()[place]

    # --- running ---------------------------------------------------------------------------

    async def run_informers(self, stop: asyncio.Event) -> None:
        """Keep the cache and the queue fed until ``stop``; runs whether leading or not."""
        await asyncio.gather(*(informer.run(stop) for informer in self.informers.values()))

    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers.values())

    async def wait_synced(self, stop: asyncio.Event) -> bool:
        """Wait until every informer has listed once; False if ``stop`` came first."""
        for informer in self.informers.values():
            synced = asyncio.ensure_future(informer.synced.wait())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            stopped.cancel()
            if stop.is_set():
                return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule pods until ``stop``: what the leader does."""
        if not await self.wait_synced(stop):
            return
        log.info(
            "caches synced: %d nodes, %d pods assigned, %d pending",
            len(self.cache.node_list()),
            len(self.cache),
            len(self.queue),
        )
        closer = asyncio.ensure_future(self._close_queue_on(stop))
        try:
            while True:
                await self._bind_slots.acquire()
                try:
                    queued = await self.queue.pop()
                except QueueClosed:
                    self._bind_slots.release()
                    return
                if not self.schedule_one(queued):
                    self._bind_slots.release()
                # A full queue never has to wait in pop: yield so that watch
                # events and finished binds are handled between pods.
                await asyncio.sleep(0)
        finally:
            closer.cancel()
            await self._finish_tasks(graceful=stop.is_set())
            await self.binder.close()

    async def _close_queue_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.queue.close()

    async def _finish_tasks(self, *, graceful: bool) -> None:
        if graceful and self._tasks:
            await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler task failed", exc_info=task.exception())

    # --- one pod ---------------------------------------------------------------------------

    def schedule_one(self, queued: QueuedPod) -> bool:
        """Run the scheduling half of one cycle; True when a bind was started."""
        pod = queued.pod
        if self.cache.pod(pod.key) is not None:
            # Already assumed or bound: a stale pending version was queued again.
            self.queue.done(pod.key)
            return False
        started = time.perf_counter()
        try:
            result = self.pipeline.schedule(pod, self.cache.node_list())
        except FitError as fit:
            elapsed = time.perf_counter() - started
            self.metrics.algorithm.observe(elapsed)
            self.metrics.attempt_unschedulable.observe(elapsed)
            self.metrics.unschedulable.inc()
            self.queue.requeue_unschedulable(queued, fit.diagnosis.rejected_by)
            self._explain(pod, fit.diagnosis.message())
            return False
        except SchedulingError as error:
            self.metrics.errors.inc()
            self.metrics.attempt_error.observe(time.perf_counter() - started)
            log.warning("scheduling %s failed: %s", pod.key, error)
            self.queue.requeue_backoff(queued)
            return False
        except Exception:
            # A plugin's bug costs that pod a backoff, not the scheduler its loop.
            self.metrics.errors.inc()
            log.exception("scheduling %s failed", pod.key)
            self.queue.requeue_backoff(queued)
            return False
        assumed = self.cache.assume(pod, result.node)
        self.metrics.algorithm.observe(time.perf_counter() - started)
        self.metrics.evaluated_nodes.observe(result.evaluated)
        self._spawn(self._bind(queued, assumed, self.clock.monotonic()))
        return True

    async def _bind(self, queued: QueuedPod, pod: PodInfo, popped: float) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.bind_timeout_seconds):
                # PreBind: the pod's waiting claims learn their node first.
                await pre_bind(self.client, self.volumes, pod.obj, pod.node_name)
                await self.binder.bind(pod.namespace, pod.name, pod.uid, pod.node_name)
        except VolumeBindingConflict as conflict:
            self._bind_failed(queued, pod, None, str(conflict))
        except ApiError as error:
            self._bind_failed(queued, pod, error.code, error.message)
        except (ConnectionFailed, TimeoutError) as error:
            self._bind_failed(queued, pod, None, str(error) or "the bind timed out")
        else:
            now = self.clock.monotonic()
            self.metrics.binding.observe(time.perf_counter() - started)
            self.metrics.attempt_scheduled.observe(now - popped)
            self.metrics.e2e.observe(now - queued.added)
            self.metrics.scheduled.inc()
            self.queue.done(pod.key)
            if self.config.record_scheduled_events:
                await self.events.record(
                    pod.obj,
                    "Normal",
                    "Scheduled",
                    f"Successfully assigned {pod.key} to {pod.node_name}",
                )
        finally:
            self._bind_slots.release()

    def _bind_failed(self, queued: QueuedPod, pod: PodInfo, code: int | None, why: str) -> None:
        self.metrics.bind_failures.inc()
        freed = self.cache.forget(pod.key)
        if code in (404, 409):
            # Gone, being deleted, recreated, or bound by someone else: the
            # watch brings whatever is true now.
            log.info("not binding %s to %s: %s", pod.key, pod.node_name, why)
            self.queue.done(pod.key)
        else:
            log.warning("binding %s to %s failed: %s", pod.key, pod.node_name, why)
            self.queue.requeue_backoff(queued)
            self._explain(pod, f"Binding rejected: {why}")
        if freed:
            self._capacity_freed(freed)

    # --- explanations ----------------------------------------------------------------------

    def _explain(self, pod: PodInfo, message: str) -> None:
        if self._explained.get(pod.key) == message:
            return
        self._explained[pod.key] = message
        if _current_explanation(pod.obj) == message:
            return
        log.info("%s: %s", pod.key, message)
        self._spawn(self._write_explanation(pod, message))

    async def _write_explanation(self, pod: PodInfo, message: str) -> None:
        async with self._explanation_slots:
            await self.events.record(pod.obj, "Warning", "FailedScheduling", message)
            condition = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": rfc3339(self.clock.now()),
            }
            try:
                await self.client.patch(
                    PODS,
                    pod.name,
                    {"status": {"conditions": [condition]}},
                    pod.namespace,
                    patch_type="strategic",
                    subresource="status",
                )
            except ApiError as error:
                if error.code not in (404, 409):
                    log.warning("could not explain %s on its status: %s", pod.key, error.message)
                    self._explained.pop(pod.key, None)
            except ConnectionFailed as error:
                log.warning("could not explain %s on its status: %s", pod.key, error)
                self._explained.pop(pod.key, None)

    # --- what the watches report -------------------------------------------------------------

    def _handle(
        self,
        rt: ResourceType,
        on_add: Callable[[Obj], None],
        on_update: Callable[[Obj, Obj], None],
        on_delete: Callable[[Obj], None],
    ) -> None:
        self.informers[rt.plural].add_handlers(
            _guarded(on_add), _guarded(on_update), _guarded(on_delete)
        )

    def _handle_selectors(self, rt: ResourceType, kind: str) -> None:
        self._handle(
            rt,
            lambda obj: self.selectors.set(kind, obj),
            lambda old, new: self.selectors.set(kind, new),
            lambda obj: self.selectors.remove(kind, obj),
        )

    def _responsible_for(self, obj: Obj) -> bool:
        spec = obj.get("spec") or {}
        return (
            (spec.get("schedulerName") or "default-scheduler") == self.config.scheduler_name
            and not meta(obj).get("deletionTimestamp")
            and not is_terminal(obj)
        )

    def _pod_info(self, obj: Obj) -> PodInfo | None:
        try:
            return PodInfo.from_obj(obj)
        except PodParseError as error:
            log.warning("ignoring a pod the scheduler cannot read: %s", error)
            return None

    def _pod_added(self, obj: Obj) -> None:
        if is_assigned(obj):
            if not is_terminal(obj):
                self._add_assigned(obj)
        elif self._responsible_for(obj):
            pod = self._pod_info(obj)
            if pod is not None:
                self.queue.add(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        if is_assigned(new):
            if not is_assigned(old):
                self.queue.delete(key)
                self._explained.pop(key, None)
            if is_terminal(new):
                self._assigned_pod_gone(key)
            elif not self.cache.confirm(key, new) and _placement_changed(old, new, self.cache):
                self._add_assigned(new)
            return
        if not self._responsible_for(new):
            self.queue.delete(key)
            return
        # A status-only change (such as this scheduler's own explanation)
        # cannot make the pod fit anywhere new.
        if not self._responsible_for(old) or _spec_changed(old, new):
            pod = self._pod_info(new)
            if pod is not None:
                self.queue.update(pod)

    def _pod_deleted(self, obj: Obj) -> None:
        key = object_key(obj)
        self.queue.delete(key)
        self._explained.pop(key, None)
        self._assigned_pod_gone(key)

    def _add_assigned(self, obj: Obj) -> None:
        pod = self._pod_info(obj)
        if pod is not None:
            self.cache.add_pod(pod)

    def _assigned_pod_gone(self, key: str) -> None:
        freed = self.cache.remove_pod(key)
        if freed:
            self._capacity_freed(freed)

    def _node_set(self, obj: Obj) -> None:
        node, changed = self.cache.set_node(obj)
        if changed:
            self._move(changed, node)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        self._node_set(new)

    def _node_deleted(self, obj: Obj) -> None:
        self.cache.remove_node(meta(obj).get("name") or "")

    def _storage_changed(self, obj: Obj) -> None:
        """A claim, volume or class appeared or changed: pods VolumeBinding turned away retry."""
        moved = self.queue.move_on_event(lambda queued: "VolumeBinding" in queued.rejected_by)
        if moved:
            log.debug("storage changed: %d pod(s) back to the active queue", moved)

    def _capacity_freed(self, node_name: str) -> None:
        node = self.cache.node(node_name)
        if node is not None and node.exists:
            self._move(ClusterEvent.POD_DELETED, node)

    def _move(self, event: ClusterEvent, node: NodeInfo) -> None:
        pipeline = self.pipeline

        def may_fit(queued: QueuedPod) -> bool:
            if not pipeline.may_help(queued.rejected_by, event):
                return False
            refusing = pipeline.refusing(queued.pod, node)
            # The event helped, but something else now keeps the pod off
            # this node (a terminating pod its anti-affinity counts, say):
            # the events that plugin waits for must move the pod too.
            queued.rejected_by = queued.rejected_by | refusing
            return not refusing

        moved = self.queue.move_on_event(may_fit)
        if moved:
            log.debug("%s on %s: %d pod(s) back to the active queue", event, node.name, moved)


def _guarded(handler: Callable[..., None]) -> Callable[..., None]:
    """A handler that logs its failure rather than killing the informer that called it."""

    def call(*args: Obj) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("scheduler event handler failed")

    return call


def _spec_changed(old: Obj, new: Obj) -> bool:
    if old.get("spec") != new.get("spec"):
        return True
    old_meta = meta(old)
    new_meta = meta(new)
    return old_meta.get("labels") != new_meta.get("labels")


def _placement_changed(old: Obj, new: Obj, cache: Cache) -> bool:
    """Whether an assigned pod's update matters to the cache (it usually is status only)."""
    key = object_key(new)
    if cache.pod(key) is None:
        return True
    old_meta = meta(old)
    new_meta = meta(new)
    return (
        spec(old).get("nodeName") != spec(new).get("nodeName")
        or old_meta.get("labels") != new_meta.get("labels")
        or bool(old_meta.get("deletionTimestamp")) != bool(new_meta.get("deletionTimestamp"))
    )


def _current_explanation(obj: Obj) -> str | None:
    for condition in status(obj).get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            message = condition.get("message")
            return message if isinstance(message, str) else None
    return None
