"""Handing out pod CIDRs, Service IPs and node ports, never the same one twice.

Each range is one JSON map in etcd (``/registry/ranges/<name>``: value ->
owner), changed only by compare-and-swap on its revision, so concurrent
allocations, even by several API servers, cannot both win the same value.
An entry whose owner no longer exists is taken back, but only after a grace
period, so an allocation made just before its object is written is safe.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from controlplane.storage.store import Conflict, KeyExists, NotFound, Store
from corral.api import errors
from corral.clock import Clock

log = logging.getLogger(__name__)

_ATTEMPTS = 32
# An allocation whose owner does not exist yet is kept this long: the owner
# is usually being written right after its allocation.
_RECLAIM_AFTER_SECONDS = 120.0

Exists = Callable[[str], bool]


class RangeFull(Exception):
    pass


@dataclass
class RangeAllocator:
    store: Store
    name: str  # "podcidrs", "serviceips", "nodeports"
    candidates: Callable[[], Iterator[str]]
    exists: Exists  # does the owner still exist?
    clock: Clock

    @property
    def key(self) -> bytes:
        return f"{self.store.prefix}/ranges/{self.name}".encode()

    async def _read(self) -> tuple[dict[str, dict[str, object]], int]:
        found = await self.store.etcd.get(self.key)
        kv = found[0]
        if kv is None:
            return {}, 0
        data: dict[str, dict[str, object]] = orjson.loads(kv.value)
        return data, kv.mod_revision

    async def _write(self, data: dict[str, dict[str, object]], revision: int) -> bool:
        """Compare-and-swap the whole map; False when another writer got there first."""
        try:
            if revision == 0:
                await self.store.create(self.key, dict(data))
            else:
                await self.store.update(self.key, dict(data), revision)
        except (Conflict, KeyExists, NotFound):
            return False
        return True

    def _free(self, entry: dict[str, object] | None, now: float) -> bool:
        if entry is None:
            return True
        owner = str(entry.get("owner", ""))
        at = float(str(entry.get("at", 0.0)))
        return not self.exists(owner) and now - at > _RECLAIM_AFTER_SECONDS

    async def allocate(self, owner: str, wanted: str | None = None) -> str:
        """A value for ``owner``: ``wanted`` if given (and free), else the first free one.

        An owner that already holds a value gets the same one back.
        """
        for _ in range(_ATTEMPTS):
            data, revision = await self._read()
            now = self.clock.now().timestamp()
            held = next((v for v, e in data.items() if e.get("owner") == owner), None)
            if held is not None and (wanted is None or wanted == held):
                return held
            if wanted is not None:
                if not self._free(data.get(wanted), now):
                    raise errors.invalid(
                        "Service",
                        owner.split("/")[-1],
                        [
                            errors.Cause(
                                "FieldValueInvalid",
                                f'Invalid value: "{wanted}": provided {self.noun} is '
                                "already allocated",
                                self.field,
                            )
                        ],
                    )
                choice = wanted
            else:
                choice = next((c for c in self.candidates() if self._free(data.get(c), now)), "")
                if not choice:
                    raise RangeFull(f"no free {self.noun} left in the range")
            data[choice] = {"owner": owner, "at": now}
            if await self._write(data, revision):
                return choice
        raise errors.service_unavailable(f"could not allocate a {self.noun}: too much contention")

    async def release(self, value: str, owner: str) -> None:
        for _ in range(_ATTEMPTS):
            data, revision = await self._read()
            entry = data.get(value)
            if entry is None or entry.get("owner") != owner:
                return
            del data[value]
            if await self._write(data, revision):
                return

    @property
    def noun(self) -> str:
        return {"podcidrs": "pod CIDR", "serviceips": "IP", "nodeports": "port"}.get(
            self.name, "value"
        )

    @property
    def field(self) -> str:
        return {"serviceips": "spec.clusterIPs", "nodeports": "spec.ports"}.get(self.name, "")


def subnets(cidr: str, prefix: int) -> Callable[[], Iterator[str]]:
    network = ipaddress.ip_network(cidr)

    def generate() -> Iterator[str]:
        for subnet in network.subnets(new_prefix=prefix):
            yield str(subnet)

    return generate


def addresses(cidr: str) -> Callable[[], Iterator[str]]:
    """Service IPs: all hosts of the range but the first (kept, like Kubernetes' .1)."""
    network = ipaddress.ip_network(cidr)

    def generate() -> Iterator[str]:
        hosts = network.hosts()
        next(hosts, None)
        for address in hosts:
            yield str(address)

    return generate


def ports(first: int, last: int) -> Callable[[], Iterator[str]]:
    def generate() -> Iterator[str]:
        for port in range(first, last + 1):
            yield str(port)

    return generate
