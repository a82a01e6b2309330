"""What the controller tests share: controllers run in-process, and a stand-in node agent.

There are no node agents in these tests. Where a test needs a pod Running
and Ready, or a graceful deletion confirmed, it plays the agent through the
API exactly as an agent would: the ``status`` subresource for pod status,
and a delete with ``gracePeriodSeconds=0`` to confirm a termination.

(This module holds no tests; it is named so that it sits with the tests
that import it.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controlplane.controllers.base import Context, Controller
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.rest import Client
from corral.clock import Clock, SystemClock, rfc3339
from corral.events import EventRecorder
from corral.informer import Informer, wait_synced
from corral.objects import Obj


def rt(kind: str, api_version: str = "v1") -> ResourceType:
    found = REGISTRY.by_kind(api_version, kind)
    assert found is not None
    return found


PODS = rt("Pod")
RCS = rt("ReplicationController")
RSS = rt("ReplicaSet", "apps/v1")
DEPLOYMENTS = rt("Deployment", "apps/v1")
SERVICES = rt("Service")
ENDPOINTS = rt("Endpoints")
NODES = rt("Node")
LEASES = rt("Lease", "coordination.k8s.io/v1")
EVENTS = rt("Event")
PDBS = rt("PodDisruptionBudget", "policy/v1")
NAMESPACES = rt("Namespace")
CONFIGMAPS = rt("ConfigMap")


@dataclass
class NamespacedContext(Context):
    """A Context whose namespaced informers watch one namespace only."""

    namespace: str = ""

    def informer(self, rt: ResourceType) -> Informer:
        found = self.informers.get(rt.plural)
        if found is None:
            found = self.informers[rt.plural] = Informer(
                self.client,
                rt,
                namespace=self.namespace if rt.namespaced else None,
                clock=self.clock,
            )
        return found


@contextlib.asynccontextmanager
async def running(
    client: Client,
    namespace: str,
    *factories: Callable[[Context], Controller],
    clock: Clock | None = None,
) -> AsyncIterator[list[Controller]]:
    """Run controllers (and the informers they asked for) until the block ends.

    Namespaced informers watch only the test's namespace, so the controllers
    never touch what other tests left in the shared cluster.
    """
    used = clock or SystemClock()
    ctx = NamespacedContext(
        client=client,
        clock=used,
        events=EventRecorder(client, "controller-manager", clock=used),
        namespace=namespace,
    )
    controllers = [factory(ctx) for factory in factories]
    informers = list(ctx.informers.values())
    stop = asyncio.Event()
    tasks = [asyncio.create_task(i.run(stop)) for i in informers]
    tasks += [asyncio.create_task(c.run(stop)) for c in controllers]
    try:
        await wait_synced(informers, 10)
        yield controllers
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


# --- objects --------------------------------------------------------------------------------


def container(name: str = "app", ports: list[Obj] | None = None) -> Obj:
    out: Obj = {"name": name, "image": "busybox:1.36"}
    if ports:
        out["ports"] = ports
    return out


def pod_template(labels: dict[str, str], grace: int = 30) -> Obj:
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [container()], "terminationGracePeriodSeconds": grace},
    }


def rc(name: str, replicas: int, labels: dict[str, str] | None = None) -> Obj:
    chosen = labels or {"app": name}
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": chosen, "template": pod_template(chosen)},
    }


def replica_set(name: str, replicas: int, labels: dict[str, str] | None = None) -> Obj:
    chosen = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": chosen},
            "template": pod_template(chosen),
        },
    }


def bare_pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [container()], **spec},
    }


def name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


async def active_pods(client: Client, namespace: str, selector: str = "") -> list[Obj]:
    listed = await client.list(PODS, namespace, label_selector=selector)
    return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]


async def events_for(client: Client, namespace: str, name: str, reason: str) -> list[Obj]:
    listed = await client.list(
        EVENTS, namespace, field_selector=f"involvedObject.name={name},reason={reason}"
    )
    items: list[Obj] = listed["items"]
    return items


# --- the agent's and the scheduler's parts ------------------------------------------------


async def bind(client: Client, pod: Obj, node: str) -> None:
    """The scheduler's part: bind a pod to a node through the binding subresource."""
    await client.subresource(
        PODS,
        name_of(pod),
        "binding",
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name_of(pod)},
            "target": {"kind": "Node", "name": node},
        },
        pod["metadata"]["namespace"],
    )


async def set_ready(
    client: Client,
    pod: Obj,
    ip: str,
    *,
    ready: bool = True,
    since: datetime | None = None,
    clock: Clock | None = None,
) -> Obj:
    """The agent's part: report the pod Running with an IP and a Ready condition."""
    at = since or (clock or SystemClock()).now()
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": rfc3339(at),
            }
        ],
    }
    patched: Obj = await client.patch(
        PODS,
        name_of(pod),
        {"status": status},
        pod["metadata"]["namespace"],
        patch_type="strategic",
        subresource="status",
    )
    return patched


async def confirm_deletion(client: Client, pod: Obj) -> None:
    """The agent's part: the containers are gone, so the pod may go."""
    try:
        await client.delete(
            PODS, name_of(pod), pod["metadata"]["namespace"], grace_period_seconds=0
        )
    except ApiError as error:
        if error.code != 404:
            raise


@contextlib.asynccontextmanager
async def fake_agent(
    client: Client, namespace: str, *, make_ready: bool = True, confirm_deletes: bool = True
) -> AsyncIterator[None]:
    """Play every node agent for one namespace while the block runs.

    New pods are reported Running and Ready with an address of their own;
    pods being deleted gracefully are confirmed gone.
    """
    informer = Informer(client, PODS, namespace=namespace)
    addresses: dict[str, str] = {}
    pending: set[asyncio.Task[None]] = set()

    async def act(pod: Obj) -> None:
        try:
            if pod["metadata"].get("deletionTimestamp"):
                if confirm_deletes:
                    await confirm_deletion(client, pod)
            elif make_ready and (pod.get("status") or {}).get("phase") != "Running":
                uid = pod["metadata"]["uid"]
                count = len(addresses)
                ip = addresses.setdefault(uid, f"10.250.{count // 250}.{count % 250 + 1}")
                await set_ready(client, pod, ip)
        except ApiError as error:
            if error.code not in (404, 409):
                raise

    def react(pod: Obj) -> None:
        task = asyncio.ensure_future(act(pod))
        pending.add(task)
        task.add_done_callback(pending.discard)

    informer.add_handlers(on_add=react, on_update=lambda _old, new: react(new))
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    try:
        await wait_synced([informer], 10)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        if pending:
            await asyncio.wait(pending, timeout=10)
