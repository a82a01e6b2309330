"""Who is asking: client certificates, bearer tokens, or nobody.

The order and the names are Kubernetes': a verified client certificate
names the user (CN) and groups (O); a bearer token is looked up in the
static token file, then among bootstrap tokens (``kube-system`` Secrets
named ``bootstrap-token-<id>``), then verified as a bound service account
token (a JWT from the TokenRequest API, see auth/serviceaccounttokens.py)
and, only with ``--legacy-service-account-token-secrets``, looked up among
service account token Secrets. A token that matches nothing is a 401 even
if a certificate came with it: a client that sends a bad credential should
hear so, not fall back silently.

Secrets are compared with ``hmac.compare_digest``; static and legacy tokens
are found by their SHA-256, so no lookup's timing depends on how much of a
guessed token was right.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import csv
import datetime
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.apiserver.tlsserving import client_subject
from controlplane.auth.serviceaccounttokens import (
    EXTRA_CREDENTIAL_ID,
    EXTRA_NODE_NAME,
    EXTRA_NODE_UID,
    EXTRA_POD_NAME,
    EXTRA_POD_UID,
    SERVICE_ACCOUNTS_GROUP,
    InvalidToken,
    ObjectLookup,
    TokenClaims,
    TokenVerifier,
    check_bound_objects,
    looks_like_jwt,
)
from controlplane.storage.watchcache import CachedObject, CacheEvent, Terminated, WatchCache
from corral.api.errors import ApiError
from corral.clock import Clock

log = logging.getLogger(__name__)

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"
BOOTSTRAPPERS = "system:bootstrappers"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
BOOTSTRAP_TOKEN = "bootstrap.kubernetes.io/token"
_BOOTSTRAP_FORMAT = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_SA_NAME = "kubernetes.io/service-account.name"


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS_USER


ANONYMOUS = UserInfo(ANONYMOUS_USER, (UNAUTHENTICATED,))
# The identity of requests on the development-only plain HTTP port, which
# (like Kubernetes' old insecure port) has no authentication at all.
INSECURE_ADMIN = UserInfo("system:admin", ("system:masters", AUTHENTICATED))


class TokenFileError(Exception):
    pass


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """token -> user, found by the token's hash and confirmed in constant time.

    A dict keyed by the token itself would compare the guess with a stored
    token character by character whenever their hashes collide in the table.
    """

    def __init__(self, tokens: Mapping[str, UserInfo] | None = None) -> None:
        self._by_digest: dict[bytes, tuple[str, UserInfo]] = {}
        for token, user in (tokens or {}).items():
            self.put(token, user)

    def put(self, token: str, user: UserInfo) -> None:
        self._by_digest[_digest(token)] = (token, user)

    def remove(self, token: str) -> None:
        self._by_digest.pop(_digest(token), None)

    def clear(self) -> None:
        self._by_digest.clear()

    def lookup(self, token: str) -> UserInfo | None:
        found = self._by_digest.get(_digest(token))
        if found is None or not hmac.compare_digest(found[0].encode(), token.encode()):
            return None
        return found[1]


def load_token_file(path: Path) -> dict[str, UserInfo]:
    """``token,user,uid,"group1,group2"`` per line, as ``--token-auth-file`` in Kubernetes."""
    tokens: dict[str, UserInfo] = {}
    try:
        text = path.read_text()
    except OSError as error:
        raise TokenFileError(f"cannot read token file {path}: {error.strerror}") from None
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 3 or not row[0] or not row[1]:
            raise TokenFileError(f"{path}:{number}: expected token,user,uid[,groups]")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        if row[0] in tokens:
            raise TokenFileError(f"{path}:{number}: the same token appears twice")
        tokens[row[0]] = UserInfo(row[1], groups, row[2])
    return tokens


def _decoded(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""  # not base64 text: read as absent, so it authenticates no one


def _service_account_user(secret: Mapping[str, Any]) -> UserInfo | None:
    meta = secret.get("metadata") or {}
    account = (meta.get("annotations") or {}).get(_SA_NAME)
    namespace = meta.get("namespace") or ""
    if not account:
        return None
    return UserInfo(
        f"system:serviceaccount:{namespace}:{account}",
        (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
        str(meta.get("uid") or ""),
    )


def bound_token_user(claims: TokenClaims) -> UserInfo:
    """The user a verified bound token names, with Kubernetes' ``extra`` keys."""
    extra: dict[str, tuple[str, ...]] = {}
    if claims.pod is not None:
        extra[EXTRA_POD_NAME] = (claims.pod.name,)
        extra[EXTRA_POD_UID] = (claims.pod.uid,)
    if claims.node is not None:
        extra[EXTRA_NODE_NAME] = (claims.node.name,)
        if claims.node.uid:
            extra[EXTRA_NODE_UID] = (claims.node.uid,)
    if claims.jti:
        extra[EXTRA_CREDENTIAL_ID] = (f"JTI={claims.jti}",)
    return UserInfo(
        claims.subject,
        (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{claims.namespace}"),
        claims.service_account.uid,
        extra,
    )


class BoundTokens:
    """Bound service account tokens: verified, then checked against what they name.

    ``lookup`` reads the watch cache, so a deleted or re-created
    ServiceAccount, Pod or Secret stops its tokens as soon as the cache sees it.
    """

    def __init__(self, verifier: TokenVerifier, lookup: ObjectLookup, clock: Clock) -> None:
        self.verifier = verifier
        self.lookup = lookup
        self.clock = clock

    def user(self, token: str) -> UserInfo | None:
        now = self.clock.now()
        try:
            claims = self.verifier.verify(token, now)
            check_bound_objects(claims, self.lookup, now)
        except InvalidToken as refusal:
            log.debug("service account token refused: %s", refusal)
            return None
        return bound_token_user(claims)


class ServiceAccountTokens:
    """Legacy Secret tokens: token -> user, following the watch cache's Secrets.

    Only with ``--legacy-service-account-token-secrets``: otherwise anyone who
    may create a Secret could mint a token for any ServiceAccount.
    """

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._table = TokenTable()
        self._token_of: dict[str, str] = {}
        self.synced = asyncio.Event()

    def lookup(self, token: str) -> UserInfo | None:
        return self._table.lookup(token)

    def _apply(self, event: CacheEvent) -> None:
        key = event.obj.key
        old = self._token_of.pop(key, None)
        if old is not None:
            self._table.remove(old)
        if event.type == "DELETED":
            return
        secret = event.obj.obj
        token = _decoded(secret.get("data") or {}, "token")
        user = _service_account_user(secret)
        if token and user is not None:
            self._table.put(token, user)
            self._token_of[key] = token

    async def run(self) -> None:
        """Follow Secrets until cancelled, starting over whenever the subscription is cut."""
        await self.cache.ready.wait()
        while True:
            self._table.clear()
            self._token_of.clear()
            watcher, replay = self.cache.watch("secrets", None, _is_service_account_token, None)
            try:
                for event in replay:
                    self._apply(event)
                self.synced.set()
                while True:
                    item = await watcher.queue.get()
                    if isinstance(item, Terminated):
                        log.info("service account token index restarting: %s", item)
                        break
                    self._apply(item)
            finally:
                self.cache.unwatch(watcher)


def _is_service_account_token(cached: CachedObject) -> bool:
    return cached.obj.get("type") == SERVICE_ACCOUNT_TOKEN


SecretLookup = Callable[[str, str], Mapping[str, Any] | None]


class Authenticator:
    def __init__(
        self,
        cache: WatchCache,
        secret: SecretLookup,
        clock: Clock,
        static_tokens: Mapping[str, UserInfo] | None = None,
        *,
        bound_tokens: BoundTokens | None = None,
        legacy_secret_tokens: bool = False,
    ) -> None:
        self.secret = secret
        self.clock = clock
        self.static_tokens = TokenTable(static_tokens)
        self.bound_tokens = bound_tokens
        self.service_accounts = ServiceAccountTokens(cache) if legacy_secret_tokens else None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.service_accounts is not None:
            self._task = asyncio.create_task(self.service_accounts.run(), name="token-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # The cancel just made ends it this way; anything else goes on up.
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def authenticate(self, scope: Mapping[str, Any]) -> UserInfo:
        """The request's user; ANONYMOUS when it carries no credential at all.

        Raises a 401 for a credential that is present but not valid.
        """
        token = bearer_token(scope)
        if token is not None:
            user = self.token_user(token)
            if user is None:
                raise unauthorized("invalid bearer token")
            return _authenticated(user)
        subject = client_subject(scope)
        if subject is not None and subject.user:
            return _authenticated(UserInfo(subject.user, subject.groups))
        return ANONYMOUS

    def token_user(self, token: str) -> UserInfo | None:
        user = self.static_tokens.lookup(token)
        if user is not None:
            return user
        bootstrap = _BOOTSTRAP_FORMAT.match(token)
        if bootstrap is not None:
            return self._bootstrap_user(bootstrap.group(1), bootstrap.group(2))
        if self.bound_tokens is not None and looks_like_jwt(token):
            return self.bound_tokens.user(token)
        if self.service_accounts is not None:
            return self.service_accounts.lookup(token)
        return None

    def _bootstrap_user(self, token_id: str, token_secret: str) -> UserInfo | None:
        secret = self.secret("kube-system", f"bootstrap-token-{token_id}")
        if secret is None:
            return None
        data = secret.get("data") or {}
        if secret.get("type") != BOOTSTRAP_TOKEN:
            return None
        if _decoded(data, "token-id") != token_id or not hmac.compare_digest(
            _decoded(data, "token-secret").encode(), token_secret.encode()
        ):
            return None
        if _decoded(data, "usage-bootstrap-authentication") != "true":
            return None
        expiration = _decoded(data, "expiration")
        if expiration and _expired(expiration, self.clock.now()):
            return None
        extra = tuple(
            g.strip() for g in _decoded(data, "auth-extra-groups").split(",") if g.strip()
        )
        groups = (BOOTSTRAPPERS, *(g for g in extra if g.startswith("system:bootstrappers:")))
        return UserInfo(f"system:bootstrap:{token_id}", groups)


def _authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, AUTHENTICATED), user.uid, user.extra)


def _expired(text: str, now: datetime.datetime) -> bool:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return True  # an expiration nobody can read is not a promise to keep working
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment <= now


def bearer_token(scope: Mapping[str, Any]) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)
