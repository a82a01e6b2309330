"""One reader of identities in certificates, and signers that build the subject themselves."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from corral import pki
from corral.pki import Subject
from corralctl.clusterpki import ClusterPki
from nodeagent import credentials

NODE = Subject("system:node:n1", (pki.NODES_GROUP,))


def _certificate(ca: pki.KeyPair, attributes: list[tuple[x509.ObjectIdentifier, str]]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca.private_key(), hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _csr(attributes: list[tuple[x509.ObjectIdentifier, str]]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca()


# --- reading -------------------------------------------------------------------------------


def test_one_cn_is_the_user_and_each_o_a_group(ca: pki.KeyPair) -> None:
    pem = _certificate(
        ca,
        [
            (NameOID.ORGANIZATION_NAME, "a"),
            (NameOID.ORGANIZATION_NAME, "b"),
            (NameOID.COMMON_NAME, "alice"),
        ],
    )
    assert pki.identity_of_pem(pem) == Subject("alice", ("a", "b"))
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert pki.identity_of_der(der) == Subject("alice", ("a", "b"))


@pytest.mark.parametrize(
    "attributes",
    [
        [
            (NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
            (NameOID.COMMON_NAME, "system:node:evil"),
            (NameOID.COMMON_NAME, "system:kube-controller-manager"),
        ],
        [(NameOID.ORGANIZATION_NAME, pki.MASTERS_GROUP)],
    ],
    ids=["two-CNs", "no-CN"],
)
def test_a_certificate_naming_no_single_user_is_refused(
    ca: pki.KeyPair, attributes: list[tuple[x509.ObjectIdentifier, str]]
) -> None:
    pem = _certificate(ca, attributes)
    with pytest.raises(pki.CertificateError):
        pki.identity_of_pem(pem)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    with pytest.raises(pki.CertificateError):
        pki.identity_of_der(der)


def test_the_agents_caller_check_refuses_two_cns(ca: pki.KeyPair) -> None:
    class Context:
        def __init__(self, pem: bytes) -> None:
            self.pem = pem

        def auth_context(self) -> dict[str, Any]:
            return {"x509_pem_cert": [self.pem]}

    masters = [(NameOID.ORGANIZATION_NAME, pki.MASTERS_GROUP)]
    one = _certificate(ca, [*masters, (NameOID.COMMON_NAME, "corral-apiserver")])
    two = _certificate(
        ca, [*masters, (NameOID.COMMON_NAME, "system:node:a"), (NameOID.COMMON_NAME, "x")]
    )
    assert credentials.caller_allowed(Context(one))
    assert not credentials.caller_allowed(Context(two))


# --- signing -------------------------------------------------------------------------------


def test_a_client_certificate_is_built_from_the_expected_subject_only(ca: pki.KeyPair) -> None:
    csr, _ = pki.new_request(NODE.user, NODE.groups)
    pem = pki.sign_client_request(ca, csr, subject=NODE)
    cert = x509.load_pem_x509_certificate(pem)
    assert pki.identity_of_pem(pem) == NODE
    assert len(list(cert.subject)) == 2
    assert set(pki.extended_usages(pem)) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert pki.hosts_of(pem) == []


@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        (
            [
                (NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
                (NameOID.COMMON_NAME, NODE.user),
                (NameOID.COMMON_NAME, "system:kube-controller-manager"),
            ],
            "exactly one CN",
        ),
        (
            [
                (NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
                (NameOID.ORGANIZATION_NAME, pki.MASTERS_GROUP),
                (NameOID.COMMON_NAME, NODE.user),
            ],
            "O entries",
        ),
        (
            [
                (NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "x"),
                (NameOID.COMMON_NAME, NODE.user),
            ],
            "OU=x",
        ),
        ([(NameOID.ORGANIZATION_NAME, pki.NODES_GROUP)], "exactly one CN"),
    ],
)
def test_a_request_asking_for_more_than_its_subject_is_refused(
    ca: pki.KeyPair, attributes: list[tuple[x509.ObjectIdentifier, str]], words: str
) -> None:
    with pytest.raises(pki.CertificateError, match=words):
        pki.sign_client_request(ca, _csr(attributes), subject=NODE)
    with pytest.raises(pki.CertificateError, match=words):
        pki.sign_serving_request(ca, _csr(attributes), subject=NODE, allowed_hosts=lambda h: None)


def test_a_client_request_naming_hosts_is_refused(ca: pki.KeyPair) -> None:
    csr, _ = pki.new_request(NODE.user, NODE.groups, ["localhost", "127.0.0.1"])
    with pytest.raises(pki.CertificateError, match="localhost"):
        pki.sign_client_request(ca, csr, subject=NODE)


def test_a_serving_certificate_serves_only_the_hosts_allowed(ca: pki.KeyPair) -> None:
    allowed = {"n1", "10.0.0.5"}

    def check(host: str) -> str | None:
        return None if host in allowed else "not registered"

    csr, _ = pki.new_request(NODE.user, NODE.groups, ["n1", "10.0.0.5"])
    pem = pki.sign_serving_request(ca, csr, subject=NODE, allowed_hosts=check)
    assert set(pki.extended_usages(pem)) == {ExtendedKeyUsageOID.SERVER_AUTH}
    assert sorted(pki.hosts_of(pem)) == ["10.0.0.5", "n1"]
    refused, _ = pki.new_request(NODE.user, NODE.groups, ["n1", "127.0.0.1"])
    with pytest.raises(pki.CertificateError, match=re.escape("'127.0.0.1': not registered")):
        pki.sign_serving_request(ca, refused, subject=NODE, allowed_hosts=check)
    nameless, _ = pki.new_request(NODE.user, NODE.groups)
    with pytest.raises(pki.CertificateError, match="at least one host"):
        pki.sign_serving_request(ca, nameless, subject=NODE, allowed_hosts=check)


# --- the files ---------------------------------------------------------------------------


def test_ensure_makes_a_separate_node_serving_ca_also_on_an_existing_dir(tmp_path: Path) -> None:
    files = ClusterPki(tmp_path / "pki")
    files.ensure(["10.0.0.1"])
    assert files.node_serving_ca_cert.name == "node-serving-ca.crt"
    assert files.node_serving_ca_key.name == "node-serving-ca.key"
    serving_ca = files.node_serving_ca_cert.read_bytes()
    assert serving_ca != files.ca_cert.read_bytes()
    assert not pki.issued_by(files.apiserver_cert.read_bytes(), serving_ca)
    # A data dir from before the split: the cluster CA stays, the serving CA appears.
    cluster_ca = files.ca_cert.read_bytes()
    files.node_serving_ca_cert.unlink()
    files.node_serving_ca_key.unlink()
    files.ensure(["10.0.0.1"])
    assert files.ca_cert.read_bytes() == cluster_ca
    assert files.node_serving_ca_cert.exists() and files.node_serving_ca_key.exists()
    # And is kept from then on.
    kept = files.node_serving_ca_cert.read_bytes()
    files.ensure(["10.0.0.1"])
    assert files.node_serving_ca_cert.read_bytes() == kept


def test_an_agent_renews_a_client_certificate_that_could_serve(ca: pki.KeyPair) -> None:
    old = pki.issue(ca, NODE.user, NODE.groups, server=True, hosts=["n1", "127.0.0.1"])
    assert not credentials._usable(old, ca.cert_pem, "n1")
    csr, key = pki.new_request(NODE.user, NODE.groups)
    new = pki.KeyPair(pki.sign_client_request(ca, csr, subject=NODE), key)
    assert credentials._usable(new, ca.cert_pem, "n1")
