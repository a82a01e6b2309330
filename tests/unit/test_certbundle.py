"""The sealed keys a joining master fetches: only the key opens them, only its token reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.apiserver.authn import Authenticator
from controlplane.auth.attributes import UserInfo
from controlplane.auth.defaults import cluster_role_bindings, cluster_roles
from controlplane.auth.rbac import RBACAuthorizer, static_source
from corral.clock import ManualClock
from corral.objects import Obj
from corralctl import bootstraptokens, certbundle
from corralctl.certbundle import Bundle, BundleError
from tests.unit.auth.helpers import attrs

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
FILES = {name: f"content of {name}".encode() for name in certbundle.SHARED_FILES}


def _bundle(expires: datetime | None = NOW + timedelta(hours=2)) -> Bundle:
    return Bundle(dict(FILES), ["https://10.0.0.1:2379"], expires)


def test_the_right_key_opens_what_it_sealed() -> None:
    key = certbundle.new_certificate_key()
    opened = certbundle.open_sealed(certbundle.seal(_bundle(), key), key, now=NOW)
    assert opened.files == FILES
    assert opened.etcd_endpoints == ["https://10.0.0.1:2379"]
    assert opened.expires == NOW + timedelta(hours=2)


def test_the_ciphertext_holds_no_key_in_the_clear() -> None:
    key = certbundle.new_certificate_key()
    sealed = certbundle.seal(_bundle(), key)
    assert b"content of ca.key" not in sealed
    # A fresh nonce each time: sealing twice gives different bytes.
    assert sealed != certbundle.seal(_bundle(), key)


def test_another_key_is_refused_with_a_clear_message() -> None:
    sealed = certbundle.seal(_bundle(), certbundle.new_certificate_key())
    with pytest.raises(BundleError, match="certificate key does not open"):
        certbundle.open_sealed(sealed, certbundle.new_certificate_key(), now=NOW)


@pytest.mark.parametrize("key", ["not-hex", "abcd", "00" * 31])
def test_a_malformed_key_is_named(key: str) -> None:
    sealed = certbundle.seal(_bundle(), certbundle.new_certificate_key())
    with pytest.raises(BundleError, match="--certificate-key"):
        certbundle.open_sealed(sealed, key, now=NOW)


def test_a_changed_byte_is_detected() -> None:
    key = certbundle.new_certificate_key()
    sealed = bytearray(certbundle.seal(_bundle(), key))
    sealed[-1] ^= 1
    with pytest.raises(BundleError):
        certbundle.open_sealed(bytes(sealed), key, now=NOW)


def test_the_bundle_expires_with_its_token() -> None:
    key = certbundle.new_certificate_key()
    sealed = certbundle.seal(_bundle(NOW + timedelta(hours=2)), key)
    certbundle.open_sealed(sealed, key, now=NOW + timedelta(hours=1, minutes=59))
    with pytest.raises(BundleError, match="expired"):
        certbundle.open_sealed(sealed, key, now=NOW + timedelta(hours=2))


def test_read_shared_names_what_a_pki_dir_lacks(tmp_path: Path) -> None:
    for name in certbundle.SHARED_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(FILES[name])
    assert certbundle.read_shared(tmp_path) == FILES
    (tmp_path / "etcd" / "ca.key").unlink()
    with pytest.raises(BundleError, match=r"etcd/ca\.key"):
        certbundle.read_shared(tmp_path)


def test_the_secret_round_trips_and_is_owned_by_the_token() -> None:
    owner = {"metadata": {"name": "bootstrap-token-abcdef", "uid": "u-1"}}
    made = certbundle.secret(b"sealed bytes", owner)
    assert certbundle.sealed_from(made) == b"sealed bytes"
    assert made["metadata"]["ownerReferences"][0]["uid"] == "u-1"


# --- who may read the Secret ---------------------------------------------------------------


def _authenticated(token_object: Obj, token: str) -> UserInfo:
    """The user the API server's authenticator makes of ``token``, with the stored Secret."""
    authenticator = Authenticator(
        None,  # type: ignore[arg-type]
        lambda ns, name: token_object if name == token_object["metadata"]["name"] else None,
        ManualClock(NOW),
    )
    found = authenticator.token_user(token)
    assert found is not None
    return UserInfo(found.name, found.groups)


def _token(extra_groups: tuple[str, ...]) -> UserInfo:
    token_id, secret = bootstraptokens.new_token()
    stored = bootstraptokens.token_secret(
        token_id, secret, now=NOW, ttl=timedelta(hours=2), extra_groups=extra_groups
    )
    return _authenticated(stored, f"{token_id}.{secret}")


def _policy() -> RBACAuthorizer:
    return RBACAuthorizer(
        static_source(
            [certbundle.reader_role()],
            cluster_roles(),
            [certbundle.reader_binding()],
            cluster_role_bindings(),
        )
    )


def _can_get(who: UserInfo, name: str, namespace: str = certbundle.NAMESPACE) -> bool:
    return _policy().authorize(attrs(who, "get", "secrets", namespace=namespace, name=name)).allowed


def test_a_master_join_token_reads_the_sealed_secret_and_nothing_else() -> None:
    joining = _token((certbundle.JOIN_GROUP,))
    assert certbundle.JOIN_GROUP in joining.groups
    assert _can_get(joining, certbundle.SECRET_NAME)
    assert not _can_get(joining, "bootstrap-token-abcdef")
    assert not _can_get(joining, certbundle.SECRET_NAME, namespace="default")
    policy = _policy()
    for verb in ("list", "watch", "update", "delete"):
        request = attrs(joining, verb, "secrets", namespace=certbundle.NAMESPACE)
        assert not policy.authorize(request).allowed, verb


def test_a_node_join_token_or_a_node_cannot_read_it() -> None:
    assert not _can_get(_token(()), certbundle.SECRET_NAME)
    node = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
    assert not _can_get(node, certbundle.SECRET_NAME)


def test_a_token_cannot_claim_a_group_outside_the_bootstrappers() -> None:
    # The authenticator drops extra groups not under system:bootstrappers:.
    claimed = _token(("system:masters", certbundle.JOIN_GROUP))
    assert "system:masters" not in claimed.groups
