"""Resource paths: parse ``/api/v1/namespaces/ns/pods/name/status`` and serve it.

One catch-all route per API root keeps routing to a split and two dict
lookups, however many kinds there are; the documented, per-resource paths
live in the OpenAPI documents instead (see openapi.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from controlplane.apiserver import applying, http, params, requestcontext
from controlplane.apiserver.customtables import custom_printer
from controlplane.apiserver.lists import list_objects, make_predicate
from controlplane.apiserver.nodeproxy import NodeProxy
from controlplane.apiserver.objects import Objects, WriteResult
from controlplane.apiserver.params import DeleteParams, ListOptions
from controlplane.apiserver.partial import partial_list, partial_object
from controlplane.apiserver.patching import (
    apply_patch,
    parse_patch,
    patch_precondition,
    refuse_strategic_merge,
)
from controlplane.apiserver.subresources import Subresources
from controlplane.apiserver.tables import table
from controlplane.apiserver.watches import (
    Encoder,
    WatchQuota,
    WatchResponse,
    WatchSettings,
    prepare_watch,
)
from controlplane.query import request_query
from controlplane.storage.store import Stored
from corral.api import errors
from corral.api.decode import decode
from corral.api.meta import DeleteOptions
from corral.api.resources import Registry, ResourceType
from corral.objects import Obj


@dataclass(frozen=True, slots=True)
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def _not_found_path() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource")


def parse_target(registry: Registry, group: str, version: str, rest: list[str]) -> Target:
    """Resolve the path segments after the group/version."""
    if rest and rest[-1] == "":
        rest = rest[:-1]
    if not rest:
        raise _not_found_path()
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = registry.by_plural(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = registry.by_plural(group, version, rest[0])
    if rt is None:
        raise _not_found_path()
    if len(rest) > 3:
        raise _not_found_path()
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    if subresource is not None and not rt.has(subresource):
        raise _not_found_path()
    if rt.namespaced and name is not None and namespace is None:
        raise _not_found_path()
    if not rt.namespaced and namespace is not None:
        raise _not_found_path()
    if name == "":
        raise _not_found_path()
    return Target(rt, namespace, name, subresource)


class ResourceRoutes:
    def __init__(
        self,
        objects: Objects,
        registry: Registry,
        *,
        max_body_bytes: int,
        watch_settings: WatchSettings,
        proxy: NodeProxy,
    ) -> None:
        self.objects = objects
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.watch_settings = watch_settings
        self.watch_quota = WatchQuota(watch_settings.max_watches_per_user)
        self.subresources = Subresources(objects, max_body_bytes, proxy)

    async def serve(self, request: Request, target: Target) -> Response:
        method = request.method
        if target.subresource is not None:
            return await self.subresources.serve(
                request, target.rt, target.namespace, target.name or "", target.subresource
            )
        if target.name is None:
            if method == "GET":
                return await self.list_or_watch(request, target)
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE":
                return await self.delete_collection(request, target)
        else:
            if method == "GET":
                return await self.get(request, target)
            if method == "PUT":
                return await self.update(request, target)
            if method == "PATCH":
                return await self.patch(request, target)
            if method == "DELETE":
                return await self.delete(request, target)
        raise errors.method_not_allowed(
            f"the server does not allow this method on the requested resource ({method})"
        )

    # --- verbs -------------------------------------------------------------------------

    async def _document(self, request: Request) -> Any:
        body = await http.read_body(request, self.max_body_bytes)
        return await http.decode_document(body, http.media_type(request), self.max_body_bytes)

    def _respond(
        self, request: Request, target: Target, result: WriteResult, ok: int = 200
    ) -> Response:
        return http.json_response(
            target.rt.served(result.obj),
            201 if result.created else ok,
            list(result.warnings),
            yaml_out=http.wants_yaml(request),
        )

    async def create(self, request: Request, target: Target) -> Response:
        if target.rt.namespaced and target.namespace is None:
            raise errors.method_not_allowed(
                f"POST is not supported on {target.rt.plural} across all namespaces"
            )
        body = await self._document(request)
        tracker = self._tracker(request, target)
        body = tracker.record_body(body)
        result = await self.objects.create(
            target.rt,
            target.namespace,
            body,
            field_validation=params.field_validation(request_query(request.scope)),
            dry_run=params.dry_run(request_query(request.scope)),
        )
        return self._respond(request, target, result)

    async def get(self, request: Request, target: Target) -> Response:
        assert target.name is not None
        stored: Stored | None = None
        if request_query(request.scope).get("resourceVersion") == "0":
            stored = self.objects.get_cached(target.rt, target.namespace, target.name)
        if stored is None:
            stored = await self.objects.get(target.rt, target.namespace, target.name)
        output = http.negotiated(request)
        if output.partial:
            body = partial_object(target.rt, stored.obj, output)
            return http.json_response(body, yaml_out=output.yaml)
        if http.wants_table(request):
            include = request_query(request.scope).text("includeObject") or "Metadata"
            body = table(
                target.rt.kind,
                [stored.obj],
                self.objects.clock.now(),
                include_object=include,
                printer=custom_printer(target.rt),
            )
            return http.json_response(body)
        return http.json_response(target.rt.served(stored.obj), yaml_out=http.wants_yaml(request))

    async def list_or_watch(self, request: Request, target: Target) -> Response:
        options = ListOptions.parse(request_query(request.scope))
        if options.watch:
            return await self.watch(request, target, options)
        result = await list_objects(self.objects, target.rt, target.namespace, options)
        output = http.negotiated(request)
        if output.partial:
            body = partial_list(target.rt, result, output)
            return http.json_response(body, yaml_out=output.yaml)
        if http.wants_table(request):
            body = table(
                target.rt.kind,
                result.items,
                self.objects.clock.now(),
                resource_version=str(result.revision),
                continue_token=result.continue_token,
                include_object=options.include_object,
                printer=custom_printer(target.rt),
            )
            return http.json_response(body)
        if http.wants_yaml(request):
            return http.json_response(result.body(target.rt), yaml_out=True)
        return Response(result.body(target.rt), media_type=http.JSON)

    async def watch(self, request: Request, target: Target, options: ListOptions) -> Response:
        predicate = make_predicate(self.objects, target.rt, options)
        encoder = Encoder(
            target.rt,
            http.wants_table(request),
            options.include_object,
            self.objects.clock.now,
            http.negotiated(request),
        )
        requester = requestcontext.current()
        release = (
            self.watch_quota.acquire(requester.user.name) if requester is not None else _nothing
        )
        try:
            stream = await prepare_watch(
                self.objects,
                target.rt,
                target.namespace,
                options,
                predicate,
                encoder,
                self.watch_settings,
            )
        except BaseException:
            release()
            raise
        return WatchResponse(stream, release)

    async def update(self, request: Request, target: Target) -> Response:
        assert target.name is not None
        body = await self._document(request)
        tracker = self._tracker(request, target)
        result = await self.objects.update(
            target.rt,
            target.namespace,
            target.name,
            body,
            field_validation=params.field_validation(request_query(request.scope)),
            dry_run=params.dry_run(request_query(request.scope)),
            track=tracker.record,
        )
        return self._respond(request, target, result)

    async def patch(self, request: Request, target: Target) -> Response:
        assert target.name is not None
        rt = target.rt
        content_type = http.media_type(request)
        refuse_strategic_merge(rt, content_type)
        if content_type == applying.APPLY_PATCH:
            return await self.apply(request, target)
        applying.force_of(request_query(request.scope), apply=False)
        tracker = self._tracker(request, target)
        body = await http.read_body(request, self.max_body_bytes)
        patch = parse_patch(body, content_type)
        precondition = patch_precondition(patch, content_type)
        mode = params.field_validation(request_query(request.scope))
        warnings: list[str] = []
        patched_from: list[Obj] = []  # the object the last attempt patched

        def mutate(current: Stored) -> Obj:
            if precondition and precondition != str(current.revision):
                raise errors.conflict(rt.plural, target.name or "", errors.STALE_OBJECT, rt.group)
            patched_from[:] = [current.obj]
            return apply_patch(current.obj, patch, content_type, rt.model)

        def revalidate(obj: Obj) -> Obj:
            decoded = decode(rt, obj, mode)
            warnings[:] = decoded.warnings
            return tracker.record(patched_from[0], decoded.data)

        result = await self.objects.guaranteed_update(
            rt,
            target.namespace,
            target.name,
            mutate,
            dry_run=params.dry_run(request_query(request.scope)),
            warnings=warnings,
            revalidate=revalidate,
        )
        return self._respond(request, target, result)

    def _tracker(self, request: Request, target: Target) -> applying.Tracker:
        return applying.tracker_for(
            self.objects,
            target.rt,
            request_query(request.scope),
            request.headers.get("user-agent", ""),
        )

    async def apply(self, request: Request, target: Target) -> Response:
        """Server-side apply (PATCH with application/apply-patch+yaml)."""
        assert target.name is not None
        query = request_query(request.scope)
        apply_request = applying.ApplyRequest(
            rt=target.rt,
            namespace=target.namespace,
            name=target.name,
            manager=applying.manager_of(query, "", apply=True),
            force=applying.force_of(query, apply=True),
            field_validation=params.field_validation(query),
            dry_run=params.dry_run(query),
        )
        body = await http.read_body(request, self.max_body_bytes)
        result = await applying.serve_apply(self.objects, apply_request, body, self.max_body_bytes)
        return self._respond(request, target, result)

    async def _delete_options(self, request: Request) -> tuple[DeleteParams, DeleteOptions]:
        query = DeleteParams.parse(request_query(request.scope))
        body = await http.read_body(request, self.max_body_bytes)
        options = DeleteOptions()
        if body.strip():
            document = await http.decode_document(
                body, http.media_type(request), self.max_body_bytes
            )
            if isinstance(document, dict):
                document = {k: v for k, v in document.items() if k not in ("kind", "apiVersion")}
            decoded = decode(None, document, "Strict", model=DeleteOptions)
            options = decoded.model  # type: ignore[assignment]
        return query, options

    async def delete(self, request: Request, target: Target) -> Response:
        assert target.name is not None
        query, options = await self._delete_options(request)
        preconditions = options.preconditions
        result = await self.objects.delete(
            target.rt,
            target.namespace,
            target.name,
            grace_period_seconds=(
                options.grace_period_seconds
                if options.grace_period_seconds is not None
                else query.grace_period_seconds
            ),
            propagation_policy=_policy(options, query),
            precondition_uid=preconditions.uid if preconditions else None,
            precondition_revision=preconditions.resource_version if preconditions else None,
            dry_run=query.dry_run or bool(options.dry_run),
        )
        return self._respond(request, target, result)

    async def delete_collection(self, request: Request, target: Target) -> Response:
        list_options = ListOptions.parse(request_query(request.scope))
        query, options = await self._delete_options(request)
        listed = await list_objects(self.objects, target.rt, target.namespace, list_options)
        deleted: list[Obj] = []
        for obj in listed.items:
            metadata = obj.get("metadata", {})
            try:
                result = await self.objects.delete(
                    target.rt,
                    metadata.get("namespace"),
                    metadata["name"],
                    grace_period_seconds=(
                        options.grace_period_seconds
                        if options.grace_period_seconds is not None
                        else query.grace_period_seconds
                    ),
                    propagation_policy=_policy(options, query),
                    dry_run=query.dry_run or bool(options.dry_run),
                )
            except errors.ApiError as error:
                if error.code == 404:
                    continue
                raise
            deleted.append(target.rt.served(result.obj))
        body = {
            "kind": target.rt.list_kind,
            "apiVersion": target.rt.api_version,
            "metadata": {"resourceVersion": str(listed.revision)},
            "items": deleted,
        }
        return http.json_response(body)


def _nothing() -> None:
    """Nothing to give back: a request that passed no Gate has no user to count against."""


def _policy(options: DeleteOptions, query: DeleteParams) -> str | None:
    if options.propagation_policy is not None:
        return options.propagation_policy
    if options.orphan_dependents is not None:
        return "Orphan" if options.orphan_dependents else "Background"
    return query.propagation_policy
