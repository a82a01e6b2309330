"""The API server application: FastAPI routes over storage and the watch cache."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import orjson
import swagger_ui_bundle
from fastapi import FastAPI, WebSocket
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from controlplane.admission.podsecurity import PodSecurityConfig
from controlplane.agentapi.server import start_agent_server
from controlplane.apiserver import discovery, http, nodecerts, nodeproxy, openapi, portforward
from controlplane.apiserver.addressplan import AddressPlan
from controlplane.apiserver.admission import Admission
from controlplane.apiserver.authn import Authenticator, load_token_file
from controlplane.apiserver.bootstrap import ensure_default_namespaces
from controlplane.apiserver.config import Security, ServerConfig
from controlplane.apiserver.console import ConsoleFiles
from controlplane.apiserver.customresources import (
    CustomResourceCleanup,
    CustomResources,
    CustomResourceSync,
)
from controlplane.apiserver.front import ApiFront, error_response
from controlplane.apiserver.gate import Gate
from controlplane.apiserver.inflight import InflightLimiter
from controlplane.apiserver.jobs import JobSelector
from controlplane.apiserver.metrics import STORAGE, RequestMetrics, watch_inflight
from controlplane.apiserver.metricsserver import MetricsEndpoint, metrics_app
from controlplane.apiserver.nodecerts import NodeCertificateSigner
from controlplane.apiserver.nodeproxy import NodeProxy
from controlplane.apiserver.objects import Objects
from controlplane.apiserver.policywriter import ObjectsPolicyWriter
from controlplane.apiserver.routes import ResourceRoutes
from controlplane.apiserver.services import ServiceAddresses
from controlplane.apiserver.storageclasses import (
    DefaultStorageClass,
    ensure_default_storage_class,
)
from controlplane.apiserver.tokenrequest import TokenIssuer, service_account_tokens
from controlplane.apiserver.usagepeers import ForwardingUsage, receiving
from controlplane.apiserver.watches import WatchSettings
from controlplane.apiserver.workermetrics import PeerMetricsServer
from controlplane.audit import AuditLog
from controlplane.auth.authorizer import Chain
from controlplane.auth.cachesource import CachedPods, policy_source
from controlplane.auth.defaults import ensure_default_policy
from controlplane.auth.escalation import check_rbac_write
from controlplane.auth.node import NodeAuthorizer
from controlplane.auth.rbac import RBACAuthorizer
from controlplane.storage.compactor import Compactor
from controlplane.storage.encryption import StorageCodec, load_config
from controlplane.storage.etcd import EtcdClient, EtcdError
from controlplane.storage.leases import LeaseManager
from controlplane.storage.store import Store
from controlplane.storage.watchcache import WatchCache
from controlplane.usage import api as metrics_api
from controlplane.usage import history as usage_history
from controlplane.usage.store import UsageStore
from corral import pki
from corral.api import errors
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, Registry
from corral.backoff import Backoff
from corral.objects import Obj

log = logging.getLogger(__name__)

_STARTUP_RETRY_SECONDS = 60.0


@dataclass
class ServerState:
    config: ServerConfig
    etcd: EtcdClient
    store: Store
    cache: WatchCache
    objects: Objects
    registry: Registry
    plan: AddressPlan
    usage: UsageStore


def build_state(config: ServerConfig, registry: Registry = REGISTRY) -> ServerState:
    client = EtcdClient(
        config.etcd_endpoints,
        timeout=config.etcd_timeout_seconds,
        attempt_timeout=config.etcd_attempt_timeout_seconds,
        tls=config.etcd_tls,
    )
    codec = (
        StorageCodec(load_config(config.encryption_config_file), config.etcd_prefix)
        if config.encryption_config_file
        else None
    )
    store = Store(
        client,
        config.etcd_prefix,
        codec,
        expiring={"events": config.event_ttl_seconds} if config.event_ttl_seconds > 0 else None,
        leases=LeaseManager(client, config.clock),
    )
    cache = WatchCache(
        client,
        config.etcd_prefix,
        history_size=config.watch_history_size,
        clock=config.clock,
        codec=codec,
    )
    objects = Objects(
        store, cache, registry, config.clock, max_object_bytes=config.max_object_bytes
    )
    namespaces = registry.by_kind("v1", "Namespace")
    assert namespaces is not None
    objects.admission = Admission(
        cache,
        lambda name: objects.key(namespaces, None, name).decode(),
        PodSecurityConfig(default_level=config.pod_security_default),
    )
    plan = AddressPlan.build(config, store, cache)
    objects.hooks["Service"] = ServiceAddresses(plan.service_ips, plan.node_ports)
    objects.hooks["PersistentVolumeClaim"] = DefaultStorageClass(cache)
    objects.hooks["CustomResourceDefinition"] = CustomResourceCleanup(store, client)
    objects.hooks["Job"] = JobSelector()

    def wall_clock() -> float:
        return config.clock.now().timestamp()

    usage = (
        ForwardingUsage(wall_clock, config.usage_peer_fds)
        if config.usage_peer_fds
        else UsageStore(wall_clock)
    )
    return ServerState(config, client, store, cache, objects, registry, plan, usage)


async def _bootstrap(state: ServerState) -> None:
    """Create the default namespaces once etcd answers, however long that takes."""
    backoff = Backoff(0.2, 2.0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STARTUP_RETRY_SECONDS
    while True:
        try:
            await ensure_default_namespaces(state.objects, state.registry)
            await ensure_default_storage_class(state.objects, state.registry)
            written = await ensure_default_policy(
                ObjectsPolicyWriter(state.objects, state.registry)
            )
            if written:
                log.info("default RBAC policy written: %s", ", ".join(written))
            return
        except ApiError as error:
            if error.code != 503 or loop.time() > deadline:
                raise
        except EtcdError:
            if loop.time() > deadline:
                raise
        log.warning("etcd is not answering yet; retrying")
        await state.config.clock.sleep(backoff.next())


def create_app(config: ServerConfig, registry: Registry = REGISTRY) -> ASGIApp:
    """The API server as one ASGI app: the in-flight limiter, the gate, then the routes."""
    # The server's own registry: CRDs add kinds to it (and to no other server's in this process).
    registry = registry.fork()
    state = build_state(config, registry)
    guards = _guards(state, config.security) if config.security is not None else Guards()
    audit = _audit_log(config)
    proxy = NodeProxy(
        state.objects, registry, guards.agent_credentials, secure=config.security is not None
    )
    metrics = _metrics_endpoint(state, guards)
    app = FastAPI(
        title="corral",
        lifespan=_lifespan(state, guards.authenticator, audit, proxy, metrics),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.corral = state
    routes = _resource_routes(state, proxy, guards.token_issuer)
    _add_node_endpoints(app, config, proxy, guards.signer)
    _add_discovery(app, state, registry)
    _add_docs(app, registry)
    _add_error_handlers(app)
    usage_history.add_routes(app, state.usage, state.cache, guards.authorizer)
    gate = Gate(
        ApiFront(
            app,
            routes,
            registry,
            unstored={
                metrics_api.GROUP: metrics_api.MetricsApi(
                    state.usage, state.cache, config.clock.now
                )
            },
        ),
        registry,
        config.clock,
        authenticator=guards.authenticator,
        authorizer=guards.authorizer,
        audit=audit,
    )
    limiter = InflightLimiter(
        gate,
        config.max_requests_inflight,
        config.max_mutating_requests_inflight,
        registry=registry,
    )
    watch_inflight(limiter)
    STORAGE.add(state.cache, registry)
    # Metrics off (no --metrics-port): not a cycle spent counting requests.
    metered = config.metrics_port is not None or config.metrics_socket is not None
    counted = RequestMetrics(limiter, registry) if metered else limiter
    return CustomResourceSync(counted, CustomResources(registry, state.cache))


def _metrics_endpoint(
    state: ServerState, guards: Guards
) -> MetricsEndpoint | PeerMetricsServer | None:
    """/metrics on --metrics-port, through a Gate of its own: the same authentication and RBAC.

    A worker other than the first serves its figures to the first instead.
    """
    config = state.config
    if config.metrics_socket is not None:
        return PeerMetricsServer(config.metrics_socket)
    if config.metrics_port is None:
        return None
    gate = Gate(
        metrics_app(config.metrics_peer_sockets),
        state.registry,
        config.clock,
        authenticator=guards.authenticator,
        authorizer=guards.authorizer,
    )
    return MetricsEndpoint(gate, config.host, config.metrics_port, config.security)


@dataclass
class Guards:
    """What the security settings give the server; all None on a plain-HTTP development one."""

    authenticator: Authenticator | None = None
    authorizer: Chain | None = None
    signer: NodeCertificateSigner | None = None
    token_issuer: TokenIssuer | None = None
    agent_credentials: grpc.ChannelCredentials | None = None


def _guards(state: ServerState, security: Security) -> Guards:
    """Authentication, authorization (node, then RBAC), node certificates and agent TLS."""
    config = state.config
    token_issuer, bound_tokens = service_account_tokens(state.objects, security)
    static = load_token_file(Path(security.token_auth_file)) if security.token_auth_file else {}
    authenticator = Authenticator(
        state.cache,
        _cached_secrets(state),
        config.clock,
        static,
        bound_tokens=bound_tokens,
        legacy_secret_tokens=security.legacy_service_account_token_secrets,
    )
    pods = CachedPods(state.cache, config.etcd_prefix)
    rbac = RBACAuthorizer(policy_source(state.cache))
    authorizer = Chain([NodeAuthorizer(pods.pod, pods.on_node), rbac])
    assert isinstance(state.objects.admission, Admission)
    state.objects.admission.rbac_write_check = functools.partial(check_rbac_write, authorizer, rbac)
    agent_credentials = nodeproxy.agent_credentials(
        security.node_serving_ca_file,
        security.agent_client_cert_file,
        security.agent_client_key_file,
    )
    if agent_credentials is None:
        log.warning("no node serving CA or agent client certificate: logs and exec are off")
    return Guards(
        authenticator=authenticator,
        authorizer=authorizer,
        signer=_node_signer(state, security, authorizer),
        token_issuer=token_issuer,
        agent_credentials=agent_credentials,
    )


def _cached_secrets(state: ServerState) -> Callable[[str, str], Obj | None]:
    """Secrets by namespace and name, from the watch cache (for token authentication)."""
    secrets = state.registry.by_kind("v1", "Secret")
    assert secrets is not None

    def secret(namespace: str, name: str) -> Obj | None:
        found = state.objects.get_cached(secrets, namespace, name)
        return found.obj if found is not None else None

    return secret


def _node_signer(
    state: ServerState, security: Security, authorizer: Chain
) -> NodeCertificateSigner | None:
    """The signer of nodes' certificates, if the server holds the client CA's key."""
    if not security.client_ca_key_file:
        return None
    ca = pki.read_pair(Path(security.client_ca_file), Path(security.client_ca_key_file))
    serving_ca = (
        pki.read_pair(Path(security.node_serving_ca_file), Path(security.node_serving_ca_key_file))
        if security.node_serving_ca_file and security.node_serving_ca_key_file
        else None
    )
    return NodeCertificateSigner(
        ca,
        authorizer.authorize,
        serving_ca=serving_ca,
        node_addresses=nodecerts.registered_addresses(state.objects, state.registry),
    )


def _audit_log(config: ServerConfig) -> AuditLog | None:
    if not config.audit_log_path:
        return None
    return AuditLog(config.audit_log_path, config.audit_log_max_bytes, config.audit_log_backups)


def _lifespan(
    state: ServerState,
    authenticator: Authenticator | None,
    audit: AuditLog | None,
    proxy: NodeProxy,
    metrics: MetricsEndpoint | PeerMetricsServer | None = None,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Start the watch cache, compaction, token and audit work, and the agents' gRPC server."""
    config = state.config

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.cache.start()
        compaction = None
        if config.run_compactor:
            compactor = Compactor(state.etcd, config.clock, config.compaction_interval_seconds)
            compaction = asyncio.create_task(compactor.run(), name="compactor")
        if authenticator is not None:
            authenticator.start()
        if audit is not None:
            audit.start()
        agent_server = None
        try:
            await _bootstrap(state)
            if config.agent_port is not None:
                agent_server = await start_agent_server(
                    state.objects,
                    state.registry,
                    config.host,
                    config.agent_port,
                    state.plan,
                    security=config.security,
                    usage=state.usage,
                )
            if metrics is not None:
                await metrics.start()
            async with receiving(state.usage, config.usage_fd):
                yield
        finally:
            if metrics is not None:
                await metrics.stop()
            if agent_server is not None:
                await agent_server.stop(grace=1)
            await proxy.close()
            if compaction is not None:
                compaction.cancel()
            if authenticator is not None:
                await authenticator.stop()
            if audit is not None:
                await audit.close()
            await state.cache.stop()
            await state.etcd.close()

    return lifespan


def _resource_routes(
    state: ServerState, proxy: NodeProxy, token_issuer: TokenIssuer | None
) -> ResourceRoutes:
    config = state.config
    routes = ResourceRoutes(
        state.objects,
        state.registry,
        max_body_bytes=config.max_body_bytes,
        watch_settings=WatchSettings(
            min_timeout_seconds=config.watch_min_timeout_seconds,
            bookmark_interval_seconds=config.watch_bookmark_interval_seconds,
            max_watches_per_user=config.max_watches_per_user,
        ),
        proxy=proxy,
    )
    routes.subresources.token_issuer = token_issuer
    return routes


def _add_node_endpoints(
    app: FastAPI, config: ServerConfig, proxy: NodeProxy, signer: NodeCertificateSigner | None
) -> None:
    """Exec into a pod's container (proxied to its node), and nodes' certificate requests."""

    @app.websocket("/api/v1/namespaces/{namespace}/pods/{name}/exec")
    async def pod_exec(websocket: WebSocket, namespace: str, name: str) -> None:
        await proxy.exec(websocket, namespace, name)

    @app.websocket("/api/v1/namespaces/{namespace}/pods/{name}/portforward")
    async def pod_port_forward(websocket: WebSocket, namespace: str, name: str) -> None:
        await portforward.serve_port_forward(proxy, websocket, namespace, name)

    @app.post(nodecerts.PATH, include_in_schema=False)
    async def node_certificate(request: Request) -> Response:
        body = await http.read_body(request, config.max_body_bytes)
        return http.json_response(await nodecerts.handle(signer, body))


def _add_discovery(app: FastAPI, state: ServerState, registry: Registry) -> None:
    @app.get("/version", include_in_schema=False)
    async def version() -> Response:
        return http.json_response(discovery.version_info())

    @app.get("/api", include_in_schema=False)
    async def api(request: Request) -> Response:
        address = f"{request.url.hostname}:{request.url.port}"
        return http.json_response(discovery.api_versions(address))

    @app.get("/apis", include_in_schema=False)
    async def apis() -> Response:
        return http.json_response(discovery.api_group_list(registry))

    @app.get("/api/v1", include_in_schema=False)
    async def core_resources() -> Response:
        return http.json_response(discovery.api_resource_list(registry, "", "v1"))

    @app.get("/apis/{group}", include_in_schema=False)
    async def group(group: str) -> Response:
        found = discovery.api_group(registry, group)
        if found is None:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return http.json_response(found)

    @app.get("/apis/{group}/{version}", include_in_schema=False)
    async def group_resources(group: str, version: str) -> Response:
        found = discovery.api_resource_list(registry, group, version)
        if found is None:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return http.json_response(found)

    @app.get("/healthz", include_in_schema=False)
    @app.get("/livez", include_in_schema=False)
    async def healthz() -> Response:
        return Response("ok", media_type="text/plain")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if not state.cache.ready.is_set():
            return Response("watch cache not initialised", 503, media_type="text/plain")
        try:
            # One attempt: a master cut off from quorum says so at once, not
            # after the retries a write would get.
            await state.etcd.current_revision(once=True)
        except EtcdError as error:
            return Response(f"etcd: {error}", 503, media_type="text/plain")
        return Response("ok", media_type="text/plain")


def _add_docs(app: FastAPI, registry: Registry) -> None:
    combined = orjson.dumps(openapi.document(registry))

    @app.get("/openapi/v2", include_in_schema=False)
    async def openapi_v2() -> Response:
        # An empty protobuf document: kubectl's client-side schema check then
        # defers to the server, which validates every field itself (and is
        # told to, through fieldValidation=Strict).
        return Response(b"", media_type="application/octet-stream")

    @app.get("/openapi/v3", include_in_schema=False)
    async def openapi_v3() -> Response:
        return http.json_response(openapi.index(registry))

    @app.get("/openapi/v3/{path:path}", include_in_schema=False)
    async def openapi_v3_group(path: str) -> Response:
        body = openapi.group_document(registry, path)
        if body is None:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return Response(body, media_type="application/json")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> Response:
        return Response(combined, media_type="application/json")

    app.mount("/ui", ConsoleFiles(), name="console")
    app.mount(
        "/docs/static",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger-static",
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="corral API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        reason = {404: "NotFound", 405: "MethodNotAllowed"}.get(error.status_code, "BadRequest")
        message = (
            "the server could not find the requested resource"
            if error.status_code == 404
            else str(error.detail)
        )
        return http.status_response(errors.ApiError(error.status_code, reason, message))

    @app.exception_handler(Exception)
    async def any_error(request: Request, error: Exception) -> Response:
        return error_response(request, error)
