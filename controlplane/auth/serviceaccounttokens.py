"""Bound service account tokens: signed, expiring, audience-scoped JWTs.

The claims are Kubernetes' (``pkg/serviceaccount/claims.go``): ``iss``,
``aud`` (a list), ``sub`` (``system:serviceaccount:<ns>:<name>``), ``exp``,
``iat``, ``nbf``, ``jti`` and a private ``kubernetes.io`` claim naming the
namespace, the ServiceAccount and, when the token is bound, the Pod or
Secret it is bound to (and the Node a bound Pod runs on). A token outlives
none of them: ``check_bound_objects`` refuses it once any of them is gone
or was replaced (another uid), as Kubernetes' validator does.

Signatures are PyJWT's (with ``cryptography``); time is this module's, from
an injected clock, so tests move it instead of waiting. Nothing here does
I/O beyond reading key files: the API server hands in the objects.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from corral.objects import namespace_of

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
MIN_EXPIRATION_SECONDS = 600
DEFAULT_EXPIRATION_SECONDS = 3600
MAX_EXPIRATION_SECONDS = 48 * 3600
# Kubernetes' own leeway for exp, nbf and iat: clocks of API servers and
# clients drift a little, a minute is plenty.
LEEWAY_SECONDS = 60
# A bound object marked for deletion longer ago than this no longer vouches
# for its tokens (Kubernetes waits as long for a graceful pod shutdown).
DELETION_GRACE_SECONDS = 60

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)
_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class KeyFileError(Exception):
    pass


class InvalidToken(Exception):
    """A token that is not one of ours, or no longer valid; the message says why."""


# --- keys ------------------------------------------------------------------------


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """ES256 for the P-256 keys corral makes; RS256 for RSA keys an admin brings."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        algorithm = _CURVE_ALGORITHMS.get(key.curve.name)
        if algorithm is None:
            raise KeyFileError(f"unsupported elliptic curve {key.curve.name}")
        return algorithm
    return "RS256"


def key_id(key: PublicKey) -> str:
    """Kubernetes' ``kid``: the unpadded base64url SHA-256 of the DER public key."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror}") from None


def _checked_private(key: object, path: Path) -> PrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: only ECDSA and RSA keys can sign service account tokens")
    algorithm_for(key)
    return key


def load_signing_key(path: Path) -> PrivateKey:
    """``--service-account-signing-key-file``: one PEM private key."""
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({error})") from None
    return _checked_private(key, path)


def load_public_keys(path: Path) -> list[PublicKey]:
    """``--service-account-key-file``: PEM public keys, private keys or certificates."""
    keys: list[PublicKey] = []
    for block in _PEM_BLOCK.finditer(_read(path)):
        pem, label = block.group(0), block.group(1).decode()
        try:
            if label == "CERTIFICATE":
                loaded: object = x509.load_pem_x509_certificate(pem).public_key()
            elif label.endswith("PRIVATE KEY"):
                loaded = _checked_private(
                    serialization.load_pem_private_key(pem, password=None), path
                ).public_key()
            elif label.endswith("PUBLIC KEY"):
                loaded = serialization.load_pem_public_key(pem)
            else:
                continue
        except (ValueError, TypeError) as error:
            raise KeyFileError(f"{path}: unreadable {label} ({error})") from None
        if not isinstance(loaded, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise KeyFileError(f"{path}: only ECDSA and RSA keys verify service account tokens")
        algorithm_for(loaded)
        keys.append(loaded)
    if not keys:
        raise KeyFileError(f"{path}: no PEM public key, private key or certificate in it")
    return keys


# --- claims ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ref:
    name: str
    uid: str


def ref_of(obj: Mapping[str, Any]) -> Ref:
    meta = obj.get("metadata") or {}
    return Ref(str(meta.get("name") or ""), str(meta.get("uid") or ""))


def pod_service_account(pod: Mapping[str, Any]) -> str:
    """The ServiceAccount a pod runs as; Kubernetes' admission defaults it to ``default``."""
    spec = pod.get("spec") or {}
    name = spec.get("serviceAccountName") or spec.get("serviceAccount")
    return name if isinstance(name, str) and name else "default"


def username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token says, whether about to be signed or just verified."""

    issuer: str
    audiences: tuple[str, ...]
    namespace: str
    service_account: Ref
    issued_at: int
    expires_at: int
    jti: str = field(default_factory=lambda: str(uuid.uuid4()))
    pod: Ref | None = None
    secret: Ref | None = None
    node: Ref | None = None

    @property
    def subject(self) -> str:
        return username(self.namespace, self.service_account.name)

    def to_jwt_payload(self) -> dict[str, Any]:
        private: dict[str, Any] = {
            "namespace": self.namespace,
            "serviceaccount": _ref_claim(self.service_account),
        }
        for key, ref in (("pod", self.pod), ("secret", self.secret), ("node", self.node)):
            if ref is not None:
                private[key] = _ref_claim(ref)
        return {
            "iss": self.issuer,
            "aud": list(self.audiences),
            "sub": self.subject,
            "exp": self.expires_at,
            "iat": self.issued_at,
            "nbf": self.issued_at,
            "jti": self.jti,
            "kubernetes.io": private,
        }


def _ref_claim(ref: Ref) -> dict[str, str]:
    return {"name": ref.name, "uid": ref.uid}


def new_claims(
    *,
    issuer: str,
    audiences: Sequence[str],
    service_account: Mapping[str, Any],
    now: datetime,
    expiration_seconds: int,
    pod: Mapping[str, Any] | None = None,
    secret: Mapping[str, Any] | None = None,
    node: Mapping[str, Any] | None = None,
    node_name: str = "",
) -> TokenClaims:
    """The claims of a token for ``service_account``, bound to ``pod`` or ``secret`` if given.

    A pod-bound token also names the pod's node (``node``, or just
    ``node_name`` when the Node object is not there to give its uid).
    """
    namespace = namespace_of(service_account)
    issued = int(now.timestamp())
    node_ref = ref_of(node) if node is not None else (Ref(node_name, "") if node_name else None)
    return TokenClaims(
        issuer=issuer,
        audiences=tuple(audiences),
        namespace=namespace,
        service_account=ref_of(service_account),
        issued_at=issued,
        expires_at=issued + expiration_seconds,
        pod=ref_of(pod) if pod is not None else None,
        secret=ref_of(secret) if secret is not None else None,
        node=node_ref if pod is not None else None,
    )


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidToken(f"the {what} claim is not a string")
    return value


def _ref_from(value: Any, what: str, required: bool = False) -> Ref | None:
    if value is None and not required:
        return None
    if not isinstance(value, Mapping):
        raise InvalidToken(f"the kubernetes.io {what} claim is malformed")
    return Ref(_text(value.get("name"), f"{what} name"), _text(value.get("uid"), f"{what} uid"))


def _seconds(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"the {what} claim is not a number")
    return int(value)


def claims_from(payload: Mapping[str, Any]) -> TokenClaims:
    """Read a verified payload; a token missing Kubernetes' claims is not ours."""
    private = payload.get("kubernetes.io")
    if not isinstance(private, Mapping):
        raise InvalidToken("the token has no kubernetes.io claim")
    namespace = _text(private.get("namespace"), "namespace")
    account = _ref_from(private.get("serviceaccount"), "serviceaccount", required=True)
    assert account is not None
    audiences = payload.get("aud")
    if isinstance(audiences, str):
        audiences = [audiences]
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise InvalidToken("the aud claim is not a list of strings")
    claims = TokenClaims(
        issuer=_text(payload.get("iss"), "iss"),
        audiences=tuple(audiences),
        namespace=namespace,
        service_account=account,
        issued_at=_seconds(payload.get("iat"), "iat"),
        expires_at=_seconds(payload.get("exp"), "exp"),
        jti=_text(payload.get("jti", ""), "jti"),
        pod=_ref_from(private.get("pod"), "pod"),
        secret=_ref_from(private.get("secret"), "secret"),
        node=_ref_from(private.get("node"), "node"),
    )
    if _text(payload.get("sub"), "sub") != claims.subject:
        raise InvalidToken("the sub claim does not name the kubernetes.io service account")
    if not namespace or not account.name or not account.uid:
        raise InvalidToken("the token names no service account")
    return claims


# --- signing and verifying ---------------------------------------------------------


class TokenSigner:
    """Signs claims with the service account signing key."""

    def __init__(self, key: PrivateKey) -> None:
        self.key = key
        self.algorithm = algorithm_for(key)
        self.kid = key_id(key.public_key())

    def sign(self, claims: TokenClaims) -> str:
        return jwt.encode(
            claims.to_jwt_payload(), self.key, algorithm=self.algorithm, headers={"kid": self.kid}
        )


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: worth verifying as a service account token."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts) and token.startswith("eyJ")


class TokenVerifier:
    """Signature, issuer, audience and time: everything a token proves by itself."""

    def __init__(
        self,
        public_keys: Iterable[PublicKey],
        issuers: Sequence[str],
        audiences: Sequence[str],
        leeway_seconds: int = LEEWAY_SECONDS,
    ) -> None:
        self.keys = [(key_id(k), algorithm_for(k), k) for k in public_keys]
        self.issuers = tuple(issuers)
        self.audiences = tuple(audiences)
        self.leeway = leeway_seconds
        if not self.keys or not self.issuers or not self.audiences:
            raise ValueError("a verifier needs public keys, issuers and audiences")

    def verify(self, token: str, now: datetime) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"not a JWT: {error}") from None
        kid = header.get("kid")
        candidates = [k for k in self.keys if k[0] == kid] or self.keys
        payload: dict[str, Any] | None = None
        for _, algorithm, key in candidates:
            try:
                payload = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=list(self.audiences),
                    options={
                        # Time is checked below, against the injected clock.
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "verify_iss": False,
                        "require": ["iss", "aud", "sub", "exp", "iat", "nbf"],
                    },
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAudienceError:
                raise InvalidToken("the token is not meant for this API server (aud)") from None
            except jwt.InvalidTokenError as error:
                raise InvalidToken(f"invalid token: {error}") from None
        if payload is None:
            raise InvalidToken("no service account key verifies the token's signature")
        if payload.get("iss") not in self.issuers:
            raise InvalidToken("the token's issuer (iss) is not one this API server trusts")
        claims = claims_from(payload)
        seconds = now.timestamp()
        if seconds >= claims.expires_at + self.leeway:
            raise InvalidToken("the token has expired")
        not_before = _seconds(payload.get("nbf"), "nbf")
        if seconds < not_before - self.leeway or seconds < claims.issued_at - self.leeway:
            raise InvalidToken("the token is not valid yet (nbf, iat)")
        return claims


# --- the objects a token depends on --------------------------------------------------

ObjectLookup = Callable[[str, str, str], Mapping[str, Any] | None]
"""(resource plural, namespace, name) -> the object, or None; "" for cluster scope."""


def check_bound_objects(claims: TokenClaims, lookup: ObjectLookup, now: datetime) -> None:
    """Refuse a token whose ServiceAccount, Pod or Secret is gone or was replaced."""
    ns = claims.namespace
    _same("serviceaccounts", ns, claims.service_account, lookup, now, "service account")
    if claims.pod is not None:
        _same("pods", ns, claims.pod, lookup, now, "pod")
    if claims.secret is not None:
        _same("secrets", ns, claims.secret, lookup, now, "secret")


def _same(
    resource: str, namespace: str, ref: Ref, lookup: ObjectLookup, now: datetime, what: str
) -> None:
    obj = lookup(resource, namespace, ref.name)
    if obj is None:
        raise InvalidToken(f"the token's {what} {namespace}/{ref.name} no longer exists")
    meta = obj.get("metadata") or {}
    if meta.get("uid") != ref.uid:
        raise InvalidToken(f"the token's {what} {namespace}/{ref.name} was replaced (uid)")
    deleting = meta.get("deletionTimestamp")
    if isinstance(deleting, str):
        try:
            marked = datetime.fromisoformat(deleting.replace("Z", "+00:00"))
        except ValueError:
            # Not a time the server wrote (it validates every timestamp):
            # no grace period to judge, so the token stands.
            return
        if (now - marked).total_seconds() > DELETION_GRACE_SECONDS:
            raise InvalidToken(f"the token's {what} {namespace}/{ref.name} is being deleted")
