"""What a describer may fetch: the API client, the registry, the time, and related events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from corral.api.errors import ApiError
from corral.api.fields import escape_field_value
from corral.api.resources import Registry, ResourceType
from corral.durations import human_duration
from corral.objects import Obj, parse_time
from corralctl.context import UsageError


class ApiClient(Protocol):
    async def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj: ...

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Obj: ...


@dataclass
class DescribeSource:
    """The client, the registry and the settings the describers share."""

    client: ApiClient
    registry: Registry
    show_events: bool = True
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def rt(self, api_version: str, kind: str) -> ResourceType:
        found = self.registry.by_kind(api_version, kind)
        if found is None:
            raise UsageError(f'no matches for kind "{kind}" in version "{api_version}"')
        return found

    def since(self, value: Any) -> str:
        """How long ago ``value`` was, or ``<unknown>`` when it is unset."""
        parsed = parse_time(value)
        if parsed is None:
            return "<unknown>"
        return human_duration(self.now - parsed)

    async def items(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        listed = await self.client.list(
            rt,
            namespace or None,
            all_namespaces=not namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        items: list[Obj] = listed.get("items") or []
        return items

    async def get_or_none(self, rt: ResourceType, name: str, namespace: str | None) -> Obj | None:
        try:
            return await self.client.get(rt, name, namespace)
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    async def events(self, obj: Obj, *, uid: str | None = None) -> list[Obj] | None:
        """Events about ``obj``, or None when events are not shown.

        Like kubectl, a failed search shows as no events rather than an error.
        """
        if not self.show_events:
            return None
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        terms = {
            "involvedObject.kind": obj.get("kind") or "",
            "involvedObject.name": meta.get("name") or "",
            "involvedObject.namespace": namespace,
            "involvedObject.uid": meta.get("uid") if uid is None else uid,
        }
        selector = ",".join(
            f"{key}={escape_field_value(str(value))}"
            for key, value in sorted(terms.items())
            if value or key in ("involvedObject.name", "involvedObject.namespace")
        )
        try:
            return await self.items(self.rt("v1", "Event"), namespace, field_selector=selector)
        except ApiError:
            return []


Describer = Callable[[DescribeSource, Obj], Awaitable[str]]
