"""The agent's pod network: nodeagent.network's parts, fed from the API.

Once the node has its pod CIDR this sets up the bridge and routes, starts
the cluster DNS server on the bridge's gateway address, and follows
Services and Endpoints (REST watches, with the node's own certificate) to
program the Service proxy and the DNS zone. Changes are coalesced for a
moment, so a burst of endpoint updates costs one nft transaction. Peer
nodes' routes come from the heartbeat, because a node may not read other
Node objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from corral.api.resources import REGISTRY
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client
from corral.clock import Clock
from corral.informer import Informer
from corral.objects import Obj, meta
from nodeagent.network.config import NetworkConfig
from nodeagent.network.dns import ClusterDNS
from nodeagent.network.dnsforward import node_upstreams
from nodeagent.network.env import pod_service_env
from nodeagent.network.nft import NftError
from nodeagent.network.node import NodeNetwork
from nodeagent.network.proxy import ServiceProxy
from nodeagent.network.resolvconf import pod_resolv_conf
from nodeagent.network.testbed import add_netns, namespaces

log = logging.getLogger(__name__)

_SERVICES = REGISTRY.by_kind("v1", "Service")
_ENDPOINTS = REGISTRY.by_kind("v1", "Endpoints")
# Endpoint changes arriving within this window are applied together.
_COALESCE_SECONDS = 0.05
# Every so often the whole ruleset is rewritten, repairing anything changed
# behind the agent's back.
_FULL_RESYNC_SECONDS = 300.0
# How long a container start waits for the first Service list, so that its
# environment variables are complete; after that it starts without them.
_SERVICES_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class NetworkOptions:
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    cluster_domain: str = "cluster.local"
    bridge: str = "crl0"
    mtu: int = 1500
    # None: the agent's own network namespace (a real node); a name: a
    # namespace under /run/netns that stands in for the host, created if
    # missing, as tests and several agents sharing one machine use.
    host_netns: str | None = None
    # Another local cluster's pod network may share host_netns: each has its own table.
    nft_table: str = "corral"


class PodNetworking:
    def __init__(
        self,
        options: NetworkOptions,
        *,
        node_ip: str,
        state_dir: Path,
        api: ClientConfig,
        clock: Clock,
        host_resolv_conf: Path = Path("/etc/resolv.conf"),
    ) -> None:
        self.options = options
        self.node_ip = node_ip
        self.state_dir = state_dir
        self.api = api
        self.clock = clock
        self.host_resolv_conf = host_resolv_conf
        self.ready = asyncio.Event()
        self.network: NodeNetwork | None = None
        self.proxy: ServiceProxy | None = None
        self.dns: ClusterDNS | None = None
        self._client: Client | None = None
        self._services: Informer | None = None
        self._endpoints: Informer | None = None
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, pod_cidr: str) -> None:
        """Wire the node and start following Services. Idempotent across restarts."""
        options = self.options
        if options.host_netns and options.host_netns not in namespaces():
            await add_netns(options.host_netns)
        config = NetworkConfig(
            host_netns=options.host_netns,
            pod_cidr=pod_cidr,
            state_dir=self.state_dir,
            node_ip=self.node_ip,
            cluster_cidr=options.cluster_cidr,
            service_cidr=options.service_cidr,
            bridge=options.bridge,
            mtu=options.mtu,
            cluster_domain=options.cluster_domain,
            nft_table=options.nft_table,
        )
        self.network = NodeNetwork(config)
        await self.network.setup()
        self.proxy = ServiceProxy(config)
        self.dns = ClusterDNS(
            config.gateway,
            host_netns=options.host_netns,
            domain=options.cluster_domain,
            # Names outside the cluster go to the resolvers of the machine the
            # agent runs on, asked from the agent's own namespace.
            upstreams=node_upstreams(own_addresses=[config.gateway]),
        )
        await self.dns.start()
        assert _SERVICES is not None and _ENDPOINTS is not None
        self._client = Client(self.api, user_agent="corral-agent/network")
        self._services = Informer(self._client, _SERVICES, clock=self.clock)
        self._endpoints = Informer(self._client, _ENDPOINTS, clock=self.clock)
        for informer in (self._services, self._endpoints):
            informer.add_handlers(self._changed, self._updated, self._changed)
        self._tasks = [
            asyncio.create_task(self._services.run(self._stop), name="services-informer"),
            asyncio.create_task(self._endpoints.run(self._stop), name="endpoints-informer"),
            asyncio.create_task(self._program(), name="service-proxy"),
        ]
        self.ready.set()
        log.info("pod network %s on bridge %s, DNS at %s", pod_cidr, options.bridge, config.gateway)

    def _changed(self, _obj: Obj) -> None:
        self._dirty.set()

    def _updated(self, _old: Obj, _new: Obj) -> None:
        self._dirty.set()

    async def _program(self) -> None:
        """Apply Service changes, coalesced, until stopped."""
        assert self._services is not None and self._endpoints is not None
        await self._services.synced.wait()
        await self._endpoints.synced.wait()
        last_full = self.clock.monotonic()
        while not self._stop.is_set():
            self._dirty.clear()
            services, endpoints = self._services.items(), self._endpoints.items()
            assert self.proxy is not None and self.dns is not None
            try:
                if self.clock.monotonic() - last_full > _FULL_RESYNC_SECONDS:
                    await self.proxy.resync()
                    last_full = self.clock.monotonic()
                await self.proxy.sync(services, endpoints, [self.node_ip])
            except NftError as error:
                log.error("service rules not applied: %s", error)
                self._dirty.set()  # try again after the pause below
            self.dns.update(services, endpoints)
            # Either a change or the full resync period, whichever comes first.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FULL_RESYNC_SECONDS):
                    await self._dirty.wait()
            await self.clock.sleep(_COALESCE_SECONDS)

    # --- what pods get ---------------------------------------------------------------

    async def attach(self, pod: Obj, netns: str) -> str:
        await self.ready.wait()
        assert self.network is not None
        uid = meta(pod).get("uid", "")
        return await self.network.attach(uid, netns)

    async def detach(self, pod: Obj) -> None:
        if self.network is None:
            return
        await self.network.detach(meta(pod).get("uid", ""))

    async def service_env(self, pod: Obj) -> dict[str, str]:
        if self._services is None:
            return {}
        # A pod does not wait long for Services: it starts with what is known.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SERVICES_WAIT_SECONDS):
                await self._services.synced.wait()
        return pod_service_env(pod, self._services.items())

    def resolv_conf(self, pod: Obj) -> str | None:
        """The pod's /etc/resolv.conf, or None to leave the image's own."""
        if self.network is None:
            return None
        try:
            host = self.host_resolv_conf.read_text()
        except OSError:
            host = ""
        return pod_resolv_conf(
            pod, self.network.config.gateway, host, domain=self.options.cluster_domain
        )

    async def set_peers(self, peers: Mapping[str, tuple[str, str]]) -> None:
        if self.network is not None:
            await self.network.set_peers(peers)

    async def close(self) -> None:
        """Stop following the API and serving DNS; pods keep their links and rules."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
        for task, outcome in zip(self._tasks, outcomes, strict=True):
            # Cancelled is how they were asked to end; anything else had
            # stopped that loop before, unseen until now.
            if isinstance(outcome, Exception):
                log.error("pod network: the %s loop had failed: %r", task.get_name(), outcome)
        if self.dns is not None:
            await self.dns.stop()
        if self._client is not None:
            await self._client.close()
        if self.network is not None:
            self.network.close()
