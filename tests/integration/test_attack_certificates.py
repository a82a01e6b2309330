"""Attacks on the node certificate signer, and on how certificates are read (issue 15).

Hole 1: a joining node asked for ``O=system:nodes, CN=system:node:evil,
CN=system:kube-controller-manager``; the signer read the first CN, HTTPS
the last, so a bootstrap token became the controller manager. Hole 4: the
same endpoint signed ``serverAuth`` for ``DNS:localhost``/``IP:127.0.0.1``,
and a client trusting the cluster CA took that node for the API server.

Everything here runs against the real API server process (the session's
``cluster``), over real HTTPS, gRPC and TLS handshakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from corral import pki
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client, ssl_context
from corral.proto import agent_pb2, agent_pb2_grpc
from corralctl.processes import ManagedProcess, free_port
from tests.conftest import LocalCluster, unique_name
from tests.support import eventually

pytestmark = pytest.mark.integration

PODS = REGISTRY.resolve("pods")
NODES = REGISTRY.resolve("nodes")
assert PODS is not None and NODES is not None


# --- helpers -----------------------------------------------------------------------------


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _csr(names: list[tuple[x509.ObjectIdentifier, str]], hosts: Sequence[str] = ()) -> bytes:
    """A real request with exactly the subject attributes given, as an attacker writes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(oid, value) for oid, value in names])
    )
    if hosts:
        alt: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _two_cn_certificate(ca: pki.KeyPair, first: str, last: str, group: str) -> pki.KeyPair:
    """Signed by the cluster CA itself, since the signer no longer signs such a subject."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = ca.certificate
    now = ca_cert.not_valid_before_utc
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, group),
                    x509.NameAttribute(NameOID.COMMON_NAME, first),
                    x509.NameAttribute(NameOID.COMMON_NAME, last),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(ca_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.private_key(), hashes.SHA256())
    )
    return pki.KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _bootstrap(cluster: LocalCluster) -> ClientConfig:
    return ClientConfig(
        server=cluster.url, ca_data=cluster.pki.ca_cert.read_bytes(), token=cluster.bootstrap_token
    )


def _as(cluster: LocalCluster, pair: pki.KeyPair) -> ClientConfig:
    return ClientConfig(
        server=cluster.url,
        ca_data=cluster.pki.ca_cert.read_bytes(),
        client_cert_data=pair.cert_pem,
        client_key_data=pair.key_pem,
    )


async def _ask(config: ClientConfig, body: dict[str, str]) -> dict[str, str]:
    async with Client(config) as client:
        reply = await client.request("POST", pki.NODE_CERTIFICATE_PATH, body=body)
    assert isinstance(reply, dict)
    return reply


async def _refused(config: ClientConfig, body: dict[str, str]) -> ApiError:
    with pytest.raises(ApiError) as refused:
        await _ask(config, body)
    return refused.value


def _fields(error: ApiError) -> list[str]:
    return [cause.field for cause in error.causes]


async def _join(cluster: LocalCluster, node: str) -> pki.KeyPair:
    """A node client certificate, the way an agent joins: a bootstrap token and a CSR."""
    csr, key = pki.new_request(f"{pki.NODE_USER_PREFIX}{node}", [pki.NODES_GROUP])
    reply = await _ask(_bootstrap(cluster), {"nodeName": node, "csr": csr.decode()})
    return pki.KeyPair(reply["certificate"].encode(), key)


def _grpc_channel(cluster: LocalCluster, pair: pki.KeyPair) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=cluster.pki.ca_cert.read_bytes(),
        private_key=pair.key_pem,
        certificate_chain=pair.cert_pem,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{cluster.apiserver.agent_port}", credentials)


async def _register(cluster: LocalCluster, pair: pki.KeyPair, node: str, ip: str) -> None:
    async with _grpc_channel(cluster, pair) as channel:
        await agent_pb2_grpc.NodeControlStub(channel).Register(
            agent_pb2.RegisterRequest(
                node_name=node,
                capacity={"cpu": "1", "memory": "1Gi", "pods": "10"},
                allocatable={"cpu": "1", "memory": "1Gi", "pods": "10"},
                addresses=[
                    agent_pb2.Address(type="InternalIP", address=ip),
                    agent_pb2.Address(type="Hostname", address=node),
                ],
                agent_port=10250,
                agent_host=ip,
            ),
            timeout=15,
        )


def _usages(cert_pem: bytes) -> set[x509.ObjectIdentifier]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _sans(cert_pem: bytes) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in san]


# --- hole 1: two CNs ---------------------------------------------------------------------


async def test_a_request_with_two_common_names_is_refused_naming_csr(
    cluster: LocalCluster,
) -> None:
    csr = _csr(
        [
            (NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
            (NameOID.COMMON_NAME, "system:node:evil"),
            (NameOID.COMMON_NAME, "system:kube-controller-manager"),
        ]
    )
    refused = await _refused(_bootstrap(cluster), {"nodeName": "evil", "csr": csr.decode()})
    assert refused.code == 422, refused
    assert _fields(refused) == ["csr"]
    assert "exactly one CN" in refused.causes[0].message


@pytest.mark.parametrize(
    "names",
    [
        # A group beside system:nodes would be a group the node is not in.
        [
            (NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
            (NameOID.ORGANIZATION_NAME, pki.MASTERS_GROUP),
            (NameOID.COMMON_NAME, "system:node:evil"),
        ],
        [
            (NameOID.ORGANIZATION_NAME, pki.NODES_GROUP),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "extra"),
            (NameOID.COMMON_NAME, "system:node:evil"),
        ],
        [(NameOID.COMMON_NAME, "system:node:evil")],
    ],
    ids=["extra-O", "other-attribute", "no-O"],
)
async def test_a_subject_with_anything_but_the_nodes_own_is_refused(
    cluster: LocalCluster, names: list[tuple[x509.ObjectIdentifier, str]]
) -> None:
    refused = await _refused(_bootstrap(cluster), {"nodeName": "evil", "csr": _csr(names).decode()})
    assert refused.code == 422 and _fields(refused) == ["csr"], refused


async def test_a_cluster_ca_certificate_with_two_common_names_authenticates_nobody(
    cluster: LocalCluster,
) -> None:
    ca = cluster.pki.ca()
    forged = _two_cn_certificate(
        ca, "system:node:evil", "system:kube-controller-manager", pki.NODES_GROUP
    )
    async with Client(_as(cluster, forged)) as client:
        with pytest.raises(ApiError) as refused:
            await client.request("GET", "/api/v1/secrets")
    assert refused.value.code == 401, refused.value
    # The same CA and the last CN alone is the controller manager, who may
    # list Secrets: the 401 above is the two CNs, not the CA or the user.
    alone = pki.issue(ca, "system:kube-controller-manager")
    async with Client(_as(cluster, alone)) as client:
        listed = await client.request("GET", "/api/v1/secrets")
    assert listed["kind"] == "SecretList"


async def test_the_agent_api_refuses_a_certificate_with_two_common_names(
    cluster: LocalCluster,
) -> None:
    node = unique_name("evil")
    forged = _two_cn_certificate(
        cluster.pki.ca(), f"{pki.NODE_USER_PREFIX}{node}", "system:kube-scheduler", pki.NODES_GROUP
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _register(cluster, forged, node, "127.0.0.1")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "exactly one CN" in (refused.value.details() or "")


# --- hole 4: node certificates that serve ------------------------------------------------


async def test_a_client_certificate_request_naming_hosts_is_refused(
    cluster: LocalCluster,
) -> None:
    node = unique_name("sans")
    csr, _ = pki.new_request(
        f"{pki.NODE_USER_PREFIX}{node}", [pki.NODES_GROUP], ["localhost", "127.0.0.1"]
    )
    refused = await _refused(_bootstrap(cluster), {"nodeName": node, "csr": csr.decode()})
    assert refused.code == 422 and _fields(refused) == ["csr"], refused
    assert "localhost" in refused.causes[0].message


async def test_a_node_client_certificate_is_client_only_with_no_names(
    cluster: LocalCluster,
) -> None:
    pair = await _join(cluster, unique_name("client"))
    assert _usages(pair.cert_pem) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _sans(pair.cert_pem) == []


@pytest.fixture
async def registered(cluster: LocalCluster) -> AsyncIterator[tuple[str, pki.KeyPair]]:
    """A node that joined and registered 127.0.0.1 as its InternalIP."""
    node = unique_name("served")
    pair = await _join(cluster, node)
    await _register(cluster, pair, node, "127.0.0.1")
    yield node, pair


async def _serving(
    cluster: LocalCluster, pair: pki.KeyPair, node: str, hosts: list[str]
) -> pki.KeyPair:
    csr, key = pki.new_request(f"{pki.NODE_USER_PREFIX}{node}", [pki.NODES_GROUP], hosts)
    reply = await _ask(
        _as(cluster, pair), {"nodeName": node, "csr": csr.decode(), "usage": "serving"}
    )
    assert reply["ca"].encode() == cluster.pki.node_serving_ca_cert.read_bytes()
    return pki.KeyPair(reply["certificate"].encode(), key)


async def test_a_serving_certificate_names_only_registered_addresses(
    cluster: LocalCluster, registered: tuple[str, pki.KeyPair]
) -> None:
    node, pair = registered
    serving = await _serving(cluster, pair, node, [node, "127.0.0.1"])
    assert _usages(serving.cert_pem) == {ExtendedKeyUsageOID.SERVER_AUTH}
    assert sorted(_sans(serving.cert_pem)) == sorted([node, "127.0.0.1"])
    assert pki.issued_by(serving.cert_pem, cluster.pki.node_serving_ca_cert.read_bytes())
    assert not pki.issued_by(serving.cert_pem, cluster.pki.ca_cert.read_bytes())

    for wrong in ("localhost", "10.9.9.9", "kubernetes"):
        csr, _ = pki.new_request(f"{pki.NODE_USER_PREFIX}{node}", [pki.NODES_GROUP], [wrong])
        refused = await _refused(
            _as(cluster, pair), {"nodeName": node, "csr": csr.decode(), "usage": "serving"}
        )
        assert refused.code == 422 and _fields(refused) == ["csr"], refused
        assert repr(wrong) in refused.causes[0].message


async def test_only_a_registered_node_itself_gets_a_serving_certificate(
    cluster: LocalCluster, registered: tuple[str, pki.KeyPair]
) -> None:
    node, pair = registered
    csr, _ = pki.new_request(f"{pki.NODE_USER_PREFIX}{node}", [pki.NODES_GROUP], [node])
    body = {"nodeName": node, "csr": csr.decode(), "usage": "serving"}
    # A bootstrap token is no node.
    assert (await _refused(_bootstrap(cluster), body)).code == 403
    # Another node is not this one.
    other = await _join(cluster, unique_name("other"))
    assert (await _refused(_as(cluster, other), body)).code == 403
    # A node that has not registered has no addresses to be served at.
    unregistered = unique_name("unregistered")
    fresh = await _join(cluster, unregistered)
    csr, _ = pki.new_request(
        f"{pki.NODE_USER_PREFIX}{unregistered}", [pki.NODES_GROUP], [unregistered]
    )
    refused = await _refused(
        _as(cluster, fresh), {"nodeName": unregistered, "csr": csr.decode(), "usage": "serving"}
    )
    assert refused.code == 422 and _fields(refused) == ["nodeName"], refused
    # And the node itself, registered, gets it with the very same request.
    assert _sans((await _ask(_as(cluster, pair), body))["certificate"].encode()) == [node]


# --- hole 4: a real handshake --------------------------------------------------------------


async def _handshake(server_pair: pki.KeyPair, client: ssl.SSLContext, tmp: Path) -> None:
    """Serve ``server_pair`` on a loopback port and connect to it as ``localhost``."""
    tmp.mkdir(parents=True, exist_ok=True)
    cert, key = tmp / "server.crt", tmp / "server.key"
    pki.write_pair(server_pair, cert, key)
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=serving)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        writer.close()
    finally:
        server.close()


def _api_client_context(cluster: LocalCluster) -> ssl.SSLContext:
    """What corral's REST client trusts: the kubeconfig's cluster CA, nothing else."""
    context = ssl_context(
        ClientConfig(server=cluster.url, ca_data=cluster.pki.ca_cert.read_bytes())
    )
    assert isinstance(context, ssl.SSLContext)
    return context


async def test_the_handshake_harness_accepts_what_the_old_signer_issued(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    # What hole 4 handed out: serverAuth for localhost from the cluster CA.
    # Accepted, so the refusals below are the certificates', not the harness's.
    old = pki.issue(
        cluster.pki.ca(),
        "system:node:evil",
        [pki.NODES_GROUP],
        server=True,
        hosts=["localhost", "127.0.0.1"],
    )
    await _handshake(old, _api_client_context(cluster), tmp_path)


async def test_an_api_client_refuses_a_node_client_certificate_as_a_server(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    pair = await _join(cluster, unique_name("impostor"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(pair, _api_client_context(cluster), tmp_path)


async def test_an_api_client_refuses_a_node_serving_certificate(
    cluster: LocalCluster, registered: tuple[str, pki.KeyPair], tmp_path: Path
) -> None:
    node, pair = registered
    serving = await _serving(cluster, pair, node, [node, "127.0.0.1"])
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        await _handshake(serving, _api_client_context(cluster), tmp_path / "api-client")
    assert "unable to get local issuer certificate" in str(refused.value)
    # The API server, which trusts the node serving CA, accepts it for the node.
    proxy_side = ssl.create_default_context(cafile=str(cluster.pki.node_serving_ca_cert))
    proxy_side.check_hostname = False
    await _handshake(serving, proxy_side, tmp_path / "proxy")


# --- a real agent: the serving certificate in use ------------------------------------------


async def test_a_joined_agent_serves_logs_with_a_certificate_only_the_api_server_trusts(
    cluster: LocalCluster, client: Client, namespace: str, tmp_path: Path
) -> None:
    node = unique_name("agent")
    data_dir = tmp_path / node

    def start() -> ManagedProcess:
        agent = ManagedProcess(
            node,
            [
                sys.executable,
                "-m",
                "nodeagent",
                *cluster.agent_args(node),
                "--runtime",
                "hollow",
                "--data-dir",
                str(data_dir),
                "--listen-port",
                str(free_port()),
            ],
            tmp_path / f"{node}.log",
        )
        agent.start()
        return agent

    pod = {
        "metadata": {"name": "p"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }
    await client.create(PODS, pod, namespace)

    async def logs() -> bool | None:
        try:
            await client.request_bytes(
                "GET", f"/api/v1/namespaces/{namespace}/pods/p/log", accept="text/plain"
            )
        except ApiError:
            return None
        return True

    agent = start()
    try:
        # 200 only when the API server's TLS to the agent held: a serving
        # certificate from the node serving CA, naming the node.
        await eventually(logs, timeout=60, interval=0.2, message="logs through the agent")
        serving = (data_dir / "pki" / "node-serving.crt").read_bytes()
        assert pki.issued_by(serving, cluster.pki.node_serving_ca_cert.read_bytes())
        assert _usages(serving) == {ExtendedKeyUsageOID.SERVER_AUTH}
        assert sorted(_sans(serving)) == sorted([node, "127.0.0.1"])
        client_cert = (data_dir / "pki" / "node.crt").read_bytes()
        assert _usages(client_cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
        assert _sans(client_cert) == []
        # A restart keeps both certificates and serves again.
        agent.stop()
        agent = start()
        await eventually(logs, timeout=60, interval=0.2, message="logs after a restart")
        assert (data_dir / "pki" / "node-serving.crt").read_bytes() == serving
    finally:
        agent.stop()
        with contextlib.suppress(ApiError):
            await client.delete(NODES, node)
