"""Service addresses: a ClusterIP from the service CIDR and NodePorts from their range.

Allocation happens before the Service is written and is undone if the write
fails; a re-applied manifest that leaves ``clusterIP`` or ``nodePort`` out
keeps what was allocated, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from controlplane.apiserver.allocators import RangeAllocator, RangeFull
from corral.api import errors
from corral.objects import Obj, meta, spec

Undo = Callable[[], Awaitable[None]]
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _owner(obj: Obj) -> str:
    metadata = meta(obj)
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _port_owner(obj: Obj, port: Obj) -> str:
    return f"{_owner(obj)}/{port.get('port')}/{port.get('protocol', 'TCP')}"


class ServiceAddresses:
    def __init__(self, ips: RangeAllocator, node_ports: RangeAllocator) -> None:
        self.ips = ips
        self.node_ports = node_ports

    async def before_create(self, obj: Obj) -> Undo:
        spec = obj.setdefault("spec", {})
        taken: list[tuple[RangeAllocator, str, str]] = []
        try:
            if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
                wanted = spec.get("clusterIP") or None
                address = await self._allocate(self.ips, _owner(obj), wanted)
                taken.append((self.ips, address, _owner(obj)))
                spec["clusterIP"] = address
                spec["clusterIPs"] = [address]
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            elif spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
            if spec.get("type") in NODE_PORT_TYPES:
                await self._node_ports(obj, None, taken)
        except BaseException:
            await _release(taken)
            raise

        async def undo() -> None:
            await _release(taken)

        return undo

    async def before_update(self, new: Obj, old: Obj) -> Undo:
        spec = new.setdefault("spec", {})
        old_spec = old.get("spec") or {}
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = list(old_spec.get("clusterIPs") or [old_spec["clusterIP"]])
        taken: list[tuple[RangeAllocator, str, str]] = []
        if spec.get("type") in NODE_PORT_TYPES:
            try:
                await self._node_ports(new, old, taken)
            except BaseException:
                await _release(taken)
                raise
        else:
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)

        async def undo() -> None:
            await _release(taken)

        return undo

    async def after_update(self, new: Obj, old: Obj) -> None:
        """Free the node ports the update gave up."""
        kept = {str(p.get("nodePort")) for p in spec(new).get("ports") or [] if p.get("nodePort")}
        for port in spec(old).get("ports") or []:
            value = str(port.get("nodePort") or "")
            if value and value not in kept:
                await self.node_ports.release(value, _port_owner(old, port))

    async def after_delete(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            await self.ips.release(spec["clusterIP"], _owner(obj))
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                await self.node_ports.release(str(port["nodePort"]), _port_owner(obj, port))

    async def _node_ports(
        self, obj: Obj, old: Obj | None, taken: list[tuple[RangeAllocator, str, str]]
    ) -> None:
        old_ports = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
            for p in spec(old or {}).get("ports") or []
        }
        for port in spec(obj).get("ports") or []:
            wanted = port.get("nodePort") or old_ports.get(
                (port.get("port"), port.get("protocol", "TCP"))
            )
            value = await self._allocate(
                self.node_ports, _port_owner(obj, port), str(wanted) if wanted else None
            )
            if not (
                old and str(old_ports.get((port.get("port"), port.get("protocol", "TCP")))) == value
            ):
                taken.append((self.node_ports, value, _port_owner(obj, port)))
            port["nodePort"] = int(value)

    @staticmethod
    async def _allocate(allocator: RangeAllocator, owner: str, wanted: str | None) -> str:
        try:
            return await allocator.allocate(owner, wanted)
        except RangeFull as error:
            raise errors.ApiError(
                422,
                "Invalid",
                f'Service "{owner.split("/")[1]}" is invalid: {error}',
                causes=[errors.Cause("FieldValueInvalid", str(error), allocator.field)],
            ) from None


async def _release(taken: list[tuple[RangeAllocator, str, str]]) -> None:
    for allocator, value, owner in taken:
        await allocator.release(value, owner)
