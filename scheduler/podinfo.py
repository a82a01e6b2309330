"""A pod as the scheduler needs it: requests, ports and tolerations parsed once.

Quantities are turned into integers (milli-CPU, bytes, counts) when the pod
is first seen, so that no plugin ever parses a string on the hot path.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.api.labels import LabelSelector, SelectorError, selector_from_dict
from corral.api.quantity import QuantityError, parse_quantity, to_int, to_milli
from corral.objects import Obj, meta, spec, status

# Kubernetes' defaults for a container that requests nothing, used only for
# scoring, so that a node full of request-less pods does not look empty.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

WILDCARD_IP = "0.0.0.0"


class PodParseError(ValueError):
    """A pod whose requests cannot be read (the API server should have refused it)."""


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """``v1.Toleration.ToleratesTaint``."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator == "Equal" and self.value == taint.value


def tolerated(taint: Taint, tolerations: tuple[Toleration, ...]) -> bool:
    return any(t.tolerates(taint) for t in tolerations)


HostPort = tuple[str, str, int]  # (host IP, protocol, port)


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A ``PodAffinityTerm``: the pods ``selector`` picks, in which namespaces, per domain."""

    selector: LabelSelector
    topology_key: str
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False


@dataclass(frozen=True, slots=True)
class PodAffinity:
    """A pod's ``podAffinity`` and ``podAntiAffinity``, parsed once."""

    required_affinity: tuple[AffinityTerm, ...] = ()
    required_anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[tuple[int, AffinityTerm], ...] = ()
    preferred_anti_affinity: tuple[tuple[int, AffinityTerm], ...] = ()


def _affinity_term(raw: Any) -> AffinityTerm | None:
    if not isinstance(raw, Mapping) or not raw.get("topologyKey"):
        return None
    try:
        selector = selector_from_dict(raw.get("labelSelector"))
    except SelectorError:
        return None  # the API validates selectors; an unreadable one names no pods
    namespace_selector = raw.get("namespaceSelector")
    return AffinityTerm(
        selector,
        str(raw["topologyKey"]),
        tuple(str(n) for n in raw.get("namespaces") or ()),
        # Only the empty selector, "every namespace", is understood here.
        all_namespaces=namespace_selector == {},
    )


def _required(raw: Mapping[str, Any]) -> tuple[AffinityTerm, ...]:
    terms = (
        _affinity_term(t) for t in raw.get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    )
    return tuple(t for t in terms if t is not None)


def _preferred(raw: Mapping[str, Any]) -> tuple[tuple[int, AffinityTerm], ...]:
    weighted = []
    for entry in raw.get("preferredDuringSchedulingIgnoredDuringExecution") or ():
        if not isinstance(entry, Mapping):
            continue
        term = _affinity_term(entry.get("podAffinityTerm"))
        weight = entry.get("weight")
        if term is not None and isinstance(weight, int) and weight > 0:
            weighted.append((weight, term))
    return tuple(weighted)


def parse_pod_affinity(spec: Mapping[str, Any]) -> PodAffinity | None:
    affinity = spec.get("affinity")
    if not isinstance(affinity, Mapping):
        return None
    near = affinity.get("podAffinity")
    away = affinity.get("podAntiAffinity")
    near = near if isinstance(near, Mapping) else {}
    away = away if isinstance(away, Mapping) else {}
    parsed = PodAffinity(_required(near), _required(away), _preferred(near), _preferred(away))
    return parsed if parsed != PodAffinity() else None


@dataclass(slots=True, eq=False)
class PodInfo:
    key: str
    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    priority: int
    scheduler_name: str
    node_name: str
    cpu: int
    memory: int
    scalars: dict[str, int]
    nonzero_cpu: int
    nonzero_memory: int
    host_ports: tuple[HostPort, ...]
    tolerations: tuple[Toleration, ...]
    terminating: bool
    obj: Obj = field(repr=False)
    affinity: PodAffinity | None = None

    def on_node(self, node_name: str) -> PodInfo:
        """This pod as assumed onto ``node_name`` (the original is left as it was)."""
        return PodInfo(
            self.key,
            self.namespace,
            self.name,
            self.uid,
            self.labels,
            self.priority,
            self.scheduler_name,
            node_name,
            self.cpu,
            self.memory,
            self.scalars,
            self.nonzero_cpu,
            self.nonzero_memory,
            self.host_ports,
            self.tolerations,
            self.terminating,
            self.obj,
            self.affinity,
        )

    @classmethod
    def from_obj(cls, obj: Obj) -> PodInfo:
        metadata = meta(obj)
        spec = obj.get("spec") or {}
        namespace = metadata.get("namespace") or ""
        name = metadata.get("name") or ""
        try:
            cpu, memory, scalars, nonzero_cpu, nonzero_memory = _requests(spec)
        except (QuantityError, TypeError, ValueError) as error:
            raise PodParseError(f"pod {namespace}/{name}: bad resource request: {error}") from None
        return cls(
            key=f"{namespace}/{name}",
            namespace=namespace,
            name=name,
            uid=metadata.get("uid") or "",
            labels=dict(metadata.get("labels") or {}),
            priority=int(spec.get("priority") or 0),
            scheduler_name=spec.get("schedulerName") or "default-scheduler",
            node_name=spec.get("nodeName") or "",
            cpu=cpu,
            memory=memory,
            scalars=scalars,
            nonzero_cpu=nonzero_cpu,
            nonzero_memory=nonzero_memory,
            host_ports=_host_ports(spec),
            tolerations=tuple(_toleration(t) for t in spec.get("tolerations") or ()),
            terminating=bool(metadata.get("deletionTimestamp")),
            obj=obj,
            affinity=parse_pod_affinity(spec),
        )


@functools.lru_cache(maxsize=4096)
def milli_value(text: str) -> int:
    return to_milli(parse_quantity(text))


@functools.lru_cache(maxsize=4096)
def int_value(text: str) -> int:
    return to_int(parse_quantity(text))


def quantity(name: str, value: object) -> int:
    """A quantity in the scheduler's units: milli-CPU for ``cpu``, whole units otherwise."""
    text = value if isinstance(value, str) else str(value)
    return milli_value(text) if name == "cpu" else int_value(text)


def _container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    # A limit without a request is the request too, as the API's defaulting has it.
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: quantity(name, value) for name, value in merged.items()}


def _requests(spec: Mapping[str, Any]) -> tuple[int, int, dict[str, int], int, int]:
    total: dict[str, int] = {}
    nonzero_cpu = nonzero_memory = 0
    for container in spec.get("containers") or ():
        requests = _container_requests(container)
        for name, amount in requests.items():
            total[name] = total.get(name, 0) + amount
        nonzero_cpu += requests.get("cpu", DEFAULT_MILLI_CPU_REQUEST)
        nonzero_memory += requests.get("memory", DEFAULT_MEMORY_REQUEST)
    # Init containers run one at a time before the others: the pod needs the
    # largest of them, or the sum of the app containers, whichever is more.
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container)
        for name, amount in requests.items():
            total[name] = max(total.get(name, 0), amount)
        nonzero_cpu = max(nonzero_cpu, requests.get("cpu", DEFAULT_MILLI_CPU_REQUEST))
        nonzero_memory = max(nonzero_memory, requests.get("memory", DEFAULT_MEMORY_REQUEST))
    cpu = total.pop("cpu", 0)
    memory = total.pop("memory", 0)
    total.pop("pods", None)
    scalars = {name: amount for name, amount in total.items() if amount > 0}
    return cpu, memory, scalars, nonzero_cpu, nonzero_memory


def _host_ports(spec: Mapping[str, Any]) -> tuple[HostPort, ...]:
    host_network = bool(spec.get("hostNetwork"))
    found: list[HostPort] = []
    for container in spec.get("containers") or ():
        for port in container.get("ports") or ():
            number = port.get("hostPort") or 0
            if not number and host_network:
                # On the host's network the container port is a host port.
                number = port.get("containerPort") or 0
            if number:
                found.append(
                    (port.get("hostIP") or WILDCARD_IP, port.get("protocol") or "TCP", int(number))
                )
    return tuple(found)


def _toleration(raw: Mapping[str, Any]) -> Toleration:
    return Toleration(
        key=raw.get("key") or "",
        operator=raw.get("operator") or "Equal",
        value=raw.get("value") or "",
        effect=raw.get("effect") or "",
    )


def is_assigned(obj: Obj) -> bool:
    return bool(spec(obj).get("nodeName"))


def is_terminal(obj: Obj) -> bool:
    return status(obj).get("phase") in ("Succeeded", "Failed")
