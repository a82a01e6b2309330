"""Secrets encryption at rest: round trips, rotation, corruption, identity fallback."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.storage.encryption import (
    IDENTITY,
    EncryptionConfigError,
    EncryptionError,
    EncryptionTransformer,
    EtcdRewriteTarget,
    StorageCodec,
    StoredValue,
    add_key,
    load_config,
    new_config,
    parse_config,
    reencrypt,
)

SECRET = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'
KEY = b"/registry/secrets/prod/db"


def key_b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def config(
    *keys: tuple[str, str], identity: str = "last", resources: list[str] | None = None
) -> dict[str, Any]:
    providers: list[dict[str, Any]] = [
        {"aesgcm": {"keys": [{"name": n, "secret": s} for n, s in keys]}}
    ]
    if identity == "last":
        providers.append({"identity": {}})
    elif identity == "first":
        providers.insert(0, {"identity": {}})
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": resources or ["secrets"], "providers": providers}],
    }


K1 = ("key1", key_b64())
K2 = ("key2", key_b64())


def test_round_trip() -> None:
    t = parse_config(config(K1))
    stored = t.to_storage("secrets", SECRET, KEY)
    assert t.from_storage("secrets", stored, KEY) == SECRET


def test_ciphertext_has_the_kubernetes_prefix_and_no_plaintext() -> None:
    t = parse_config(config(K1))
    stored = t.to_storage("secrets", SECRET, KEY)
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert b"password" not in stored
    assert b"aHVudGVyMg" not in stored
    assert len(stored) == len(b"k8s:enc:aesgcm:v1:key1:") + 12 + len(SECRET) + 16


def test_every_write_uses_a_new_nonce() -> None:
    t = parse_config(config(K1))
    assert t.to_storage("secrets", SECRET, KEY) != t.to_storage("secrets", SECRET, KEY)


def test_other_resources_pass_through() -> None:
    t = parse_config(config(K1))
    assert t.to_storage("configmaps", SECRET, KEY) == SECRET
    assert t.from_storage("configmaps", SECRET, KEY) == SECRET


def test_configurable_resources() -> None:
    t = parse_config(config(K1, resources=["secrets", "configmaps"]))
    assert t.resources == frozenset({"secrets", "configmaps"})
    assert t.to_storage("configmaps", b"{}", b"k").startswith(b"k8s:enc:")


def test_value_is_bound_to_its_key() -> None:
    t = parse_config(config(K1))
    stored = t.to_storage("secrets", SECRET, KEY)
    with pytest.raises(EncryptionError, match="failed authentication"):
        t.from_storage("secrets", stored, b"/registry/secrets/prod/other")


def test_corrupted_value_is_an_error_not_garbage() -> None:
    t = parse_config(config(K1))
    stored = bytearray(t.to_storage("secrets", SECRET, KEY))
    stored[-5] ^= 0x01
    with pytest.raises(EncryptionError):
        t.from_storage("secrets", bytes(stored), KEY)


def test_truncated_value_is_an_error() -> None:
    t = parse_config(config(K1))
    stored = t.to_storage("secrets", SECRET, KEY)
    with pytest.raises(EncryptionError, match="truncated"):
        t.from_storage("secrets", stored[:30], KEY)


def test_wrong_key_with_the_same_name() -> None:
    writer = parse_config(config(K1))
    reader = parse_config(config(("key1", key_b64())))
    with pytest.raises(EncryptionError):
        reader.from_storage("secrets", writer.to_storage("secrets", SECRET, KEY), KEY)


def test_errors_never_carry_the_plaintext(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    t = parse_config(config(K1))
    stored = bytearray(t.to_storage("secrets", SECRET, KEY))
    stored[-1] ^= 0xFF
    with pytest.raises(EncryptionError) as caught:
        t.from_storage("secrets", bytes(stored), KEY)
    assert "aHVudGVyMg" not in str(caught.value)
    assert "aHVudGVyMg" not in caplog.text


def test_identity_last_reads_old_plaintext() -> None:
    t = parse_config(config(K1))
    assert t.from_storage("secrets", SECRET, KEY) == SECRET


def test_without_identity_plaintext_is_refused() -> None:
    t = parse_config(config(K1, identity="none"))
    with pytest.raises(EncryptionError, match="no configured provider"):
        t.from_storage("secrets", SECRET, KEY)


def test_identity_first_writes_plaintext_and_still_reads_ciphertext() -> None:
    old = parse_config(config(K1))
    encrypted = old.to_storage("secrets", SECRET, KEY)
    migrating = parse_config(config(K1, identity="first"))
    assert migrating.to_storage("secrets", SECRET, KEY) == SECRET
    assert migrating.from_storage("secrets", encrypted, KEY) == SECRET


def test_unknown_key_name_is_an_error() -> None:
    old = parse_config(config(K1))
    new = parse_config(config(K2))
    with pytest.raises(EncryptionError):
        new.from_storage("secrets", old.to_storage("secrets", SECRET, KEY), KEY)


def test_decrypt_with_an_old_key_after_rotation() -> None:
    before = parse_config(config(K1))
    stored = before.to_storage("secrets", SECRET, KEY)
    after = parse_config(config(K2, K1))
    assert after.from_storage("secrets", stored, KEY) == SECRET
    assert after.to_storage("secrets", SECRET, KEY).startswith(b"k8s:enc:aesgcm:v1:key2:")
    assert after.is_stale("secrets", stored)
    assert not after.is_stale("secrets", after.to_storage("secrets", SECRET, KEY))


def test_identity_refuses_encrypted_values() -> None:
    stored = parse_config(config(K1)).to_storage("secrets", SECRET, KEY)
    with pytest.raises(EncryptionError, match="no encryption is configured"):
        IDENTITY.from_storage("secrets", stored, KEY)
    assert IDENTITY.from_storage("secrets", SECRET) == SECRET


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda c: c.update(kind="Other"), "kind"),
        (lambda c: c.update(apiVersion="v9"), "apiVersion"),
        (lambda c: c.update(resources=[]), "resources"),
        (lambda c: c["resources"][0].update(providers=[]), "resources[0].providers"),
        (
            lambda c: c["resources"][0].update(providers=[{"aescbc": {}}]),
            "resources[0].providers[0]",
        ),
        (lambda c: c["resources"][0]["providers"][0]["aesgcm"].update(keys=[]), "aesgcm.keys"),
        (
            lambda c: c["resources"][0]["providers"][0]["aesgcm"]["keys"][0].update(secret="!!"),
            "secret",
        ),
        (
            lambda c: c["resources"][0]["providers"][0]["aesgcm"]["keys"][0].update(name="a:b"),
            "name",
        ),
    ],
)
def test_bad_configurations(mutate: Any, where: str) -> None:
    document = config(K1)
    mutate(document)
    with pytest.raises(EncryptionConfigError, match=where.replace("[", r"\[").replace("]", r"\]")):
        parse_config(document)


def test_short_key_is_refused_without_echoing_it() -> None:
    short = base64.b64encode(b"0123456789abcdef").decode()
    with pytest.raises(EncryptionConfigError) as caught:
        parse_config(config(("k", short)))
    assert short not in str(caught.value)
    assert "32 bytes, not 16" in str(caught.value)


def test_duplicate_key_names() -> None:
    with pytest.raises(EncryptionConfigError, match="duplicate"):
        parse_config(config(("k", key_b64()), ("k", key_b64())))


def test_new_config_loads_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "encryption.yaml"
    path.write_text(new_config())
    t = load_config(path)
    assert t.from_storage("secrets", t.to_storage("secrets", SECRET, KEY), KEY) == SECRET


def test_load_config_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("resources: [")
    with pytest.raises(EncryptionConfigError, match="not valid YAML"):
        load_config(bad)


def test_add_key_puts_the_new_key_first() -> None:
    document = yaml.safe_load(new_config(key_name="key1"))
    rotated = add_key(document, "key2")
    names = [k["name"] for k in rotated["resources"][0]["providers"][0]["aesgcm"]["keys"]]
    assert names == ["key2", "key1"]
    with pytest.raises(EncryptionConfigError, match="already exists"):
        add_key(rotated, "key1")


# --- the store's codec -------------------------------------------------------------------------


def test_codec_finds_the_resource_in_the_key() -> None:
    codec = StorageCodec(parse_config(config(K1)), "/registry")
    assert codec.resource_of(b"/registry/secrets/ns/name") == "secrets"
    assert codec.resource_of(b"/registry/nodes") == "nodes"
    stored = codec.encode(KEY, SECRET)
    assert stored.startswith(b"k8s:enc:")
    assert codec.decode(KEY, stored) == SECRET
    assert codec.encode(b"/registry/pods/ns/p", b"{}") == b"{}"


def test_default_codec_changes_nothing() -> None:
    codec = StorageCodec()
    assert codec.encode(KEY, SECRET) == SECRET
    assert codec.decode(KEY, SECRET) == SECRET


# --- re-encryption -------------------------------------------------------------------------------


class MemoryEtcd:
    def __init__(self) -> None:
        self.data: dict[bytes, StoredValue] = {}
        self.revision = 1
        self.race_on: bytes | None = None

    def put(self, key: bytes, value: bytes) -> None:
        self.revision += 1
        self.data[key] = StoredValue(key, value, self.revision)

    async def scan(self, start: bytes, end: bytes, limit: int) -> tuple[list[StoredValue], bool]:
        keys = sorted(k for k in self.data if start <= k < end)
        return [self.data[k] for k in keys[:limit]], len(keys) > limit

    async def compare_and_put(self, key: bytes, value: bytes, mod_revision: int) -> bool:
        if key == self.race_on:
            self.put(key, b"written meanwhile")
        if self.data[key].mod_revision != mod_revision:
            return False
        self.put(key, value)
        return True


async def test_reencrypt_moves_everything_to_the_new_key() -> None:
    old = StorageCodec(parse_config(config(K1)))
    etcd = MemoryEtcd()
    for i in range(7):
        key = f"/registry/secrets/ns/s{i}".encode()
        etcd.put(key, old.encode(key, SECRET))
    etcd.put(b"/registry/secrets/ns/plain", SECRET)  # from before encryption
    etcd.put(b"/registry/secretsx/ns/other", b"untouched")
    transformer = parse_config(config(K2, K1))
    new = StorageCodec(transformer)
    report = await reencrypt(etcd, new, ["secrets"], transformer=transformer, page_size=3)
    assert (report.scanned, report.rewritten, report.raced, report.failed) == (8, 8, 0, [])
    for key, stored in etcd.data.items():
        if key.startswith(b"/registry/secrets/"):
            assert stored.value.startswith(b"k8s:enc:aesgcm:v1:key2:")
            assert new.decode(key, stored.value) == SECRET
    assert etcd.data[b"/registry/secretsx/ns/other"].value == b"untouched"
    again = await reencrypt(etcd, new, ["secrets"], transformer=transformer)
    assert (again.scanned, again.rewritten) == (8, 0)


async def test_reencrypt_reports_races_and_unreadable_values() -> None:
    old = StorageCodec(parse_config(config(K1)))
    etcd = MemoryEtcd()
    etcd.put(b"/registry/secrets/ns/a", old.encode(b"/registry/secrets/ns/a", SECRET))
    etcd.put(b"/registry/secrets/ns/b", b"k8s:enc:aesgcm:v1:lost:garbage")
    etcd.race_on = b"/registry/secrets/ns/a"
    transformer = parse_config(config(K2, K1))
    report = await reencrypt(etcd, StorageCodec(transformer), ["secrets"], transformer=transformer)
    assert (report.rewritten, report.raced) == (0, 1)
    assert report.failed == ["/registry/secrets/ns/b"]
    assert etcd.data[b"/registry/secrets/ns/a"].value == b"written meanwhile"


class FakeKV:
    def __init__(self, key: bytes, value: bytes, mod_revision: int) -> None:
        self.key, self.value, self.mod_revision = key, value, mod_revision


class FakeClient:
    def __init__(self) -> None:
        self.puts: list[tuple[bytes, bytes, int]] = []

    async def range(self, start: bytes, end: bytes, *, limit: int = 0) -> Any:
        class Result:
            kvs = [FakeKV(b"/registry/secrets/a/b", b"v", 4)]
            more = False

        return Result()

    async def txn(self, compare: list[Any], success: list[Any], failure: Any = ()) -> Any:
        put = success[0].request_put
        self.puts.append((put.key, put.value, compare[0].mod_revision))

        class Result:
            succeeded = True

        return Result()


async def test_etcd_rewrite_target_uses_a_compare_and_swap() -> None:
    client = FakeClient()
    target = EtcdRewriteTarget(client)  # type: ignore[arg-type]
    values, more = await target.scan(b"a", b"b", 10)
    assert (values, more) == ([StoredValue(b"/registry/secrets/a/b", b"v", 4)], False)
    assert await target.compare_and_put(b"k", b"new", 4)
    assert client.puts == [(b"k", b"new", 4)]


def test_transformer_without_resources_is_identity() -> None:
    t = EncryptionTransformer({})
    assert t.to_storage("secrets", SECRET) == SECRET
