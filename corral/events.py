"""Recording Events about objects, with kubelet's and the controllers' conventions.

Repeats of the same event (same object, reason, message and type) update one
Event's count and lastTimestamp rather than piling up new objects, as
Kubernetes' event correlator does. Where Events go is a sink: the REST API
for controllers, the agent protocol for node agents.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.clock import Clock, SystemClock, rfc3339, rfc3339_micro
from corral.objects import Obj, meta

if TYPE_CHECKING:
    from corral.client.rest import Client

log = logging.getLogger(__name__)

EVENTS = REGISTRY.by_kind("v1", "Event")


class EventSink(Protocol):
    async def create(self, namespace: str, event: Obj) -> str:
        """Store a new Event; its name."""
        ...

    async def update(self, namespace: str, name: str, patch: Obj) -> bool:
        """Merge-patch an Event; False when it no longer exists."""
        ...


class RestEventSink:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def create(self, namespace: str, event: Obj) -> str:
        assert EVENTS is not None
        created = await self.client.create(EVENTS, event, namespace)
        return str(created["metadata"]["name"])

    async def update(self, namespace: str, name: str, patch: Obj) -> bool:
        assert EVENTS is not None
        try:
            await self.client.patch(EVENTS, name, patch, namespace)
        except ApiError as error:
            if error.code == 404:
                return False
            raise
        return True


def reference(obj: Obj, field_path: str = "") -> Obj:
    """An ObjectReference to ``obj``, for ``involvedObject``."""
    metadata = meta(obj)
    ref: Obj = {
        "kind": obj.get("kind", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "name": metadata.get("name", ""),
        "uid": metadata.get("uid", ""),
        "resourceVersion": metadata.get("resourceVersion", ""),
    }
    if metadata.get("namespace"):
        ref["namespace"] = metadata["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v}


@dataclass
class EventRecorder:
    """Events from one component. Pass a REST ``client``, or any ``sink``."""

    client: Client | None
    component: str
    host: str = ""
    clock: Clock = field(default_factory=SystemClock)
    sink: EventSink | None = None
    # Recent events by identity: the stored Event's name and count.
    _recent: dict[tuple[str, ...], tuple[str, int]] = field(default_factory=dict)
    max_remembered: int = 4096
    _sequence: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        if self.sink is None:
            if self.client is None:
                raise ValueError("an EventRecorder needs a client or a sink")
            self.sink = RestEventSink(self.client)

    async def record(
        self, obj: Obj, event_type: str, reason: str, message: str, field_path: str = ""
    ) -> None:
        """Record an Event; never raises, since an event is never worth failing work for."""
        try:
            await self._record(obj, event_type, reason, message, field_path)
        except Exception as error:
            log.warning(
                "could not record event %s for %s: %s",
                reason,
                meta(obj).get("name"),
                error,
            )

    async def _record(
        self, obj: Obj, event_type: str, reason: str, message: str, field_path: str
    ) -> None:
        assert self.sink is not None
        involved = reference(obj, field_path)
        namespace = involved.get("namespace") or "default"
        identity = (
            namespace,
            involved.get("uid", ""),
            involved.get("name", ""),
            field_path,
            event_type,
            reason,
            message,
        )
        at = self.clock.now()
        now = rfc3339(at)
        remembered = self._recent.get(identity)
        if remembered is not None:
            name, count = remembered
            # series carries the repeat's time to the microsecond, which
            # lastTimestamp (whole seconds) cannot.
            patch = {
                "count": count + 1,
                "lastTimestamp": now,
                "series": {"count": count + 1, "lastObservedTime": rfc3339_micro(at)},
            }
            if await self.sink.update(namespace, name, patch):
                self._recent[identity] = (name, count + 1)
                return
        # client-go's naming: the object's name and the time in hex nanoseconds
        # (plus a sequence, so two events in one tick never collide).
        stamp = int(at.timestamp() * 1e9) + next(self._sequence)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved.get('name', 'object')}.{stamp:x}",
                "namespace": namespace,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
        }
        name = await self.sink.create(namespace, event)
        if len(self._recent) >= self.max_remembered:
            self._recent.pop(next(iter(self._recent)))
        self._recent[identity] = (name, 1)
