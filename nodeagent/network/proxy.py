"""The Service data plane: Services and Endpoints in, ``table ip corral`` out.

Each sync renders the whole ruleset in memory, then sends the kernel only
what differs from the last one it applied, as one nft transaction: a change
of one endpoint touches one service's chains however many services there
are. The first sync, and any sync after a failed one, replaces the whole
table, also in one transaction, so the table is never seen half-written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from corral.objects import Obj
from nodeagent.network.config import NetworkConfig
from nodeagent.network.nft import NftError, delete_table, run_nft
from nodeagent.network.nftrules import ProxyLayout, Ruleset, delta_script, full_script, render
from nodeagent.network.services import service_ports

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    full: bool  # the whole table was replaced
    commands: int  # lines of the nft script (0: nothing changed)
    seconds: float


class ServiceProxy:
    def __init__(self, config: NetworkConfig) -> None:
        self.netns = config.host_netns
        self.table = config.nft_table
        self.layout = ProxyLayout(cluster_cidr=config.cluster_cidr, pod_cidr=config.pod_cidr)
        self._applied: Ruleset | None = None
        self._lock = asyncio.Lock()

    async def sync(
        self, services: Iterable[Obj], endpoints: Iterable[Obj], node_ips: Iterable[str]
    ) -> SyncResult:
        """Make the table match these objects. Safe to call with unchanged input."""
        started = time.perf_counter()
        wanted = render(service_ports(services, endpoints), self.layout, node_ips)
        async with self._lock:
            script = (
                delta_script(self._applied, wanted, self.table)
                if self._applied is not None
                else None
            )
            full = script is None
            if script is None:
                script = full_script(wanted, self.table)
            if script:
                try:
                    await run_nft(self.netns, script)
                except NftError:
                    if full:
                        self._applied = None
                        raise
                    # What we believed installed was not (someone changed the
                    # table); replace all of it.
                    log.warning("incremental nft update failed; replacing the table")
                    script = full_script(wanted, self.table)
                    full = True
                    try:
                        await run_nft(self.netns, script)
                    except NftError:
                        self._applied = None
                        raise
            self._applied = wanted
        return SyncResult(full, script.count("\n"), time.perf_counter() - started)

    async def resync(self) -> None:
        """Forget what is installed, so the next sync replaces the whole table."""
        async with self._lock:
            self._applied = None

    async def remove(self) -> None:
        """Delete the table: no Service rules remain on the node."""
        async with self._lock:
            await delete_table(self.netns, self.table)
            self._applied = None
