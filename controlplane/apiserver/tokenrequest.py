"""``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token``: Kubernetes' TokenRequest.

The answer is a bound service account token (serviceaccounttokens.py): a
JWT for the ServiceAccount, for the requested audiences (the API server's
own by default), expiring after ``expirationSeconds`` (at least ten
minutes, an hour by default, at most ``MAX_EXPIRATION_SECONDS``), and, with
``boundObjectRef``, bound to a Pod or Secret so that it dies with it.

Whoever may ``create`` ``serviceaccounts/token`` may ask (RBAC's ``edit``
includes it, as in Kubernetes). A node may ask only for tokens bound to a
pod it runs, which is Kubernetes' NodeRestriction rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from controlplane.apiserver import http, requestcontext
from controlplane.apiserver.authn import BoundTokens
from controlplane.apiserver.config import Security
from controlplane.apiserver.objects import Objects
from controlplane.auth.node import node_name
from controlplane.auth.serviceaccounttokens import (
    DEFAULT_EXPIRATION_SECONDS,
    MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS,
    KeyFileError,
    PublicKey,
    TokenSigner,
    TokenVerifier,
    load_public_keys,
    load_signing_key,
    new_claims,
    pod_service_account,
)
from controlplane.registry.strategy import SecretStrategy
from controlplane.storage.store import Stored
from corral.api import errors
from corral.api.authentication import API_VERSION, TokenRequest
from corral.api.decode import decode
from corral.api.errors import ApiError, Cause
from corral.api.resources import ResourceType
from corral.clock import rfc3339
from corral.objects import meta, spec

# A TokenRequest is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
# Kubernetes' validation bound on expirationSeconds, before clamping.
_LARGEST_REQUEST = 1 << 32
# How long the answer waits for the watch cache to hold what the token names,
# so the token authenticates on this server the moment the client has it.
_CACHE_WAIT_SECONDS = 5.0
_KIND = "TokenRequest"
_GROUP = "authentication.k8s.io"


@dataclass(frozen=True)
class TokenIssuer:
    """What the API server issues tokens with: ``--service-account-*`` flags."""

    signer: TokenSigner
    issuer: str
    audiences: tuple[str, ...]
    max_expiration_seconds: int = MAX_EXPIRATION_SECONDS


def service_account_tokens(
    objects: Objects, security: Security
) -> tuple[TokenIssuer | None, BoundTokens | None]:
    """What the ``--service-account-*`` flags make: an issuer (with a signing key)
    and a verifier (with any key); also whether Secrets still mint legacy tokens.

    Raises SystemExit naming the flag when a key file cannot be used.
    """
    strategy = objects.strategy(_rt(objects, "Secret"))
    if isinstance(strategy, SecretStrategy):
        strategy.fill_legacy_tokens = security.legacy_service_account_token_secrets
    try:
        signing = (
            load_signing_key(Path(security.service_account_signing_key_file))
            if security.service_account_signing_key_file
            else None
        )
        public: list[PublicKey] = [signing.public_key()] if signing is not None else []
        for path in security.service_account_key_files:
            public.extend(load_public_keys(Path(path)))
    except KeyFileError as error:
        raise SystemExit(f"service account keys: {error}") from None
    issuers = security.service_account_issuers
    audiences = security.api_audiences or issuers
    bound = (
        BoundTokens(TokenVerifier(public, issuers, audiences), _cached(objects), objects.clock)
        if public
        else None
    )
    issuer = TokenIssuer(TokenSigner(signing), issuers[0], audiences) if signing else None
    return issuer, bound


def _cached(objects: Objects) -> Any:
    def lookup(resource: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        rt = objects.registry.by_plural("", "v1", resource)
        if rt is None:
            return None
        found = objects.get_cached(rt, namespace, name)
        return found.obj if found is not None else None

    return lookup


def _not_configured() -> ApiError:
    return ApiError(
        404,
        "NotFound",
        "this API server issues no service account tokens: start it with "
        "--service-account-signing-key-file (corral up and corral init create sa.key)",
    )


def _invalid(name: str, field: str, message: str) -> ApiError:
    return errors.invalid(_KIND, name, [Cause("FieldValueInvalid", message, field)], _GROUP)


def _rt(objects: Objects, kind: str) -> ResourceType:
    rt = objects.registry.by_kind("v1", kind)
    if rt is None:
        raise errors.internal(f"the registry does not serve v1 {kind}")
    return rt


def expiration_of(request: TokenRequest, name: str, longest: int) -> int:
    """The requested lifetime, checked as Kubernetes does and clamped to the server's maximum."""
    seconds = request.spec.expiration_seconds
    if seconds is None:
        return min(DEFAULT_EXPIRATION_SECONDS, longest)
    if seconds < MIN_EXPIRATION_SECONDS:
        raise _invalid(
            name, "spec.expirationSeconds", "may not specify a duration less than 10 minutes"
        )
    if seconds > _LARGEST_REQUEST:
        raise _invalid(
            name, "spec.expirationSeconds", "may not specify a duration larger than 2^32 seconds"
        )
    return min(seconds, longest)


async def serve_token_request(
    request: Request, objects: Objects, issuer: TokenIssuer | None, namespace: str, name: str
) -> Response:
    if issuer is None:
        raise _not_configured()
    body = await http.read_body(request, MAX_BODY_BYTES)
    document = http.parse_document(body, http.media_type(request))
    token_request = decode(None, document, "Strict", model=TokenRequest).model
    assert isinstance(token_request, TokenRequest)
    meta = token_request.metadata
    if meta.name and meta.name != name:
        raise _invalid(name, "metadata.name", "must match the service account name if specified")
    if meta.namespace and meta.namespace != namespace:
        raise _invalid(
            name, "metadata.namespace", "must match the service account namespace if specified"
        )
    expiration = expiration_of(token_request, name, issuer.max_expiration_seconds)
    audiences = list(token_request.spec.audiences or issuer.audiences)

    account = await objects.get(_rt(objects, "ServiceAccount"), namespace, name)
    read: list[Stored] = [account]
    pod, secret, node, node_ref_name = await _bound_object(objects, token_request, namespace, name)
    for stored in (pod, secret, node):
        if stored is not None:
            read.append(stored)
    _node_restriction(token_request, pod)

    now = objects.clock.now()
    claims = new_claims(
        issuer=issuer.issuer,
        audiences=audiences,
        service_account=account.obj,
        now=now,
        expiration_seconds=expiration,
        pod=pod.obj if pod is not None else None,
        secret=secret.obj if secret is not None else None,
        node=node.obj if node is not None else None,
        node_name=node_ref_name,
    )
    token = issuer.signer.sign(claims)
    await objects.cache.wait_for(max(s.revision for s in read), _CACHE_WAIT_SECONDS)
    spec = token_request.spec.to_dict()
    spec.update({"audiences": audiences, "expirationSeconds": expiration})
    answer = {
        "kind": _KIND,
        "apiVersion": API_VERSION,
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rfc3339(now)},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339_at(claims.expires_at)},
    }
    return http.json_response(answer, 201)


def rfc3339_at(seconds: int) -> str:
    return rfc3339(datetime.fromtimestamp(seconds, UTC))


async def _bound_object(
    objects: Objects, token_request: TokenRequest, namespace: str, name: str
) -> tuple[Stored | None, Stored | None, Stored | None, str]:
    """The Pod or Secret the token is bound to, the Pod's Node, and the Node's name."""
    ref = token_request.spec.bound_object_ref
    if ref is None:
        return None, None, None, ""
    if ref.api_version not in (None, "", "v1") or ref.kind not in ("Pod", "Secret"):
        raise errors.bad_request(
            f"cannot bind token to object of type {ref.api_version or 'v1'}, "
            f"Kind={ref.kind or ''}: only v1 Pod and Secret"
        )
    if not ref.name:
        raise _invalid(name, "spec.boundObjectRef.name", "Required value")
    bound = await objects.get(_rt(objects, ref.kind), namespace, ref.name)
    uid = meta(bound.obj).get("uid")
    if ref.uid and ref.uid != uid:
        raise errors.conflict(
            ref.kind,
            ref.name,
            f"the UID in the bound object reference ({ref.uid}) does not match the UID in "
            "record. The object might have been deleted and then recreated",
        )
    if ref.kind == "Secret":
        return None, bound, None, ""
    if pod_service_account(bound.obj) != name:
        raise errors.bad_request(
            f'cannot bind token for serviceaccount "{name}" to pod running with different '
            "serviceaccount name."
        )
    node_ref_name = str(spec(bound.obj).get("nodeName") or "")
    node: Stored | None = None
    if node_ref_name:
        try:
            node = await objects.get(_rt(objects, "Node"), None, node_ref_name)
        except ApiError as error:
            if error.code != 404:
                raise
    return bound, None, node, node_ref_name


def _node_restriction(token_request: TokenRequest, pod: Stored | None) -> None:
    """A node may mint tokens only for pods it runs, each bound to that pod."""
    attrs = requestcontext.current()
    node = node_name(attrs.user) if attrs is not None else None
    if node is None:
        return
    ref = token_request.spec.bound_object_ref
    if pod is None or ref is None:
        raise errors.forbidden(
            f'node "{node}" may only request tokens bound to a pod', "serviceaccounts"
        )
    if not ref.uid:
        raise errors.forbidden(
            f'node "{node}" requested a token with a pod binding without a uid', "serviceaccounts"
        )
    if spec(pod.obj).get("nodeName") != node:
        raise errors.forbidden(
            f'node "{node}" requested a token bound to a pod scheduled on a different node',
            "serviceaccounts",
        )
