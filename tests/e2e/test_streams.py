"""Exec and port-forward through the real kubectl and the official Python client.

A real agent runs a busybox pod with real dockerd; every stream goes client
-> API server -> agent (gRPC, mutual TLS) -> the container or the pod's
network namespace, and bytes are checked both ways.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import socket
import subprocess
import time
import urllib.parse
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import websockets
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import portforward, stream
from websockets.exceptions import InvalidStatus

from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corralctl.processes import free_port
from tests.conftest import LocalCluster
from tests.e2e.conftest import TEST_IMAGE, Agents, wait_for_node
from tests.support import eventually

PODS = REGISTRY.resolve("pods")
assert PODS is not None
HTTP_PORT = 8080
ECHO_PORT = 9000
UPLOAD_PORT = 9001  # stores what a connection sends, up to its end, in /tmp/upload
UPLOAD = bytes(range(256)) * 16384  # 4 MB, every byte value
LISTENING = (
    f"test $(busybox netstat -ltn | grep -cE ':({HTTP_PORT}|{ECHO_PORT}|{UPLOAD_PORT}) ') = 3"
)
# /www/big: 1.3 MB, many frames in every layer (WebSocket, SPDY, gRPC).
BIG = "".join(f"{i}\n" for i in range(1, 200001)).encode()
PONG_LOOP = 'while read line; do echo "${line/ping/PONG}"; done'


@dataclass
class RunningPod:
    namespace: str
    name: str


def _web_pod(name: str, node: str) -> dict[str, Any]:
    # httpd serves a known page; nc answers each line with "ping" turned to
    # "PONG", so an answer cannot be mistaken for the relay looping back.
    command = (
        "mkdir -p /www; echo hello from the pod > /www/index.html; seq 1 200000 > /www/big; "
        "httpd -p 8080 -h /www; "
        f"echo '{PONG_LOOP}' > /tmp/pong; "
        "echo 'cat > /tmp/upload.part && mv /tmp/upload.part /tmp/upload' > /tmp/store; "
        # -ll: one listener for good, a child per connection (no gap between two).
        f"nc -ll -p {UPLOAD_PORT} -e sh /tmp/store & "
        f"exec nc -ll -p {ECHO_PORT} -e sh /tmp/pong"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "main",
                    "image": TEST_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", command],
                    # Ready once all three ports listen: Running alone comes first.
                    "readinessProbe": {
                        "exec": {"command": ["sh", "-c", LISTENING]},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }


@pytest.fixture
async def web(
    cluster: LocalCluster, client: Client, namespace: str, agents: Agents
) -> AsyncIterator[RunningPod]:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    await client.create(PODS, _web_pod("web", agent.node), namespace)

    async def ready() -> bool:
        status = (await client.get(PODS, "web", namespace)).get("status") or {}
        conditions = status.get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    await eventually(ready, timeout=120, message="the pod never became ready")
    yield RunningPod(namespace, "web")


def _api(cluster: LocalCluster) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def _drop_client_sockets() -> None:
    """Collect the sockets the Python client's preloaded stream() leaves open.

    stream() reads to the server's close and returns the text, but never
    closes its WebSocket (the client's leak, not the server's): collected
    later, in another test, the socket would fail that one.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _kubectl_env(cluster: LocalCluster) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}


# --- exec ---------------------------------------------------------------------------------


async def test_python_client_exec_returns_output(cluster: LocalCluster, web: RunningPod) -> None:
    api = _api(cluster)

    def run() -> str:
        return str(
            stream(
                api.connect_get_namespaced_pod_exec,
                web.name,
                web.namespace,
                command=["sh", "-c", "echo out; echo err >&2"],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
            )
        )

    output = await asyncio.to_thread(run)
    _drop_client_sockets()
    assert "out\n" in output and "err\n" in output


async def test_python_client_exec_over_v4_and_early_close(
    cluster: LocalCluster, web: RunningPod
) -> None:
    api = _api(cluster)

    def run_v4() -> str:
        return str(
            stream(
                api.connect_get_namespaced_pod_exec,
                web.name,
                web.namespace,
                command=["echo", "over v4"],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _headers={"sec-websocket-protocol": "v4.channel.k8s.io"},
            )
        )

    assert await asyncio.to_thread(run_v4) == "over v4\n"
    _drop_client_sockets()

    def interactive() -> str:
        # The client reads what it needs and closes while the command still runs.
        session = stream(
            api.connect_get_namespaced_pod_exec,
            web.name,
            web.namespace,
            command=["sh", "-c", PONG_LOOP + " # early-close"],
            stderr=True,
            stdin=True,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        try:
            session.write_stdin("ping 1\n")
            seen = ""
            deadline = time.monotonic() + 20
            while "PONG 1" not in seen and time.monotonic() < deadline:
                session.update(timeout=1)
                seen += session.read_stdout() or ""
            return seen
        finally:
            session.close()

    assert await asyncio.to_thread(interactive) == "PONG 1\n"

    # The session ended with the client: its shell saw stdin close and exited.
    def shells_left() -> str:
        return str(
            stream(
                api.connect_get_namespaced_pod_exec,
                web.name,
                web.namespace,
                command=["sh", "-c", "grep -l 'early-clos[e]' /proc/[0-9]*/cmdline || true"],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
            )
        )

    async def none_left() -> bool:
        left = await asyncio.to_thread(shells_left)
        _drop_client_sockets()
        # The bracket keeps the grep from finding its own command line.
        return left.strip() == ""

    await eventually(none_left, timeout=20, message="the exec'd shell outlived its client")


def _exec_url(cluster: LocalCluster, pod: RunningPod, command: list[str], stdin: bool) -> str:
    base = cluster.url.replace("https://", "wss://")
    query = urllib.parse.urlencode([("command", c) for c in command])
    return (
        f"{base}/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/exec?{query}"
        f"&stdout=true&stderr=true&stdin={'true' if stdin else 'false'}"
    )


def _frame(protocol: str, channel: int, data: bytes) -> bytes | str:
    if "base64" in protocol:
        return str(channel) + base64.b64encode(data).decode()
    return bytes([channel]) + data


def _unframe(protocol: str, message: bytes | str) -> tuple[int, bytes]:
    if isinstance(message, str):
        assert "base64" in protocol, f"a text message on {protocol}"
        return int(message[0]), base64.b64decode(message[1:])
    assert "base64" not in protocol, f"a binary message on {protocol}"
    return message[0], message[1:]


async def _exec_raw(
    cluster: LocalCluster, pod: RunningPod, protocol: str, script: str
) -> tuple[str | None, dict[int, bytes]]:
    """Run ``script`` with "hello" on stdin, over ``protocol``; (answered protocol, channels)."""
    url = _exec_url(cluster, pod, ["sh", "-c", script], stdin=True)
    offered = [protocol] if protocol else None
    channels: dict[int, bytes] = {}
    async with websockets.connect(
        url,
        ssl=cluster.ssl_context(),
        subprotocols=offered,  # type: ignore[arg-type]
    ) as ws:
        await ws.send(_frame(protocol, 0, b"hello\n"))
        if protocol.startswith("v5"):
            await ws.send(bytes([255, 0]))
        async with asyncio.timeout(20):
            async for message in ws:
                channel, data = _unframe(protocol, message)
                channels[channel] = channels.get(channel, b"") + data
        return ws.subprotocol, channels


@pytest.mark.parametrize(
    "protocol",
    [
        "v5.channel.k8s.io",
        "v4.channel.k8s.io",
        "v4.base64.channel.k8s.io",
        "channel.k8s.io",
        "base64.channel.k8s.io",
        "",
    ],
)
async def test_every_exec_channel_protocol_carries_bytes_both_ways(
    cluster: LocalCluster, web: RunningPod, protocol: str
) -> None:
    # v5 closes stdin by its close channel, so cat ends; the others read one line.
    script = (
        "cat; echo bye >&2; exit 3"
        if protocol.startswith("v5")
        else ("read x; echo got $x; echo bye >&2; exit 3")
    )
    answered, channels = await _exec_raw(cluster, web, protocol, script)
    assert answered == (protocol or None)
    expected = b"hello\n" if protocol.startswith("v5") else b"got hello\n"
    assert channels.get(1) == expected
    assert channels.get(2) == b"bye\n"
    error = channels.get(3, b"")
    if protocol.startswith(("v4", "v5")):
        status = json.loads(error)
        assert status["status"] == "Failure"
        assert status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    else:
        assert error == b"command terminated with non-zero exit code: exit status 3"


async def test_exec_refuses_an_unknown_protocol_with_a_status(
    cluster: LocalCluster, web: RunningPod
) -> None:
    url = _exec_url(cluster, web, ["true"], stdin=False)
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            url,
            ssl=cluster.ssl_context(),
            subprotocols=["v9.channel.k8s.io"],  # type: ignore[list-item]
        ):
            pass
    response = refused.value.response
    assert response.status_code == 400
    assert b"v5.channel.k8s.io" in response.body


async def test_kubectl_exec_with_stdin(cluster: LocalCluster, web: RunningPod) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", "exec", "-i", "-n", web.namespace, web.name, "--", "sh", "-c", PONG_LOOP],
        input="ping from kubectl\n",
        env=_kubectl_env(cluster),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "PONG from kubectl\n"


# --- port-forward ---------------------------------------------------------------------------


def _http_get(sock: Any) -> bytes:
    """The page, read up to its end: the session may keep the connection's EOF back."""
    sock.sendall(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
    answer = b""
    while not answer.endswith(b"hello from the pod\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def _http_get_big(sock: Any) -> bytes:
    """/big's body, read to the connection's end (HTTP/1.0: the server closes)."""
    sock.sendall(b"GET /big HTTP/1.0\r\nHost: pod\r\n\r\n")
    answer = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        answer += chunk
    return answer.split(b"\r\n\r\n", 1)[1]


def _echo(sock: Any, text: bytes) -> bytes:
    sock.sendall(text)
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


async def test_python_client_port_forward(cluster: LocalCluster, web: RunningPod) -> None:
    api = _api(cluster)

    def forward() -> tuple[bytes, bytes]:
        session = portforward(
            api.connect_get_namespaced_pod_portforward,
            web.name,
            web.namespace,
            ports=f"{HTTP_PORT},{ECHO_PORT}",
        )
        try:
            echo, web_socket = session.socket(ECHO_PORT), session.socket(HTTP_PORT)
            echo.settimeout(20)
            web_socket.settimeout(20)
            answer = _echo(echo, b"ping over python\n")
            return _http_get(web_socket), answer
        finally:
            session.close()

    page, answer = await asyncio.to_thread(forward)
    assert page.startswith(b"HTTP/1.") and page.endswith(b"hello from the pod\n")
    assert answer == b"PONG over python\n"

    def download() -> bytes:
        session = portforward(
            api.connect_get_namespaced_pod_portforward,
            web.name,
            web.namespace,
            ports=str(HTTP_PORT),
        )
        try:
            sock = session.socket(HTTP_PORT)
            sock.settimeout(30)
            return _http_get_big(sock)
        finally:
            session.close()

    # The server ends the session once its only connection closes; the client
    # then leaves its socket open (its leak, collected here).
    assert await asyncio.to_thread(download) == BIG
    _drop_client_sockets()


async def test_python_client_port_forward_to_a_closed_port_reports_the_error(
    cluster: LocalCluster, web: RunningPod
) -> None:
    api = _api(cluster)

    def forward() -> str | None:
        session = portforward(
            api.connect_get_namespaced_pod_portforward, web.name, web.namespace, ports="7"
        )
        try:
            sock = session.socket(7)
            sock.settimeout(20)
            assert sock.recv(10) == b""
            return session.error(7)
        finally:
            session.close()

    error = await asyncio.to_thread(forward)
    assert error is not None and "error forwarding port 7" in error
    assert "connection refused" in error


async def test_kubectl_port_forward(cluster: LocalCluster, web: RunningPod) -> None:
    local_http, local_echo = free_port(), free_port()
    process = subprocess.Popen(
        [
            "kubectl", "port-forward", "-n", web.namespace, f"pod/{web.name}",
            f"{local_http}:{HTTP_PORT}", f"{local_echo}:{ECHO_PORT}",
        ],
        env=_kubectl_env(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
        if "Forwarding from" not in first:
            process.kill()
            raise AssertionError(f"kubectl port-forward: {first}{process.communicate()[1]}")

        def exchange() -> tuple[list[bytes], list[bytes]]:
            pages, answers = [], []
            for attempt in range(2):  # a second connection reuses the session
                with socket.create_connection(("127.0.0.1", local_http), timeout=20) as sock:
                    pages.append(_http_get(sock))
                with socket.create_connection(("127.0.0.1", local_echo), timeout=20) as sock:
                    answers.append(_echo(sock, f"ping {attempt}\n".encode()))
            return pages, answers

        pages, answers = await asyncio.to_thread(exchange)

        def download() -> bytes:
            with socket.create_connection(("127.0.0.1", local_http), timeout=30) as sock:
                return _http_get_big(sock)

        assert await asyncio.to_thread(download) == BIG
        for page in pages:
            assert page.startswith(b"HTTP/1.") and page.endswith(b"hello from the pod\n")
        assert answers == [b"PONG 0\n", b"PONG 1\n"]
        assert process.poll() is None, "kubectl port-forward ended"
    finally:
        process.terminate()
        try:
            _, errors = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
    assert "error" not in errors.lower(), errors


async def test_kubectl_port_forward_to_a_closed_port_says_why(
    cluster: LocalCluster, web: RunningPod
) -> None:
    local = free_port()
    process = subprocess.Popen(
        ["kubectl", "port-forward", "-n", web.namespace, f"pod/{web.name}", f"{local}:7"],
        env=_kubectl_env(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
        assert "Forwarding from" in first, first

        def attempt() -> bytes:
            with socket.create_connection(("127.0.0.1", local), timeout=20) as sock:
                sock.sendall(b"anyone there?\n")
                return sock.recv(100)

        assert await asyncio.to_thread(attempt) == b""
    finally:
        process.terminate()
        try:
            _, errors = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
    assert "error forwarding port 7" in errors and "connection refused" in errors, errors


async def _exec_text(api: k8s.CoreV1Api, pod: RunningPod, script: str) -> str:
    """What ``sh -c script`` prints on stdout in the pod, stripped (stderr dropped)."""

    def run() -> str:
        return str(
            stream(
                api.connect_get_namespaced_pod_exec,
                pod.name,
                pod.namespace,
                command=["sh", "-c", "{ " + script + "; } 2>/dev/null"],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
            )
        )

    answer = await asyncio.to_thread(run)
    _drop_client_sockets()
    return answer.strip()


async def _uploaded(api: k8s.CoreV1Api, pod: RunningPod) -> str:
    """The size of the last upload the pod stored (then forgotten), or ''."""
    return await _exec_text(api, pod, "wc -c < /tmp/upload && rm -f /tmp/upload")


async def test_uploads_through_both_clients_arrive_whole(
    cluster: LocalCluster, web: RunningPod
) -> None:
    api = _api(cluster)
    local = free_port()
    process = subprocess.Popen(
        [
            "kubectl",
            "port-forward",
            "-n",
            web.namespace,
            f"pod/{web.name}",
            f"{local}:{UPLOAD_PORT}",
        ],
        env=_kubectl_env(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
        assert "Forwarding from" in first, first

        def upload() -> bytes:
            # Half-close: the pod's reader sees the end, stores, and closes.
            with socket.create_connection(("127.0.0.1", local), timeout=30) as sock:
                sock.sendall(UPLOAD)
                sock.shutdown(socket.SHUT_WR)
                return sock.recv(10)

        assert await asyncio.to_thread(upload) == b""

        async def stored_by_kubectl() -> str | None:
            size = await _uploaded(api, web)
            return size or None

        assert await eventually(stored_by_kubectl, timeout=20) == str(len(UPLOAD))
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()

    quarter = UPLOAD[: len(UPLOAD) // 4]

    def upload_with_python() -> Any:
        session = portforward(
            api.connect_get_namespaced_pod_portforward,
            web.name,
            web.namespace,
            ports=str(UPLOAD_PORT),
        )
        sock = session.socket(UPLOAD_PORT)
        sock.settimeout(30)
        sock.sendall(quarter)
        return session

    session = await asyncio.to_thread(upload_with_python)
    try:

        async def all_arrived() -> bool:
            size = await _exec_text(api, web, "wc -c < /tmp/upload.part")
            return size == str(len(quarter))

        await eventually(all_arrived, timeout=20, message="the upload never arrived whole")
    finally:
        # The channel framing has no half-close: the client's close ends the
        # session, and with it the pod's connection, so the pod stores it.
        await asyncio.to_thread(session.close)

    async def stored_by_python() -> str | None:
        size = await _uploaded(api, web)
        return size or None

    assert await eventually(stored_by_python, timeout=20) == str(len(quarter))
