"""TLS 1.2+ with AEAD ciphers only: the API server's context, corral's client, the gRPC servers.

Each refusal is a real handshake over loopback, and each weak client is first
shown to succeed against a permissive server, so a refusal is the policy's
doing and not a client that could not have spoken anyway.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from controlplane.apiserver.serving import PolicyConfig
from corral import pki, tlspolicy
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import ssl_context


@dataclass
class Pki:
    ca: pki.KeyPair
    cert: Path
    key: Path
    ca_file: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("tls")
    ca = pki.new_ca()
    leaf = pki.issue(ca, "apiserver", server=True, hosts=["127.0.0.1"])
    cert, key, ca_file = root / "cert.pem", root / "key.pem", root / "ca.pem"
    pki.write_pair(leaf, cert, key)
    ca_file.write_bytes(ca.cert_pem)
    return Pki(ca, cert, key, ca_file)


async def _asgi(scope: object, receive: object, send: object) -> None:
    raise AssertionError("no request is served: only handshakes")


def apiserver_context(certs: Pki) -> ssl.SSLContext:
    """The context the API server listens with, built as main() builds it."""
    config = PolicyConfig(
        _asgi,
        ssl_certfile=str(certs.cert),
        ssl_keyfile=str(certs.key),
        ssl_ca_certs=str(certs.ca_file),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        log_config=None,
        lifespan="off",
    )
    config.load()
    assert config.ssl is not None
    return config.ssl


def permissive_context(certs: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert, certs.key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


@dataclass(frozen=True)
class Offer:
    """What a client offers: a TLS version range and a cipher list."""

    name: str
    maximum: ssl.TLSVersion
    ciphers: str

    def context(self, certs: Pki) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(certs.ca_file)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = self.maximum
        context.set_ciphers(self.ciphers)
        return context


TLS11 = Offer("TLS 1.1", ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0")
CBC = Offer(
    "TLS 1.2, CBC ciphers only",
    ssl.TLSVersion.TLSv1_2,
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:"
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0",
)
NULL_AND_OLD = Offer(
    "TLS 1.2, no AEAD at all",
    ssl.TLSVersion.TLSv1_2,
    "ALL:!AESGCM:!CHACHA20:!AESCCM:!ARIAGCM:@SECLEVEL=0",
)
WEAK = [TLS11, CBC, NULL_AND_OLD]


async def handshake(port: int, client: ssl.SSLContext) -> tuple[str, str]:
    """The version and cipher agreed, or the SSLError of a refused handshake."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="127.0.0.1"), 10
    )
    ssl_object = writer.get_extra_info("ssl_object")
    agreed = (ssl_object.version(), ssl_object.cipher()[0])
    # Only the handshake matters; a TLS close_notify exchange could wait on
    # a peer (gRPC) that never answers one.
    writer.transport.abort()
    return agreed


class Listener:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=self.context)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture(autouse=True)
def quiet_failed_handshakes(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # A refused handshake is logged by asyncio's server side; that is the point.
    caplog.set_level("CRITICAL", logger="asyncio")
    yield


@pytest.mark.parametrize("offer", WEAK, ids=lambda o: o.name)
async def test_a_weak_client_could_connect_to_a_permissive_server(certs: Pki, offer: Offer) -> None:
    async with Listener(permissive_context(certs)) as port:
        version, _ = await handshake(port, offer.context(certs))
    assert version in ("TLSv1.1", "TLSv1.2")


@pytest.mark.parametrize("offer", WEAK, ids=lambda o: o.name)
async def test_the_apiserver_refuses_old_tls_and_ciphers_without_aead(
    certs: Pki, offer: Offer
) -> None:
    async with Listener(apiserver_context(certs)) as port:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(port, offer.context(certs))


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
)
async def test_the_apiserver_speaks_tls12_and_13_with_aead(
    certs: Pki, maximum: ssl.TLSVersion, expected: str
) -> None:
    client = ssl.create_default_context(cafile=str(certs.ca_file))
    client.maximum_version = maximum
    async with Listener(apiserver_context(certs)) as port:
        version, cipher = await handshake(port, client)
    assert version == expected
    assert "GCM" in cipher or "CHACHA20" in cipher


def test_every_tls12_cipher_the_policy_allows_is_ecdhe_and_aead(certs: Pki) -> None:
    for context in (apiserver_context(certs), tlspolicy.apply(ssl.create_default_context())):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert tls12, "no TLS 1.2 suite left"
        for cipher in tls12:
            assert cipher["aead"], cipher["name"]
            assert cipher["kea"] == "kx-ecdhe", cipher["name"]


@pytest.mark.parametrize("insecure", [False, True], ids=["verifying", "insecure-skip-verify"])
async def test_corrals_client_refuses_a_server_that_offers_only_tls11(
    certs: Pki, insecure: bool
) -> None:
    config = ClientConfig(
        server="https://127.0.0.1:1",
        ca_data=None if insecure else certs.ca.cert_pem,
        insecure_skip_tls_verify=insecure,
    )
    client = ssl_context(config)
    assert isinstance(client, ssl.SSLContext)
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    old_server = permissive_context(certs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old_server.maximum_version = ssl.TLSVersion.TLSv1_1
    async with Listener(old_server) as port:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(port, client)


async def test_the_grpc_servers_boringssl_defaults_refuse_the_same(certs: Pki) -> None:
    # grpcio has no cipher or version setting per server: the agent API and
    # the node agents rely on these defaults, and this test notices a change.
    server = grpc.aio.server()
    key, cert = certs.key.read_bytes(), certs.cert.read_bytes()
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    await server.start()
    try:
        for offer in WEAK:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await handshake(port, offer.context(certs))
        modern = ssl.create_default_context(cafile=str(certs.ca_file))
        modern.set_alpn_protocols(["h2"])
        modern.maximum_version = ssl.TLSVersion.TLSv1_2
        version, cipher = await handshake(port, modern)
        assert (version, "GCM" in cipher) == ("TLSv1.2", True)
    finally:
        await server.stop(None)
