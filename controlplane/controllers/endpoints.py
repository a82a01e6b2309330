"""Endpoints: for each Service with a selector, the addresses of the pods behind it.

A Service's Endpoints object (same name) lists its selected pods' IPs:
ready pods under ``addresses``, the others under ``notReadyAddresses``
(everything under ``addresses`` when ``publishNotReadyAddresses`` is set).
Each Service port resolves its ``targetPort`` against the pod, by number or
by container port name, so pods that name a port differently land in
different subsets, as Kubernetes' RepackSubsets groups them.

A Service without a selector is left alone: its Endpoints are the user's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from controlplane.controllers import podutil
from controlplane.controllers.base import Context, Controller
from controlplane.controllers.podutil import NAMESPACE_INDEX
from corral.api.errors import ApiError
from corral.api.labels import selector_from_set
from corral.api.resources import REGISTRY
from corral.informer import object_key, wait_synced
from corral.objects import Obj, labels_of, meta, spec, status

log = logging.getLogger(__name__)

SERVICES = REGISTRY.by_kind("v1", "Service")
ENDPOINTS = REGISTRY.by_kind("v1", "Endpoints")
PODS = REGISTRY.by_kind("v1", "Pod")
assert SERVICES is not None and ENDPOINTS is not None and PODS is not None

HEADLESS_LABEL = "service.kubernetes.io/headless"
# Pod fields an Endpoints object is built from; a change elsewhere changes nothing.
_RELEVANT = (
    ("metadata", "labels"),
    ("metadata", "deletionTimestamp"),
    ("spec", "nodeName"),
    ("spec", "hostname"),
    ("spec", "subdomain"),
    ("status", "podIP"),
    ("status", "phase"),
)


def resolve_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod port a Service port's ``targetPort`` means, as Kubernetes' FindPort.

    A number is taken as it is; a name is looked up among the containers'
    ports with the same protocol. None when the pod has no such port.
    """
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    for container in spec(pod).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def should_be_listed(pod: Obj, include_terminating: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints: has an address, is not finished, is not going."""
    if podutil.is_terminal(pod) or not status(pod).get("podIP"):
        return False
    return include_terminating or not podutil.is_terminating(pod)


def endpoint_address(service: Obj, pod: Obj) -> Obj:
    pod_meta = meta(pod)
    spec = pod.get("spec") or {}
    address: Obj = {
        "ip": pod["status"]["podIP"],
        "targetRef": {
            "kind": "Pod",
            "namespace": pod_meta.get("namespace", ""),
            "name": pod_meta.get("name", ""),
            "uid": pod_meta.get("uid", ""),
        },
    }
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    # A pod with a hostname in the Service's subdomain gets a DNS name of its own.
    if spec.get("hostname") and spec.get("subdomain") == meta(service).get("name"):
        address["hostname"] = spec["hostname"]
    return address


def build_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The ``subsets`` of a Service's Endpoints for its selected pods.

    Pods are grouped by the set of ports they resolve; within a subset,
    addresses are sorted by IP, so the result is stable and a sync that
    changes nothing writes nothing.
    """
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    service_ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    groups: dict[tuple[tuple[Any, ...], ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not should_be_listed(pod, publish_not_ready):
            continue
        ports: list[Obj] = []
        for service_port in service_ports:
            number = resolve_port(pod, service_port)
            if number is None:
                continue
            port: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
            if service_port.get("name"):
                port["name"] = service_port["name"]
            if service_port.get("appProtocol"):
                port["appProtocol"] = service_port["appProtocol"]
            ports.append(port)
        if service_ports and not ports:
            continue  # none of the Service's ports exist on this pod
        if not service_ports and not headless:
            continue  # only a headless Service may go without ports
        key = tuple(tuple(sorted(p.items())) for p in ports)
        ready, not_ready = groups.setdefault(key, ([], []))
        address = endpoint_address(service, pod)
        (ready if publish_not_ready or podutil.is_ready(pod) else not_ready).append(address)
    subsets = []
    for key in sorted(groups):
        ready, not_ready = groups[key]
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=_address_order)
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=_address_order)
        if key:
            subset["ports"] = [dict(p) for p in key]
        subsets.append(subset)
    return subsets


def _address_order(address: Obj) -> tuple[str, str]:
    return address["ip"], address["targetRef"]["uid"]


def endpoints_labels(service: Obj) -> dict[str, str]:
    labels = dict(labels_of(service))
    if spec(service).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def _relevant_change(old: Obj, new: Obj) -> bool:
    return any(
        (old.get(part) or {}).get(field) != (new.get(part) or {}).get(field)
        for part, field in _RELEVANT
    ) or podutil.is_ready(old) != podutil.is_ready(new)


class EndpointsController(Controller):
    name = "endpoints"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        assert SERVICES is not None and ENDPOINTS is not None and PODS is not None
        self.services = ctx.informer(SERVICES)
        self.services.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.pods = ctx.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, podutil.by_namespace)
        self.endpoints = ctx.informer(ENDPOINTS)
        self.services.add_handlers(
            on_add=self._service_changed,
            on_update=lambda _old, new: self._service_changed(new),
            on_delete=self._service_changed,
        )
        self.pods.add_handlers(
            on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed
        )
        # Someone deleted our Endpoints: write them again.
        self.endpoints.add_handlers(on_delete=lambda e: self.enqueue(object_key(e)))

    def _service_changed(self, service: Obj) -> None:
        self.enqueue(object_key(service))

    def _services_selecting(self, pod: Obj) -> list[str]:
        labels = labels_of(pod)
        keys = []
        for service in self.services.by_index(NAMESPACE_INDEX, str(meta(pod).get("namespace"))):
            selector = spec(service).get("selector")
            if selector and selector_from_set(selector).matches(labels):
                keys.append(object_key(service))
        return keys

    def _pod_changed(self, pod: Obj) -> None:
        for key in self._services_selecting(pod):
            self.enqueue(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if not _relevant_change(old, new):
            return
        for key in {*self._services_selecting(old), *self._services_selecting(new)}:
            self.enqueue(key)

    async def run(self, stop: asyncio.Event) -> None:
        # Endpoints whose Service went while no controller was watching are
        # found once, at start, as Kubernetes' checkLeftoverEndpoints does.
        await wait_synced(self.informers())
        for endpoints in self.endpoints.items():
            if self.services.get(object_key(endpoints)) is None:
                self.enqueue(object_key(endpoints))
        await super().run(stop)

    async def sync(self, key: str) -> None:
        assert ENDPOINTS is not None
        namespace, _, name = key.partition("/")
        service = self.services.get(key)
        if service is None:
            await self._delete(namespace, name)
            return
        spec = service.get("spec") or {}
        selector = spec.get("selector")
        if not selector or spec.get("type") == "ExternalName":
            return
        chosen = selector_from_set(selector)
        pods = [
            p
            for p in self.pods.by_index(NAMESPACE_INDEX, namespace)
            if chosen.matches(labels_of(p))
        ]
        subsets = build_subsets(service, pods)
        labels = endpoints_labels(service)
        current = self.endpoints.get(key)
        try:
            await self._write(namespace, name, current, subsets, labels)
        except ApiError as error:
            if error.code != 409:
                raise
            # Our own last write may not have reached the cache yet: compare
            # with what is stored, once, rather than back off.
            await self._write(namespace, name, await self._read(namespace, name), subsets, labels)

    async def _write(
        self,
        namespace: str,
        name: str,
        current: Obj | None,
        subsets: list[Obj],
        labels: dict[str, str],
    ) -> None:
        assert ENDPOINTS is not None
        if current is None:
            created = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "subsets": subsets,
            }
            await self.client.create(ENDPOINTS, created, namespace)
            return
        if (current.get("subsets") or []) == subsets and labels_of(current) == labels:
            return
        desired = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {**meta(current), "labels": labels},
            "subsets": subsets,
        }
        # The resourceVersion makes this a compare-and-swap.
        await self.client.replace(ENDPOINTS, desired, namespace)

    async def _read(self, namespace: str, name: str) -> Obj | None:
        assert ENDPOINTS is not None
        try:
            return await self.client.get(ENDPOINTS, name, namespace)
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    async def _delete(self, namespace: str, name: str) -> None:
        assert ENDPOINTS is not None
        try:
            await self.client.delete(ENDPOINTS, name, namespace)
        except ApiError as error:
            if error.code != 404:
                raise
