"""The cluster's certificate authorities, and the certificates they sign.

The cluster CA signs the API server's serving certificate and every client
certificate (the admin's, the components', each node's). A second CA, the
node serving CA, signs only the certificates node agents serve their logs
and exec port with; only the API server trusts it, so no client of the API
server (which trusts the cluster CA alone) can take a node for the API
server. As in Kubernetes, a client certificate's one CN is the user and its
O entries are the groups.

Keys are ECDSA P-256: as strong as RSA-3072 for this purpose, and signing a
node's certificate or completing a handshake costs a fraction of the CPU.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 10
LEAF_DAYS = 365
# Certificates start a little in the past so that a node whose clock is
# slightly behind the CA's does not reject a freshly issued one.
_BACKDATE = datetime.timedelta(minutes=5)

ADMIN_USER = "corral-admin"
MASTERS_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
APISERVER_CLIENT_USER = "corral-apiserver"
# Where the API server signs node certificates for joining agents.
NODE_CERTIFICATE_PATH = "/corral/v1/node-certificate"


class CertificateError(Exception):
    """A certificate or request that cannot be used for what was asked."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError("expected an ECDSA private key")
        return key


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a certificate names: the user (CN) and the groups (O)."""

    user: str
    groups: tuple[str, ...]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def new_ca(common_name: str = "corral-ca") -> KeyPair:
    key = _new_key()
    name = _name(common_name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _alt_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _sign(
    ca: KeyPair,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    server: bool,
    client: bool,
    hosts: Sequence[str],
    days: int,
) -> bytes:
    ca_cert = ca.certificate
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key().public_key()),
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), False)
    cert = builder.sign(ca.private_key(), hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(
    ca: KeyPair,
    common_name: str,
    organizations: Sequence[str] = (),
    *,
    server: bool = False,
    client: bool = True,
    hosts: Sequence[str] = (),
    days: int = LEAF_DAYS,
) -> KeyPair:
    """A fresh key and a certificate for it, signed by ``ca``."""
    key = _new_key()
    cert = _sign(
        ca,
        _name(common_name, organizations),
        key.public_key(),
        server=server,
        client=client,
        hosts=hosts,
        days=days,
    )
    return KeyPair(cert, _key_pem(key))


def new_request(
    common_name: str, organizations: Sequence[str] = (), hosts: Sequence[str] = ()
) -> tuple[bytes, bytes]:
    """A key and a certificate signing request for it: ``(csr_pem, key_pem)``."""
    key = _new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        _name(common_name, organizations)
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _load_request(csr_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as error:
        raise CertificateError(f"not a PEM certificate signing request: {error}") from None
    if not csr.is_signature_valid:
        raise CertificateError("the request's signature does not match its key")
    return csr


def _check_request_subject(name: x509.Name, expected: Subject) -> None:
    """Refuse a request whose subject is anything but ``expected``, attribute by attribute.

    The signed certificate's subject is built from ``expected`` alone, never
    copied, but a request asking for more than it may have is refused rather
    than quietly trimmed: the requester should learn its request was wrong.
    """
    allowed = {NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME}
    others = [a.rfc4514_string() for a in name if a.oid not in allowed]
    if others:
        raise CertificateError(
            f"the request's subject may hold only CN and O; it also has {', '.join(others)}"
        )
    common = [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if common != [expected.user]:
        raise CertificateError(
            f"the request's subject must have exactly one CN, {expected.user!r}; it has {common}"
        )
    groups = [str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if sorted(groups) != sorted(expected.groups):
        raise CertificateError(
            f"the request's subject must have the O entries {list(expected.groups)}; "
            f"it has {groups}"
        )


def requested_hosts(csr: x509.CertificateSigningRequest) -> list[str]:
    """The DNS names and IP addresses a request asks for; other kinds of names are refused."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    hosts = [str(v) for v in san.get_values_for_type(x509.DNSName)]
    hosts += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    if len(hosts) != len(san):
        raise CertificateError("the request may name only DNS names and IP addresses")
    return hosts


def _request_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CertificateError("the request must use an ECDSA key")
    return public_key


def sign_client_request(
    ca: KeyPair, csr_pem: bytes, *, subject: Subject, days: int = LEAF_DAYS
) -> bytes:
    """A client-only certificate for ``subject``, for the key a request proves it holds.

    The requester proves it holds the key (the request's signature); who it
    is was decided by the caller, never by the request. A client
    certificate names no hosts, so it can never serve TLS for one.
    """
    csr = _load_request(csr_pem)
    public_key = _request_key(csr)
    _check_request_subject(csr.subject, subject)
    hosts = requested_hosts(csr)
    if hosts:
        raise CertificateError(
            f"a client certificate names no hosts; the request asks for {', '.join(hosts)}"
        )
    return _sign(
        ca,
        _name(subject.user, subject.groups),
        public_key,
        server=False,
        client=True,
        hosts=(),
        days=days,
    )


def sign_serving_request(
    ca: KeyPair,
    csr_pem: bytes,
    *,
    subject: Subject,
    allowed_hosts: Callable[[str], str | None],
    max_hosts: int = 16,
    days: int = LEAF_DAYS,
) -> bytes:
    """A serving-only certificate for ``subject`` naming only hosts the caller allows.

    ``allowed_hosts(host)`` answers None for a host the requester may be
    called, else why it may not.
    """
    csr = _load_request(csr_pem)
    public_key = _request_key(csr)
    _check_request_subject(csr.subject, subject)
    hosts = requested_hosts(csr)
    if not hosts:
        raise CertificateError("a serving certificate must name at least one host")
    if len(hosts) > max_hosts:
        raise CertificateError(f"the request names {len(hosts)} hosts; at most {max_hosts}")
    for host in hosts:
        problem = allowed_hosts(host)
        if problem is not None:
            raise CertificateError(f"the request names {host!r}: {problem}")
    return _sign(
        ca,
        _name(subject.user, subject.groups),
        public_key,
        server=True,
        client=False,
        hosts=hosts,
        days=days,
    )


def identity_of_certificate(cert: x509.Certificate) -> Subject:
    """Who a certificate names: its one CN is the user, its O entries the groups.

    The one place an identity is read from a certificate. A subject with
    several CNs is refused rather than read: readers that took the first
    and readers that took the last would each see a different user.
    """
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(common) != 1:
        raise CertificateError(
            f"a certificate must name exactly one CN to identify anyone; this one has "
            f"{len(common)}: {[str(a.value) for a in common]}"
        )
    user = str(common[0].value)
    if not user:
        raise CertificateError("the certificate's CN is empty")
    groups = tuple(
        str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    return Subject(user, groups)


def identity_of_pem(cert_pem: bytes) -> Subject:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as error:
        raise CertificateError(f"not a PEM certificate: {error}") from None
    return identity_of_certificate(cert)


def identity_of_der(cert_der: bytes) -> Subject:
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError as error:
        raise CertificateError(f"not a DER certificate: {error}") from None
    return identity_of_certificate(cert)


def hosts_of(cert_pem: bytes) -> list[str]:
    """The DNS names and IP addresses a certificate names (its SANs)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    hosts = [str(v) for v in san.get_values_for_type(x509.DNSName)]
    return hosts + [str(v) for v in san.get_values_for_type(x509.IPAddress)]


def extended_usages(cert_pem: bytes) -> set[x509.ObjectIdentifier]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def expires_within(cert_pem: bytes, seconds: float) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_after_utc - _now() < datetime.timedelta(seconds=seconds)


def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether ``ca_pem`` signed ``cert_pem`` (so a stale certificate from another CA is redone)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def new_token() -> str:
    """A bearer token with 256 bits of randomness."""
    return secrets.token_urlsafe(32)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_pair(cert_path: Path, key_path: Path) -> KeyPair:
    return KeyPair(cert_path.read_bytes(), key_path.read_bytes())


def write_pair(pair: KeyPair, cert_path: Path, key_path: Path) -> None:
    write_private(key_path, pair.key_pem)
    write_private(cert_path, pair.cert_pem)
