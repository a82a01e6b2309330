"""What every command needs: the client, the namespace, and resource lookup."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from dataclasses import dataclass, field
from typing import TextIO

from corral.api.crd import is_established, resource_types
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, Registry, ResourceType
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client, ConnectionFailed
from corral.clock import Clock, SystemClock
from corral.objects import Obj

# How long a command waits to learn the server's custom kinds before going on without them.
_CUSTOM_KINDS_TIMEOUT_SECONDS = 15.0


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
    _custom_kinds_loaded: bool = False

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
        if rt is None and self._load_custom_kinds():
            rt = self.registry.resolve(name)
        if rt is None:
            raise UsageError(f'the server doesn\'t have a resource type "{name}"')
        return rt

    def resolve_kind(self, api_version: str, kind: str, source: str = "") -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None and self._load_custom_kinds():
            rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            where = f' in "{source}"' if source else ""
            raise UsageError(f'no matches for kind "{kind}" in version "{api_version}"{where}')
        return rt

    def _load_custom_kinds(self) -> bool:
        """Learn the server's custom kinds (its established CRDs) into this command's registry.

        Done once, and only when a name misses the built-in kinds, so commands
        on built-in kinds cost no extra request. The lookups that call this
        are synchronous, so the one request runs on a loop of its own in a
        thread. True if custom kinds were added.
        """
        if self._custom_kinds_loaded:
            return False
        self._custom_kinds_loaded = True
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(asyncio.run, _established_crds(self.config))
            try:
                crds = future.result(timeout=_CUSTOM_KINDS_TIMEOUT_SECONDS)
            except (ApiError, ConnectionFailed, concurrent.futures.TimeoutError) as error:
                # Without them the name is reported unknown, as kubectl reports it.
                self.warn(f"could not read the server's custom resource definitions: {error}")
                return False
        kinds = [rt for crd in crds for rt in resource_types(crd)]
        if not kinds:
            return False
        if self.registry is REGISTRY:
            self.registry = REGISTRY.fork()  # the process-wide registry stays built-in only
        self.registry.set_custom(kinds)
        return True

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


async def _established_crds(config: ClientConfig) -> list[Obj]:
    crds = REGISTRY.require("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    async with Client(config) as client:
        listed = await client.list(crds)
    return [crd for crd in listed.get("items") or [] if is_established(crd)]
