"""NodeControl: the gRPC service node agents talk to, beside the REST API.

It runs in the API server process over the same storage, watch cache and
validation as REST: a node's status report is a ``/status`` write with the
same resourceVersion rules, and the pod stream is a watch-cache
subscription filtered to one node.

Every write a call makes for its node is one the node could have asked for
over REST, so each passes NodeRestriction (``controlplane/admission/
noderestriction.py``) as the node, exactly as the REST path's admission
does: registration cannot claim a ``node-role.kubernetes.io`` label, move
the node's addresses or touch another node's pods. Writes the server makes
on its own behalf (allocating the pod CIDR) are not the node's and pass.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import orjson

from controlplane.admission import noderestriction
from controlplane.admission.noderestriction import NodeWrite, Operation
from controlplane.agentapi.identity import NodeIdentity
from controlplane.apiserver.addressplan import AddressPlan
from controlplane.apiserver.admission import cached_lookups
from controlplane.apiserver.allocators import RangeFull
from controlplane.apiserver.objects import Objects
from controlplane.storage.store import Stored
from controlplane.storage.watchcache import CachedObject, CacheEvent, Terminated
from controlplane.usage.store import UsageStore
from corral import volumebinding as vb
from corral.api import errors
from corral.api.decode import decode
from corral.api.errors import ApiError
from corral.api.podrefs import references
from corral.api.resources import Registry
from corral.api.storage import LOCAL_CLEANUP_FINALIZER
from corral.clock import rfc3339, rfc3339_micro
from corral.objects import Obj, meta, spec, status
from corral.patch import apply_merge_patch
from corral.proto import agent_pb2 as pb
from corral.proto import agent_pb2_grpc

log = logging.getLogger(__name__)
LEASE_GROUP = "coordination.k8s.io"

NODE_LEASE_NAMESPACE = noderestriction.NODE_LEASE_NAMESPACE
AGENT_ENDPOINT_ANNOTATION = "node.corral.io/agent-endpoint"


@dataclass(frozen=True)
class NodeTimings:
    heartbeat_interval: float = 4.0
    lease_duration: float = 15.0
    # Node status is written when it changes, or at least this often, so the
    # Node object shows a fresh heartbeat without a write every few seconds.
    status_refresh: float = 60.0
    bookmark_interval: float = 30.0


def _conditions(conditions: Any, now: str) -> list[Obj]:
    return [
        {
            "type": c.type,
            "status": c.status,
            "reason": c.reason,
            "message": c.message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for c in conditions
    ]


def _merge_conditions(old: list[Obj], new: list[Obj]) -> tuple[list[Obj], bool]:
    """New conditions, keeping transition times of those that did not change status."""
    by_type = {c.get("type"): c for c in old}
    changed = len(old) != len(new)
    merged = []
    for condition in new:
        previous = by_type.get(condition["type"])
        if previous is not None and previous.get("status") == condition["status"]:
            condition["lastTransitionTime"] = previous.get(
                "lastTransitionTime", condition["lastTransitionTime"]
            )
            if (previous.get("reason"), previous.get("message")) != (
                condition["reason"],
                condition["message"],
            ):
                changed = True
        else:
            changed = True
        merged.append(condition)
    return merged, changed


class NodeControlService(agent_pb2_grpc.NodeControlServicer):  # type: ignore[misc]
    def __init__(
        self,
        objects: Objects,
        registry: Registry,
        timings: NodeTimings | None = None,
        plan: AddressPlan | None = None,
        *,
        identity: NodeIdentity | None = None,
        usage: UsageStore | None = None,
    ) -> None:
        self.objects = objects
        self.usage = usage
        self.identity = identity or NodeIdentity(secure=False)
        self.timings = timings or NodeTimings()
        self.plan = plan
        nodes = registry.by_kind("v1", "Node")
        pods = registry.by_kind("v1", "Pod")
        leases = registry.by_kind("coordination.k8s.io/v1", "Lease")
        events = registry.by_kind("v1", "Event")
        assert nodes is not None and pods is not None and leases is not None
        assert events is not None
        self.nodes, self.pods, self.leases, self.events = nodes, pods, leases, events
        self.readable = {
            kind: registry.by_kind("v1", kind)
            for kind in ("ConfigMap", "Secret", "PersistentVolumeClaim", "PersistentVolume")
        }
        self._status_written: dict[str, float] = {}
        self.lookups = cached_lookups(objects.cache)

    def _restrict(
        self,
        node: str,
        operation: Operation,
        resource: str,
        new: Obj | None,
        old: Obj | None,
        *,
        group: str = "",
        subresource: str = "",
    ) -> None:
        """Raise NodeRestriction's refusal of this write by ``node``, if it refuses."""
        write = NodeWrite(node, operation, resource, group, subresource, new, old)
        refusal = noderestriction.admit(write, self.lookups)
        if refusal is not None:
            raise refusal

    # --- registration and heartbeats -------------------------------------------------

    async def Register(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        await self.identity.require(context, request.node_name)
        name = request.node_name
        now = rfc3339(self.objects.clock.now())
        status: Obj = {
            "capacity": dict(request.capacity),
            "allocatable": dict(request.allocatable),
            "addresses": [{"type": a.type, "address": a.address} for a in request.addresses],
            "nodeInfo": {
                "machineID": request.node_info.machine_id,
                "systemUUID": request.node_info.system_uuid,
                "bootID": request.node_info.boot_id,
                "kernelVersion": request.node_info.kernel_version,
                "osImage": request.node_info.os_image,
                "containerRuntimeVersion": request.node_info.container_runtime_version,
                "kubeletVersion": request.node_info.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": request.node_info.operating_system,
                "architecture": request.node_info.architecture,
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": request.agent_port}},
            "conditions": _conditions(request.conditions, now),
        }
        labels = dict(request.labels)
        endpoint = _agent_endpoint(request)
        try:
            node = await self._register(name, labels, status, endpoint)
            node = await self._assign_pod_cidr(name, node)
        except ApiError as error:
            await _abort(context, error)
        await self._renew_lease(name)
        self._status_written[name] = self.objects.clock.monotonic()
        return pb.RegisterResponse(
            node_json=orjson.dumps(node),
            pod_cidr=spec(node).get("podCIDR", ""),
            cluster_cidr=self.plan.cluster_cidr if self.plan else "",
            service_cidr=self.plan.service_cidr if self.plan else "",
            heartbeat_interval_seconds=self.timings.heartbeat_interval,
            lease_duration_seconds=self.timings.lease_duration,
        )

    async def _assign_pod_cidr(self, name: str, node: Obj) -> Obj:
        """Give the node its slice of the cluster CIDR, once; it keeps it while it exists."""
        if self.plan is None or (node.get("spec") or {}).get("podCIDR"):
            return node
        try:
            cidr = await self.plan.pod_cidrs.allocate(name)
        except RangeFull as error:
            raise errors.service_unavailable(
                f"cannot give node {name} a pod CIDR: {error}"
            ) from None

        def assign(current: Stored) -> Obj | None:
            spec = current.obj.get("spec") or {}
            if spec.get("podCIDR"):
                return None
            new = copy.deepcopy(current.obj)
            new.setdefault("spec", {})["podCIDR"] = cidr
            new["spec"]["podCIDRs"] = [cidr]
            return new

        result = await self.objects.guaranteed_update(self.nodes, None, name, assign)
        return result.obj

    async def _register(self, name: str, labels: dict[str, str], status: Obj, endpoint: str) -> Obj:
        annotations = {AGENT_ENDPOINT_ANNOTATION: endpoint} if endpoint else {}
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "status": status,
        }
        try:
            self._restrict(name, "create", "nodes", body, None)
            stored = await self.objects.create_object(self.nodes, body)
            return stored.obj
        except ApiError as error:
            if error.reason != "AlreadyExists":
                raise

        def with_labels(current: Stored) -> Obj:
            new = copy.deepcopy(current.obj)
            metadata = new.setdefault("metadata", {})
            metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
            if annotations:
                metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
            self._restrict(name, "update", "nodes", new, current.obj)
            return new

        await self.objects.guaranteed_update(self.nodes, None, name, with_labels)

        def with_status(current: Stored) -> Obj:
            new = copy.deepcopy(current.obj)
            old_conditions = (new.get("status") or {}).get("conditions") or []
            merged, _ = _merge_conditions(old_conditions, status["conditions"])
            new["status"] = {**status, "conditions": merged}
            self._restrict(name, "update", "nodes", new, current.obj, subresource="status")
            return new

        result = await self.objects.guaranteed_update(
            self.nodes,
            None,
            name,
            with_status,
            subresource="status",
            revalidate=lambda o: decode(self.nodes, o, "Strict").data,
        )
        return result.obj

    async def Heartbeat(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self.identity.require(context, request.node_name)
        name = request.node_name
        try:
            await self._renew_lease(name)
            await self._refresh_status(name, request.conditions)
        except ApiError as error:
            await _abort(context, error)
        return pb.HeartbeatResponse(
            heartbeat_interval_seconds=self.timings.heartbeat_interval, peers=self._peers(name)
        )

    def _peers(self, name: str) -> list[Any]:
        cached, _ = self.objects.cache.snapshot("nodes", None)
        peers = []
        for node in cached:
            node_name = meta(node.obj).get("name", "")
            pod_cidr = spec(node.obj).get("podCIDR", "")
            addresses = status(node.obj).get("addresses") or []
            internal = [a.get("address", "") for a in addresses if a.get("type") == "InternalIP"]
            if node_name != name and pod_cidr and internal:
                peers.append(pb.Peer(node_name=node_name, pod_cidr=pod_cidr, node_ip=internal[0]))
        return peers

    async def _renew_lease(self, name: str) -> None:
        now = rfc3339_micro(self.objects.clock.now())

        def renew(current: Stored) -> Obj:
            new = copy.deepcopy(current.obj)
            spec = new.setdefault("spec", {})
            if spec.get("holderIdentity") != name:
                spec["acquireTime"] = now
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            spec["holderIdentity"] = name
            spec["leaseDurationSeconds"] = int(self.timings.lease_duration)
            spec["renewTime"] = now
            self._restrict(name, "update", "leases", new, current.obj, group=LEASE_GROUP)
            return new

        try:
            await self.objects.guaranteed_update(self.leases, NODE_LEASE_NAMESPACE, name, renew)
        except ApiError as error:
            if error.code != 404:
                raise
            lease: Obj = {
                "apiVersion": f"{LEASE_GROUP}/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": NODE_LEASE_NAMESPACE,
                    # As the kubelet does: the lease goes when its Node goes.
                    "ownerReferences": await self._node_owner(name),
                },
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": int(self.timings.lease_duration),
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            }
            self._restrict(name, "create", "leases", lease, None, group=LEASE_GROUP)
            await self.objects.create_object(self.leases, lease)

    async def _node_owner(self, name: str) -> list[Obj]:
        try:
            node = (await self.objects.get(self.nodes, None, name)).obj
        except ApiError:
            # No Node (yet) to own the Lease: it is made without an owner,
            # as the kubelet's is then; the worst is that it outlives a
            # deleted Node.
            return []
        uid = meta(node).get("uid")
        if not uid:
            return []
        return [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]

    async def _refresh_status(self, name: str, conditions: Any) -> None:
        now = rfc3339(self.objects.clock.now())
        fresh = _conditions(conditions, now)
        due = (
            self.objects.clock.monotonic() - self._status_written.get(name, 0.0)
            > self.timings.status_refresh
        )

        def update(current: Stored) -> Obj | None:
            new = copy.deepcopy(current.obj)
            status = new.setdefault("status", {})
            merged, changed = _merge_conditions(status.get("conditions") or [], fresh)
            if not changed and not due:
                return None
            status["conditions"] = merged
            self._restrict(name, "update", "nodes", new, current.obj, subresource="status")
            return new

        await self.objects.guaranteed_update(self.nodes, None, name, update, subresource="status")
        self._status_written[name] = self.objects.clock.monotonic()

    # --- the pod stream ----------------------------------------------------------------

    async def WatchPods(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        await self.identity.require(context, request.node_name)
        node = request.node_name
        cache = self.objects.cache
        await cache.wait_for(0, 10.0)

        def on_node(cached: CachedObject) -> bool:
            return bool(spec(cached.obj).get("nodeName") == node)

        since = int(request.resource_version) if request.resource_version.isdigit() else None
        if since is not None and not cache.covers("pods", since):
            since = None  # too old to resume: send the full state again
        try:
            watcher, replay = cache.watch("pods", None, on_node, since)
        except Terminated:
            watcher, replay = cache.watch("pods", None, on_node, None)
            since = None
        try:
            if since is None:
                yield pb.PodEvent(type=pb.PodEvent.SYNC_START, resource_version=str(cache.revision))
            last = 0
            for event in replay:
                last = max(last, event.revision)
                yield _pod_event(event)
            if since is None:
                last = max(last, cache.revision)
                yield pb.PodEvent(type=pb.PodEvent.SYNC_END, resource_version=str(last))
            while True:
                try:
                    item = await asyncio.wait_for(
                        watcher.queue.get(), self.timings.bookmark_interval
                    )
                except TimeoutError:
                    if cache.revision > last:
                        last = cache.revision
                        yield pb.PodEvent(type=pb.PodEvent.BOOKMARK, resource_version=str(last))
                    continue
                if isinstance(item, Terminated):
                    return
                last = item.revision
                yield _pod_event(item)
        finally:
            cache.unwatch(watcher)

    # --- status reports -------------------------------------------------------------------

    async def ReportPodStatus(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self.identity.require(context, request.node_name)
        results = await asyncio.gather(
            *(self._report(request.node_name, update) for update in request.updates)
        )
        return pb.PodStatusResults(results=results)

    async def _report(self, node: str, update: Any) -> Any:
        try:
            status = orjson.loads(update.status_json)
        except orjson.JSONDecodeError as error:
            return pb.PodStatusResult(
                namespace=update.namespace,
                name=update.name,
                code=400,
                message=f"status is not JSON: {error}",
            )

        def mutate(current: Stored) -> Obj:
            pod = current.obj
            metadata = meta(pod)
            if update.uid and metadata.get("uid") != update.uid:
                raise errors.not_found("pods", update.name)  # another incarnation
            new = copy.deepcopy(pod)
            new["status"] = status
            self._restrict(node, "update", "pods", new, pod, subresource="status")
            return new

        try:
            result = await self.objects.guaranteed_update(
                self.pods,
                update.namespace,
                update.name,
                mutate,
                subresource="status",
                revalidate=lambda o: decode(self.pods, o, "Strict").data,
            )
        except ApiError as error:
            return pb.PodStatusResult(
                namespace=update.namespace, name=update.name, code=error.code, message=error.message
            )
        return pb.PodStatusResult(
            namespace=update.namespace,
            name=update.name,
            code=200,
            resource_version=result.obj["metadata"].get("resourceVersion", ""),
        )

    async def ConfirmPodDeleted(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self.identity.require(context, request.node_name)
        try:
            current = await self.objects.get(self.pods, request.namespace, request.name)
        except ApiError as error:
            if error.code == 404:
                return pb.Empty()
            await _abort(context, error)
        pod = current.obj
        try:
            self._restrict(request.node_name, "delete", "pods", None, pod)
        except ApiError as error:
            await _abort(context, error)
        if not meta(pod).get("deletionTimestamp"):
            await _abort(
                context, errors.conflict("pods", request.name, "the pod is not being deleted")
            )
        try:
            await self.objects.delete(
                self.pods,
                request.namespace,
                request.name,
                grace_period_seconds=0,
                precondition_uid=request.uid or None,
            )
        except ApiError as error:
            if error.code not in (404, 409):
                await _abort(context, error)
        return pb.Empty()

    # --- what a node may read and say ----------------------------------------------------

    def _pods_on(self, node: str, namespace: str) -> list[Obj]:
        cached, _ = self.objects.cache.snapshot("pods", namespace)
        return [c.obj for c in cached if spec(c.obj).get("nodeName") == node]

    async def GetObject(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self.identity.require(context, request.node_name)
        rt = self.readable.get(request.kind)
        if rt is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "a node may read only ConfigMaps, Secrets, PersistentVolumeClaims and "
                "PersistentVolumes",
            )
        if request.kind == "PersistentVolume":
            allowed = self._volume_in_use_on(request.node_name, request.name)
            what = f'persistentvolume "{request.name}"'
        else:
            allowed = any(
                references(pod, request.kind, request.name)
                for pod in self._pods_on(request.node_name, request.namespace)
            )
            what = f'{request.kind.lower()} "{request.namespace}/{request.name}"'
        if not allowed:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f'no pod bound to node "{request.node_name}" references {what}',
            )
        assert rt is not None
        try:
            found = await self.objects.get(rt, request.namespace or None, request.name)
        except ApiError as error:
            if error.code == 404:
                return pb.ObjectReply(found=False)
            await _abort(context, error)
        return pb.ObjectReply(found=True, object_json=orjson.dumps(found.obj))

    def _volume_in_use_on(self, node: str, name: str) -> bool:
        """A node may read a volume that a claim of one of its pods is bound to."""
        claims = self.readable["PersistentVolumeClaim"]
        assert claims is not None
        for cached in self.objects.cache.snapshot("pods", None)[0]:
            pod = cached.obj
            if spec(pod).get("nodeName") != node:
                continue
            namespace = meta(pod).get("namespace") or ""
            for claim_name in vb.claim_names(pod):
                claim = self.objects.get_cached(claims, namespace, claim_name)
                if claim is not None and spec(claim.obj).get("volumeName") == name:
                    return True
        return False

    # --- local volumes: the node removes their data, then their finalizer ----------------

    def _released_on(self, node: str) -> list[Obj]:
        released = []
        for cached in self.objects.cache.snapshot("persistentvolumes", None)[0]:
            metadata = meta(cached.obj)
            if (
                metadata.get("deletionTimestamp")
                and LOCAL_CLEANUP_FINALIZER in (metadata.get("finalizers") or [])
                and vb.pinned_node(cached.obj) == node
            ):
                released.append(cached.obj)
        return released

    async def ReleasedVolumes(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self.identity.require(context, request.node_name)
        names = [str(v["metadata"]["name"]) for v in self._released_on(request.node_name)]
        return pb.VolumeNames(names=names)

    async def VolumeCleaned(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self.identity.require(context, request.node_name)
        volumes = self.readable["PersistentVolume"]
        assert volumes is not None
        node = request.node_name

        def lift(current: Stored) -> Obj | None:
            metadata = meta(current.obj)
            finalizers = list(metadata.get("finalizers") or [])
            if LOCAL_CLEANUP_FINALIZER not in finalizers:
                return None
            # Only the node that holds the data, and only once the volume is going.
            if vb.pinned_node(current.obj) != node or not metadata.get("deletionTimestamp"):
                raise errors.forbidden(
                    f'node "{node}" may clean up only its own released local volumes'
                )
            new = copy.deepcopy(current.obj)
            new["metadata"]["finalizers"] = [f for f in finalizers if f != LOCAL_CLEANUP_FINALIZER]
            return new

        try:
            await self.objects.guaranteed_update(volumes, None, request.name, lift)
        except ApiError as error:
            if error.code != 404:
                await _abort(context, error)
        return pb.Empty()

    async def ReportUsage(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Keep the node's usage report in memory (controlplane/usage): never in etcd."""
        await self.identity.require(context, request.node_name)
        if self.usage is not None:
            self.usage.record(request)
        return pb.Empty()

    async def RecordEvent(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self.identity.require(context, request.node_name)
        node, namespace = request.node_name, request.namespace
        try:
            if request.event_json:
                event = orjson.loads(request.event_json)
                if not isinstance(event, dict):
                    raise errors.bad_request("an event must be a JSON object")
                # Events live in their object's namespace: the one the call names.
                event.setdefault("metadata", {}).setdefault("namespace", namespace)
                self._restrict(node, "create", "events", event, None)
                result = await self.objects.create(self.events, namespace, event)
                return pb.EventReply(name=result.obj["metadata"]["name"])
            patch = orjson.loads(request.patch_json)

            def mutate(current: Stored) -> Obj:
                new: Obj = apply_merge_patch(current.obj, patch)
                self._restrict(node, "update", "events", new, current.obj)
                return new

            await self.objects.guaranteed_update(
                self.events,
                namespace,
                request.patch_name,
                mutate,
                revalidate=lambda o: decode(self.events, o, "Strict").data,
            )
            return pb.EventReply(name=request.patch_name)
        except ApiError as error:
            await _abort(context, error)
        except orjson.JSONDecodeError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"not JSON: {error}")
        return pb.EventReply()


def _pod_event(event: CacheEvent) -> Any:
    kind = {
        "ADDED": pb.PodEvent.ADDED,
        "MODIFIED": pb.PodEvent.MODIFIED,
        "DELETED": pb.PodEvent.DELETED,
    }[event.type]
    return pb.PodEvent(type=kind, pod_json=event.obj.raw(), resource_version=str(event.revision))


def _agent_endpoint(request: Any) -> str:
    if request.agent_host and request.agent_port:
        return f"{request.agent_host}:{request.agent_port}"
    return ""


_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


async def _abort(context: Any, error: ApiError) -> None:
    await context.abort(_GRPC_CODES.get(error.code, grpc.StatusCode.INTERNAL), error.message)
