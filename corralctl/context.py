"""What every command needs: the client, the namespace, and resource lookup."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from corral.api.resources import REGISTRY, Registry, ResourceType
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client
from corral.clock import Clock, SystemClock


class UsageError(Exception):
    """The command line itself is wrong; printed as ``error: ...``."""


@dataclass
class CliContext:
    config: ClientConfig
    namespace: str
    all_namespaces: bool = False
    namespace_explicit: bool = False
    registry: Registry = REGISTRY
    clock: Clock = field(default_factory=SystemClock)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.config, on_warning=self.warn)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def warn(self, message: str) -> None:
        self.err.write(f"Warning: {message}\n")
        self.err.flush()

    def resolve(self, name: str) -> ResourceType:
        rt = self.registry.resolve(name)
        if rt is None:
            raise UsageError(f'the server doesn\'t have a resource type "{name}"')
        return rt

    def resolve_kind(self, api_version: str, kind: str, source: str = "") -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            where = f' in "{source}"' if source else ""
            raise UsageError(f'no matches for kind "{kind}" in version "{api_version}"{where}')
        return rt

    def expand(self, text: str) -> list[ResourceType]:
        """``pods,svc`` or a category such as ``all`` into resource types."""
        out: list[ResourceType] = []
        for part in text.split(","):
            if not part:
                continue
            category = self.registry.category(part)
            if category and self.registry.resolve(part) is None:
                out.extend(category)
            else:
                out.append(self.resolve(part))
        return out

    def targets(self, args: list[str]) -> list[tuple[ResourceType, list[str]]]:
        """kubectl's resource arguments: ``TYPE [NAME...]`` or ``TYPE/NAME...``."""
        if not args:
            raise UsageError("you must specify the type of resource")
        if any("/" in a for a in args):
            grouped: dict[str, tuple[ResourceType, list[str]]] = {}
            for arg in args:
                if "/" not in arg:
                    raise UsageError(
                        f"there is no need to specify a resource type as a separate argument "
                        f'when passing arguments in resource/name form (got "{arg}")'
                    )
                type_text, name = arg.split("/", 1)
                rt = self.resolve(type_text)
                grouped.setdefault(rt.plural + rt.group, (rt, []))[1].append(name)
            return list(grouped.values())
        types = self.expand(args[0])
        names = args[1:]
        if names and len(types) > 1:
            raise UsageError("you may only specify one resource type when naming objects")
        return [(rt, list(names)) for rt in types]
