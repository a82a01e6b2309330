"""Leader election over a coordination.k8s.io/v1 Lease, as client-go does it.

Several copies of a component run; the one holding the Lease works and the
others wait. Expiry is judged by the *observer's* clock: a candidate records
when it last saw the Lease change and takes over only after a full lease
duration of silence, so clocks that disagree between hosts cannot make two
leaders. A leader that cannot renew within its deadline stops leading
before anyone else may start.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.client.rest import Client, ConnectionFailed
from corral.clock import Clock, SystemClock, rfc3339_micro
from corral.objects import Obj

log = logging.getLogger(__name__)

LEASES = REGISTRY.by_kind("coordination.k8s.io/v1", "Lease")

# Kubernetes' own name (k8s.io/client-go/tools/leaderelection/metrics.go), so
# dashboards and the fault tests can ask each copy whether it believes it leads.
IS_LEADER = Gauge(
    "leader_election_master_status",
    "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
    "1 indicates master. 'name' is the string used to identify the lease.",
    ["name"],
)


@dataclass(frozen=True)
class ElectionConfig:
    name: str
    identity: str
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaderElector:
    def __init__(self, client: Client, config: ElectionConfig, clock: Clock | None = None) -> None:
        if not config.lease_duration > config.renew_deadline > config.retry_period:
            raise ValueError("need lease_duration > renew_deadline > retry_period")
        self.client = client
        self.config = config
        self.clock = clock or SystemClock()
        self._is_leader = False
        IS_LEADER.labels(config.name).set(0)
        self._observed: Obj | None = None
        self._observed_at = 0.0

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    @is_leader.setter
    def is_leader(self, leading: bool) -> None:
        self._is_leader = leading
        IS_LEADER.labels(self.config.name).set(1 if leading else 0)

    async def run(self, lead: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        """Campaign until leading, run ``lead`` while the Lease holds, and return after.

        ``lead`` is cancelled when leadership is lost; the caller should then
        exit (or campaign again) rather than carry on with stale state. If
        ``lead`` itself fails, the Lease is handed back and its exception
        raised here: a leader whose work crashed must not look like one that
        merely lost the Lease (kube-controller-manager exits non-zero too).
        """
        while not stop.is_set():
            if await self._try_acquire_or_renew():
                break
            # client-go's JitterUntil(retryPeriod, 1.2): candidates that lost
            # the same leader do not all try again on the same tick.
            await self._pause(self.config.retry_period * (1 + 1.2 * random.random()), stop)
        if stop.is_set():
            return
        self.is_leader = True
        log.info("%s: became leader of %s", self.config.identity, self.config.name)
        work = asyncio.ensure_future(lead())
        try:
            await self._renew_until_lost(work, stop)
        finally:
            self.is_leader = False
            failure = await self._end(work)
            if stop.is_set() or failure is not None:
                await self._release()
        if failure is not None:
            raise failure

    async def _end(self, work: asyncio.Future[None]) -> BaseException | None:
        """Cancel the work if it still runs, and wait; its exception if it failed on its own."""
        failure = None
        if work.done() and not work.cancelled():
            failure = work.exception()
        work.cancel()
        await asyncio.wait({work})
        if failure is None and not work.cancelled() and work.exception() is not None:
            # It failed while stopping: logged, but the stop is still clean.
            log.error(
                "%s: the work of %s failed as it stopped",
                self.config.identity,
                self.config.name,
                exc_info=work.exception(),
            )
        return failure

    async def _renew_until_lost(self, work: asyncio.Future[None], stop: asyncio.Event) -> None:
        last_renewed = self.clock.monotonic()
        while not stop.is_set() and not work.done():
            await self._pause(self.config.retry_period, stop, work)
            if stop.is_set() or work.done():
                return
            if await self._try_acquire_or_renew():
                last_renewed = self.clock.monotonic()
            elif self.clock.monotonic() - last_renewed > self.config.renew_deadline:
                log.error("%s: lost the lease %s", self.config.identity, self.config.name)
                return

    async def _pause(
        self, seconds: float, stop: asyncio.Event, work: asyncio.Future[None] | None = None
    ) -> None:
        waits: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(self.clock.sleep(seconds)),
            asyncio.ensure_future(stop.wait()),
        }
        if work is not None:
            waits.add(work)
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            if future is not work:
                future.cancel()

    def _now(self) -> str:
        return rfc3339_micro(self.clock.now())

    async def _try_acquire_or_renew(self) -> bool:
        assert LEASES is not None
        config = self.config
        try:
            current = await self.client.get(LEASES, config.name, config.namespace)
        except ApiError as error:
            if error.code != 404:
                return False
            return await self._create()
        except ConnectionFailed:
            return False
        spec = current.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        if self._observed is None or self._observed.get("record") != record:
            self._observed = {"record": record}
            self._observed_at = self.clock.monotonic()
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or config.lease_duration)
        if (
            holder
            and holder != config.identity
            and (self._observed_at + duration > self.clock.monotonic())
        ):
            return False
        updated = copy.deepcopy(current)
        new_spec = updated.setdefault("spec", {})
        now = self._now()
        if holder != config.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        new_spec["holderIdentity"] = config.identity
        new_spec["leaseDurationSeconds"] = int(config.lease_duration)
        new_spec["renewTime"] = now
        try:
            written = await self.client.replace(LEASES, updated, config.namespace)
        except (ApiError, ConnectionFailed):
            return False
        self._remember(written)
        return True

    async def _create(self) -> bool:
        assert LEASES is not None
        now = self._now()
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.name, "namespace": self.config.namespace},
            "spec": {
                "holderIdentity": self.config.identity,
                "leaseDurationSeconds": int(self.config.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            written = await self.client.create(LEASES, lease, self.config.namespace)
        except (ApiError, ConnectionFailed):
            return False
        self._remember(written)
        return True

    def _remember(self, lease: Obj) -> None:
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        self._observed = {"record": record}
        self._observed_at = self.clock.monotonic()

    async def _release(self) -> None:
        """Hand the Lease back on a clean shutdown, so a standby need not wait it out."""
        assert LEASES is not None
        # Only a courtesy: a Lease not handed back expires after its
        # duration, and a standby then takes over all the same.
        with contextlib.suppress(ApiError, ConnectionFailed):
            current = await self.client.get(LEASES, self.config.name, self.config.namespace)
            spec = current.get("spec") or {}
            if spec.get("holderIdentity") != self.config.identity:
                return
            released = copy.deepcopy(current)
            released["spec"]["holderIdentity"] = ""
            released["spec"]["leaseDurationSeconds"] = 1
            released["spec"]["renewTime"] = self._now()
            await self.client.replace(LEASES, released, self.config.namespace)
