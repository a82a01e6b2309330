"""Subresources: ``status``, ``scale``, ``binding`` and a namespace's ``finalize``."""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from controlplane.apiserver import applying, http, params
from controlplane.apiserver.eviction import serve_eviction
from controlplane.apiserver.nodeproxy import NodeProxy
from controlplane.apiserver.objects import Objects
from controlplane.apiserver.patching import (
    apply_patch,
    parse_patch,
    patch_precondition,
    refuse_strategic_merge,
)
from controlplane.apiserver.tokenrequest import TokenIssuer, serve_token_request
from controlplane.query import request_query
from controlplane.storage.store import Stored
from corral.api import errors
from corral.api.autoscaling import Scale
from corral.api.core import Binding, Namespace
from corral.api.crd import get_field, set_field
from corral.api.decode import decode
from corral.api.labels import selector_from_dict
from corral.api.resources import ResourceType
from corral.clock import rfc3339
from corral.objects import Obj


def _custom_scale(rt: ResourceType, obj: Obj) -> tuple[int, int, str]:
    """Desired and current replicas, and the selector, where the CRD's scale paths point."""
    custom = rt.custom
    assert custom is not None
    desired = get_field(obj, custom.spec_replicas_path)
    current = get_field(obj, custom.status_replicas_path)
    selector = get_field(obj, custom.label_selector_path) if custom.label_selector_path else ""
    return (
        desired if isinstance(desired, int) else 0,
        current if isinstance(current, int) else 0,
        selector if isinstance(selector, str) else "",
    )


def scale_of(rt: ResourceType, obj: Obj) -> Obj:
    metadata = obj.get("metadata", {})
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if rt.kind == "ReplicationController":
        selector_text = ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
    else:
        selector_text = str(selector_from_dict(selector)) if selector else ""
    desired = int(spec.get("replicas", 1))
    current = int((obj.get("status") or {}).get("replicas") or 0)
    if rt.custom is not None:
        desired, current, selector_text = _custom_scale(rt, obj)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": {"replicas": desired},
        "status": {"replicas": current, "selector": selector_text},
    }


class Subresources:
    def __init__(self, objects: Objects, max_body_bytes: int, proxy: NodeProxy) -> None:
        self.objects = objects
        self.max_body_bytes = max_body_bytes
        self.proxy = proxy
        # Set by the app when it has a service account signing key.
        self.token_issuer: TokenIssuer | None = None

    async def serve(
        self,
        request: Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        subresource: str,
    ) -> Response:
        method = request.method
        if subresource == "status" and method in ("GET", "PUT", "PATCH"):
            return await self._status(request, rt, namespace, name)
        if subresource == "scale" and method in ("GET", "PUT", "PATCH"):
            return await self._scale(request, rt, namespace, name)
        if subresource == "binding" and method == "POST":
            return await self._binding(request, rt, namespace, name)
        if subresource == "finalize" and method == "PUT":
            return await self._finalize(request, rt, name)
        if subresource == "eviction" and method == "POST":
            return await serve_eviction(request, self.objects, namespace or "", name)
        if subresource == "token" and method == "POST":
            return await serve_token_request(
                request, self.objects, self.token_issuer, namespace or "", name
            )
        if subresource == "log" and method == "GET":
            return await self.proxy.logs(request, namespace or "", name)
        if subresource in ("exec", "portforward"):
            raise errors.bad_request(
                f"{subresource} is served over WebSocket (exec: v5.channel.k8s.io, "
                "v4.channel.k8s.io and older; portforward: SPDY/3.1+portforward.k8s.io "
                "or v4.channel.k8s.io); a plain SPDY upgrade is not supported"
            )
        raise errors.method_not_allowed(
            f"the server does not allow this method on the requested resource ({method} "
            f"{rt.plural}/{subresource})"
        )

    async def _body(self, request: Request) -> bytes:
        return await http.read_body(request, self.max_body_bytes)

    async def _document(self, request: Request) -> Any:
        body = await self._body(request)
        return await http.decode_document(body, http.media_type(request), self.max_body_bytes)

    async def _status(
        self, request: Request, rt: ResourceType, namespace: str | None, name: str
    ) -> Response:
        if request.method == "GET":
            stored = await self.objects.get(rt, namespace, name)
            return http.json_response(rt.served(stored.obj))
        tracker = applying.tracker_for(
            self.objects,
            rt,
            request_query(request.scope),
            request.headers.get("user-agent", ""),
            "status",
        )
        if request.method == "PUT":
            document = await self._document(request)
            result = await self.objects.update(
                rt,
                namespace,
                name,
                document,
                subresource="status",
                field_validation=params.field_validation(request_query(request.scope)),
                dry_run=params.dry_run(request_query(request.scope)),
                track=tracker.record,
            )
            return http.json_response(rt.served(result.obj), warnings=list(result.warnings))
        content_type = http.media_type(request)
        refuse_strategic_merge(rt, content_type)
        patch = parse_patch(await self._body(request), content_type)
        precondition = patch_precondition(patch, content_type)
        mode = params.field_validation(request_query(request.scope))

        def mutate(current: Stored) -> Obj:
            if precondition and precondition != str(current.revision):
                raise errors.conflict(rt.plural, name, errors.STALE_OBJECT, rt.group)
            patched = apply_patch(current.obj, patch, content_type, rt.model)
            return tracker.record(current.obj, patched)

        def revalidate(obj: Obj) -> Obj:
            return decode(rt, obj, mode).data

        result = await self.objects.guaranteed_update(
            rt,
            namespace,
            name,
            mutate,
            subresource="status",
            revalidate=revalidate,
            dry_run=params.dry_run(request_query(request.scope)),
        )
        return http.json_response(rt.served(result.obj))

    async def _scale(
        self, request: Request, rt: ResourceType, namespace: str | None, name: str
    ) -> Response:
        if request.method == "GET":
            stored = await self.objects.get(rt, namespace, name)
            return http.json_response(scale_of(rt, stored.obj))
        tracker = applying.tracker_for(
            self.objects,
            rt,
            request_query(request.scope),
            request.headers.get("user-agent", ""),
            "scale",
        )
        body = await self._body(request)
        if request.method == "PUT":
            # kubectl sends this PUT without a Content-Type; JSON is the default.
            document = await http.decode_document(
                body, http.media_type(request), self.max_body_bytes
            )
            scale = decode(None, document, "Strict", model=Scale).model
            assert isinstance(scale, Scale)
            precondition = scale.metadata.resource_version or ""

            def desired(current: Stored) -> int:
                if precondition and precondition != str(current.revision):
                    raise errors.conflict(rt.plural, name, errors.STALE_OBJECT, rt.group)
                return scale.spec.replicas if scale.spec.replicas is not None else 0
        else:
            content_type = http.media_type(request)
            patch = parse_patch(body, content_type)
            patch_rv = patch_precondition(patch, content_type)

            def desired(current: Stored) -> int:
                if patch_rv and patch_rv != str(current.revision):
                    raise errors.conflict(rt.plural, name, errors.STALE_OBJECT, rt.group)
                patched = apply_patch(scale_of(rt, current.obj), patch, content_type, Scale)
                model = decode(None, patched, "Strict", model=Scale).model
                assert isinstance(model, Scale)
                return model.spec.replicas if model.spec.replicas is not None else 0

        def mutate(current: Stored) -> Obj:
            replicas = desired(current)
            new = copy.deepcopy(current.obj)
            if rt.custom is not None:
                set_field(new, rt.custom.spec_replicas_path, replicas)
            else:
                new.setdefault("spec", {})["replicas"] = replicas
            return tracker.record(current.obj, new)

        result = await self.objects.guaranteed_update(
            rt,
            namespace,
            name,
            mutate,
            subresource="scale",
            dry_run=params.dry_run(request_query(request.scope)),
        )
        return http.json_response(scale_of(rt, result.obj))

    async def _binding(
        self, request: Request, rt: ResourceType, namespace: str | None, name: str
    ) -> Response:
        document = await self._document(request)
        binding = decode(None, document, "Strict", model=Binding).model
        assert isinstance(binding, Binding)
        if binding.metadata.name and binding.metadata.name != name:
            raise errors.bad_request(
                f"the name of the binding ({binding.metadata.name}) does not match the pod ({name})"
            )
        target = binding.target
        if target.kind not in (None, "", "Node") or not target.name:
            raise errors.invalid(
                "Binding",
                name,
                [errors.Cause("FieldValueInvalid", "must name a Node", "target")],
            )
        node = target.name
        now = rfc3339(self.objects.clock.now())

        def mutate(current: Stored) -> Obj:
            pod = current.obj
            metadata = pod.get("metadata", {})
            if binding.metadata.uid and binding.metadata.uid != metadata.get("uid"):
                raise errors.conflict(rt.plural, name, "the pod's UID changed", rt.group)
            if metadata.get("deletionTimestamp"):
                raise errors.conflict(rt.plural, name, "the pod is being deleted", rt.group)
            bound = (pod.get("spec") or {}).get("nodeName")
            if bound:
                raise errors.conflict(
                    rt.plural,
                    name,
                    f'pod {name} is already assigned to node "{bound}"',
                    rt.group,
                )
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = node
            status = new.setdefault("status", {})
            conditions = [
                c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
            ]
            conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now})
            status["conditions"] = conditions
            return new

        await self.objects.guaranteed_update(
            rt,
            namespace,
            name,
            mutate,
            subresource="binding",
            from_cache=False,
            dry_run=params.dry_run(request_query(request.scope)),
        )
        return http.json_response(http.success_status(code=201), 201)

    async def _finalize(self, request: Request, rt: ResourceType, name: str) -> Response:
        document = await self._document(request)
        namespace = decode(rt, document, "Strict", model=Namespace).model
        assert isinstance(namespace, Namespace)
        finalizers = list(namespace.spec.finalizers or []) if namespace.spec else []

        def mutate(current: Stored) -> Obj:
            new = copy.deepcopy(current.obj)
            new.setdefault("spec", {})["finalizers"] = finalizers
            if not finalizers:
                new["spec"].pop("finalizers")
            return new

        result = await self.objects.guaranteed_update(
            rt, None, name, mutate, subresource="finalize", from_cache=False
        )
        return http.json_response(result.obj)
