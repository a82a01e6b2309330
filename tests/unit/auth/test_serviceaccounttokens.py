"""Bound service account tokens: claims, signatures and every reason to refuse one.

Time comes from a ManualClock, so expiry is tested by moving the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from controlplane.apiserver.authn import (
    Authenticator,
    BoundTokens,
    TokenTable,
    UserInfo,
    bound_token_user,
)
from controlplane.apiserver.tokenrequest import expiration_of
from controlplane.auth.attributes import UserInfo as Who
from controlplane.auth.node import NodeAuthorizer
from controlplane.auth.serviceaccounttokens import (
    DEFAULT_ISSUER,
    EXTRA_CREDENTIAL_ID,
    EXTRA_NODE_NAME,
    EXTRA_NODE_UID,
    EXTRA_POD_NAME,
    EXTRA_POD_UID,
    InvalidToken,
    KeyFileError,
    TokenClaims,
    TokenSigner,
    TokenVerifier,
    check_bound_objects,
    key_id,
    load_public_keys,
    load_signing_key,
    looks_like_jwt,
    new_claims,
    pod_service_account,
)
from corral import pki
from corral.api.authentication import TokenRequest
from corral.api.errors import ApiError
from corral.clock import ManualClock
from corral.objects import Obj

from .helpers import attrs

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _obj(name: str, uid: str, namespace: str = "prod", **extra: Any) -> Obj:
    return {"metadata": {"name": name, "uid": uid, "namespace": namespace}, **extra}


ACCOUNT = _obj("robot", "sa-1")
POD = _obj("web", "pod-1", spec={"serviceAccountName": "robot", "nodeName": "n1"})
NODE = _obj("n1", "node-1", namespace="")
SECRET = _obj("creds", "secret-1")


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _verifier(*keys: Any, audiences: tuple[str, ...] = (DEFAULT_ISSUER,)) -> TokenVerifier:
    return TokenVerifier([k.public_key() for k in keys], [DEFAULT_ISSUER], audiences)


def _claims(now: datetime = START, seconds: int = 3600, **bound: Any) -> TokenClaims:
    return new_claims(
        issuer=DEFAULT_ISSUER,
        audiences=[DEFAULT_ISSUER],
        service_account=ACCOUNT,
        now=now,
        expiration_seconds=seconds,
        **bound,
    )


def _payload(token: str) -> Obj:
    part = token.split(".")[1]
    decoded: Obj = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_a_pod_bound_token_carries_kubernetes_claims(key: ec.EllipticCurvePrivateKey) -> None:
    token = TokenSigner(key).sign(_claims(pod=POD, node=NODE))
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == key_id(key.public_key())
    payload = _payload(token)
    issued = int(START.timestamp())
    assert payload["iss"] == DEFAULT_ISSUER
    assert payload["aud"] == [DEFAULT_ISSUER]
    assert payload["sub"] == "system:serviceaccount:prod:robot"
    assert (payload["iat"], payload["nbf"], payload["exp"]) == (issued, issued, issued + 3600)
    assert len(payload["jti"]) == 36
    assert payload["kubernetes.io"] == {
        "namespace": "prod",
        "serviceaccount": {"name": "robot", "uid": "sa-1"},
        "pod": {"name": "web", "uid": "pod-1"},
        "node": {"name": "n1", "uid": "node-1"},
    }
    verified = _verifier(key).verify(token, START)
    assert verified.pod is not None and verified.pod.uid == "pod-1"
    assert verified.node is not None and verified.node.name == "n1"
    assert verified.secret is None


def test_the_user_has_kubernetes_extra_fields(key: ec.EllipticCurvePrivateKey) -> None:
    claims = _claims(pod=POD, node_name="n1")
    user = bound_token_user(claims)
    assert user.name == "system:serviceaccount:prod:robot"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:prod")
    assert user.uid == "sa-1"
    assert user.extra[EXTRA_POD_NAME] == ("web",)
    assert user.extra[EXTRA_POD_UID] == ("pod-1",)
    assert user.extra[EXTRA_NODE_NAME] == ("n1",)
    assert EXTRA_NODE_UID not in user.extra  # the Node object was not there to give it
    assert user.extra[EXTRA_CREDENTIAL_ID] == (f"JTI={claims.jti}",)
    assert EXTRA_POD_NAME not in bound_token_user(_claims()).extra


def test_expiry_and_not_before_follow_the_injected_clock(
    key: ec.EllipticCurvePrivateKey,
) -> None:
    clock = ManualClock(START)
    token = TokenSigner(key).sign(_claims(seconds=600))
    verifier = _verifier(key)
    clock.advance(600 + 59)  # within the minute of leeway
    verifier.verify(token, clock.now())
    clock.advance(1)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token, clock.now())
    with pytest.raises(InvalidToken, match="not valid yet"):
        verifier.verify(token, START - timedelta(minutes=2))
    verifier.verify(token, START - timedelta(seconds=30))


def test_audience_issuer_and_signature_must_all_match(key: ec.EllipticCurvePrivateKey) -> None:
    signer = TokenSigner(key)
    with pytest.raises(InvalidToken, match="aud"):
        _verifier(key, audiences=("https://other",)).verify(signer.sign(_claims()), START)
    foreign = new_claims(
        issuer="https://evil.example",
        audiences=[DEFAULT_ISSUER],
        service_account=ACCOUNT,
        now=START,
        expiration_seconds=600,
    )
    with pytest.raises(InvalidToken, match="issuer"):
        _verifier(key).verify(signer.sign(foreign), START)
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidToken, match="signature"):
        _verifier(key).verify(TokenSigner(stranger).sign(_claims()), START)
    # A second, older key still verifies what it signed (key rotation).
    assert _verifier(key, stranger).verify(TokenSigner(stranger).sign(_claims()), START)


def test_a_tampered_or_unsigned_token_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    token = TokenSigner(key).sign(_claims())
    header, _, signature = token.split(".")
    claims = _payload(token)
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    claims["sub"] = "system:serviceaccount:prod:admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        _verifier(key).verify(f"{header}.{forged}.{signature}", START)
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(InvalidToken):
        _verifier(key).verify(unsigned, START)
    # HS256 keyed with the public key's PEM: the classic algorithm confusion.
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidToken):
        _verifier(key).verify(_hs256(_payload(token), public_pem), START)


def _hs256(claims: Obj, secret: bytes) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(mac)}"


def test_a_token_without_kubernetes_claims_is_not_ours(key: ec.EllipticCurvePrivateKey) -> None:
    payload = _claims().to_jwt_payload()
    del payload["kubernetes.io"]
    token = jwt.encode(payload, key, algorithm="ES256")
    with pytest.raises(InvalidToken, match=r"kubernetes\.io"):
        _verifier(key).verify(token, START)
    payload = _claims().to_jwt_payload()
    payload["sub"] = "system:serviceaccount:prod:admin"
    with pytest.raises(InvalidToken, match="sub"):
        _verifier(key).verify(jwt.encode(payload, key, algorithm="ES256"), START)


class Objects:
    """What the watch cache would answer, by (resource, namespace, name)."""

    def __init__(self, *objs: tuple[str, Obj]) -> None:
        self.objs = {(r, o["metadata"]["namespace"], o["metadata"]["name"]): o for r, o in objs}

    def __call__(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self.objs.get((resource, namespace, name))


def test_bound_objects_must_exist_with_the_same_uid() -> None:
    claims = _claims(pod=POD)
    everything = Objects(("serviceaccounts", ACCOUNT), ("pods", POD))
    check_bound_objects(claims, everything, START)
    with pytest.raises(InvalidToken, match="service account prod/robot no longer exists"):
        check_bound_objects(claims, Objects(("pods", POD)), START)
    replaced = _obj("robot", "sa-2")
    with pytest.raises(InvalidToken, match="replaced"):
        check_bound_objects(claims, Objects(("serviceaccounts", replaced), ("pods", POD)), START)
    with pytest.raises(InvalidToken, match="pod prod/web no longer exists"):
        check_bound_objects(claims, Objects(("serviceaccounts", ACCOUNT)), START)
    other_pod = _obj("web", "pod-2")
    with pytest.raises(InvalidToken, match="pod prod/web was replaced"):
        check_bound_objects(
            claims, Objects(("serviceaccounts", ACCOUNT), ("pods", other_pod)), START
        )
    secret_claims = _claims(secret=SECRET)
    with pytest.raises(InvalidToken, match="secret"):
        check_bound_objects(secret_claims, Objects(("serviceaccounts", ACCOUNT)), START)
    check_bound_objects(
        secret_claims, Objects(("serviceaccounts", ACCOUNT), ("secrets", SECRET)), START
    )


def test_a_pod_deleted_over_a_minute_ago_no_longer_vouches() -> None:
    deleting = _obj("web", "pod-1")
    deleting["metadata"]["deletionTimestamp"] = "2026-03-01T12:00:00Z"
    lookup = Objects(("serviceaccounts", ACCOUNT), ("pods", deleting))
    claims = _claims(pod=POD)
    check_bound_objects(claims, lookup, START + timedelta(seconds=60))
    with pytest.raises(InvalidToken, match="being deleted"):
        check_bound_objects(claims, lookup, START + timedelta(seconds=61))


def test_the_authenticator_verifies_then_checks_objects(key: ec.EllipticCurvePrivateKey) -> None:
    clock = ManualClock(START)
    lookup = Objects(("serviceaccounts", ACCOUNT), ("pods", POD))
    bound = BoundTokens(_verifier(key), lookup, clock)
    token = TokenSigner(key).sign(_claims(pod=POD, node_name="n1"))
    user = bound.user(token)
    assert user is not None and user.name == "system:serviceaccount:prod:robot"
    lookup.objs.pop(("pods", "prod", "web"))
    assert bound.user(token) is None
    assert bound.user("eyJ.not.ajwt") is None


def test_authenticator_sends_only_jwts_to_the_verifier(key: ec.EllipticCurvePrivateKey) -> None:
    assert looks_like_jwt(TokenSigner(key).sign(_claims()))
    assert not looks_like_jwt("abcdef.0123456789abcdef")
    assert not looks_like_jwt("static-token")


def test_static_tokens_are_found_by_hash_and_compared_in_full() -> None:
    admin = UserInfo("corral-admin", ("system:masters",))
    table = TokenTable({"s3cret-token": admin})
    assert table.lookup("s3cret-token") is admin
    assert table.lookup("s3cret-toke") is None
    assert table.lookup("s3cret-token ") is None
    assert table.lookup("") is None
    table.remove("s3cret-token")
    assert table.lookup("s3cret-token") is None


def test_legacy_secret_tokens_are_off_unless_asked_for(key: ec.EllipticCurvePrivateKey) -> None:
    clock = ManualClock(START)
    off = Authenticator(None, lambda ns, name: None, clock)  # type: ignore[arg-type]
    assert off.service_accounts is None
    assert off.token_user("some-legacy-token") is None


def _bootstrap_secret(token_id: str, secret: str) -> Obj:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "type": "bootstrap.kubernetes.io/token",
        "data": {
            "token-id": b64(token_id),
            "token-secret": b64(secret),
            "usage-bootstrap-authentication": b64("true"),
        },
    }


def test_bootstrap_tokens_need_the_whole_secret() -> None:
    stored = _bootstrap_secret("abcdef", "0123456789abcdef")
    authenticator = Authenticator(
        None,  # type: ignore[arg-type]
        lambda ns, name: stored if name == "bootstrap-token-abcdef" else None,
        ManualClock(START),
    )
    user = authenticator.token_user("abcdef.0123456789abcdef")
    assert user is not None and user.name == "system:bootstrap:abcdef"
    assert authenticator.token_user("abcdef.0123456789abcdee") is None
    assert authenticator.token_user("abcdef.1123456789abcdef") is None


def test_pods_without_a_service_account_run_as_default() -> None:
    assert pod_service_account({"spec": {}}) == "default"
    assert pod_service_account({"spec": {"serviceAccountName": "robot"}}) == "robot"


def _request(seconds: int | None) -> TokenRequest:
    return TokenRequest.model_validate({"spec": {"expirationSeconds": seconds}})


def test_expiration_is_checked_defaulted_and_clamped() -> None:
    assert expiration_of(_request(None), "robot", 48 * 3600) == 3600
    assert expiration_of(_request(600), "robot", 48 * 3600) == 600
    assert expiration_of(_request(7 * 24 * 3600), "robot", 48 * 3600) == 48 * 3600
    for seconds in (599, 2**32 + 1):
        with pytest.raises(ApiError) as refused:
            expiration_of(_request(seconds), "robot", 48 * 3600)
        assert refused.value.code == 422
        assert refused.value.causes[0].field == "spec.expirationSeconds"


def test_key_files_hold_public_keys_private_keys_or_certificates(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ca = pki.new_ca()
    bundle = tmp_path / "keys.pem"
    bundle.write_bytes(private_pem + public_pem + ca.cert_pem)
    keys = load_public_keys(bundle)
    assert [key_id(k) for k in keys] == [
        key_id(ec_key.public_key()),
        key_id(rsa_key.public_key()),
        key_id(x509.load_pem_x509_certificate(ca.cert_pem).public_key()),  # type: ignore[arg-type]
    ]
    signing = tmp_path / "sa.key"
    signing.write_bytes(private_pem)
    assert key_id(load_signing_key(signing).public_key()) == key_id(ec_key.public_key())
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(KeyFileError, match="no PEM"):
        load_public_keys(empty)
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_signing_key(empty)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signing_key(tmp_path / "missing.key")


def test_a_node_may_ask_for_tokens_of_its_pods_service_accounts() -> None:
    pods = [
        {"metadata": {"name": "web", "namespace": "prod"}, "spec": {"nodeName": "n1"}},
        {
            "metadata": {"name": "api", "namespace": "prod"},
            "spec": {"nodeName": "n2", "serviceAccountName": "api"},
        },
    ]

    def on_node(node: str, namespace: str) -> list[Obj]:
        return [p for p in pods if p["spec"]["nodeName"] == node]

    authorizer = NodeAuthorizer(lambda ns, name: None, on_node)
    n1 = Who("system:node:n1", ("system:nodes", "system:authenticated"))

    def allowed(verb: str, account: str) -> bool:
        a = attrs(n1, verb, "serviceaccounts", namespace="prod", name=account, subresource="token")
        return authorizer.authorize(a).allowed

    assert allowed("create", "default")  # web runs as the default account
    assert not allowed("create", "api")  # only n2 runs a pod as api
    assert not allowed("get", "default")
