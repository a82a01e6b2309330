"""docker-compose.yml, run: build the image, bring the stack up, run a pod, tear it down.

Compose needs a bridge network and DNS between its services, which the
test dockerd (no bridge, no iptables: it must not change the host's
network) cannot give. So the stack runs on a second dockerd inside a network
namespace of its own, ``crl-compose``, with no links out: there Docker's
bridge and iptables rules touch only that namespace. The test checks that the
host's links, routes and firewall rules are the same afterwards.

The image is built in the test dockerd (host network, for the package
mirrors and PyPI) and copied into the namespace's dockerd with the busybox
test image; pods use imagePullPolicy Never.

Once a pod runs, the test checks the file's isolation: etcd answers only
the API server (TLS with a client certificate from etcd's own CA, on a
network the agents are not on), and no agent holds the cluster's keys,
tokens or encryption key.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import Container

from corral.mounts import mounts_under
from corralctl import dockerd as dockerd_process
from corralctl.dockerd import Dockerd
from corralctl.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
BUILD = ROOT / "examples" / "gluster" / "build.py"
NETNS = "crl-compose"
PROJECT = "crlcompose"
IMAGE = "corral.local/corral:dev"
KUBECONFIG = "/data/kubeconfig"
CONTROL_PLANE = ("init", "etcd", "apiserver", "scheduler", "controller-manager")
AGENTS = ("agent-1", "agent-2")
# Compose checks ${CORRAL_JOIN_TOKEN:?} for every command, even ones that
# leave the agents alone: a well-formed token no cluster knows.
NO_TOKEN = "aaaaaa.0000000000000000"


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def host_network() -> dict[str, str]:
    """The root namespace's links, routes and firewall rules, as text to compare."""
    state = {
        "links": _run(["ip", "-o", "link", "show"], timeout=30).stdout,
        "addresses": _run(["ip", "-o", "address", "show"], timeout=30).stdout,
        "routes": _run(["ip", "route", "show", "table", "all"], timeout=30).stdout,
        "routes6": _run(["ip", "-6", "route", "show", "table", "all"], timeout=30).stdout,
        "nft": _run(["nft", "list", "ruleset"], timeout=30).stdout,
        "iptables": _run(["iptables-save"], timeout=30).stdout,
    }
    # iptables-save stamps its output with the time and packet counters.
    state["iptables"] = "\n".join(
        line.split(" [", 1)[0]
        for line in state["iptables"].splitlines()
        if not line.startswith("#")
    )
    return state


def capabilities_missing() -> bool:
    """Whether this machine's capability bounding set lacks some the kernel has.

    Then Docker cannot start privileged containers ("unable to apply caps"):
    the case in a sandbox that drops, say, CAP_SYS_RESOURCE.
    """
    bounding = next(
        int(line.split()[1], 16)
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("CapBnd:")
    )
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return bounding != (1 << (last + 1)) - 1


# Where privileged containers cannot start, the agents get the capabilities
# they use instead; the rest of the file is what runs.
UNPRIVILEGED_AGENTS = """\
services:
{agents}
"""
UNPRIVILEGED_AGENT = """\
  {name}:
    privileged: false
    cap_add: [CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
              NET_BIND_SERVICE, NET_RAW, NET_ADMIN, SYS_ADMIN, SYS_PTRACE, SYS_CHROOT,
              MKNOD, AUDIT_WRITE, SETFCAP]
    security_opt: [seccomp=unconfined, apparmor=unconfined]
    command: {command}
"""


def unprivileged_override(directory: Path) -> Path:
    import yaml

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    agents = "".join(
        UNPRIVILEGED_AGENT.format(name=name, command=json.dumps(services[name]["command"]))
        for name in AGENTS
    )
    override = directory / "unprivileged-agents.yml"
    override.write_text(UNPRIVILEGED_AGENTS.format(agents=agents))
    return override


def netns_exists() -> bool:
    listed = _run(["ip", "netns", "list"], timeout=30).stdout.split()
    return NETNS in listed


@pytest.fixture
def namespace() -> Iterator[str]:
    """An empty network namespace with only loopback: nothing in it reaches out."""
    assert not netns_exists(), f"{NETNS} is left from an earlier run: ip netns delete {NETNS}"
    before = host_network()
    added = _run(["ip", "netns", "add", NETNS], timeout=30)
    assert added.returncode == 0, added.stderr
    try:
        up = _run(["ip", "-n", NETNS, "link", "set", "lo", "up"], timeout=30)
        assert up.returncode == 0, up.stderr
        yield NETNS
    finally:
        _run(["ip", "netns", "delete", NETNS], timeout=30)
    assert not netns_exists()
    after = host_network()
    for key, text in before.items():
        assert after[key] == text, f"the host's {key} changed"


@pytest.fixture
def namespaced_dockerd(namespace: str) -> Iterator[Dockerd]:
    daemon = dockerd_process.start(netns=namespace, ready_timeout=120)
    root = daemon.root
    assert root is not None
    try:
        yield daemon
    finally:
        dockerd_process.stop(daemon, clean=True)
    assert not mounts_under(str(root)), mounts_under(str(root))
    assert not root.exists(), f"{root} is left behind"


@pytest.fixture(scope="session")
def corral_image(dockerd: Dockerd) -> str:
    """The compose file's image, built in the test dockerd on the debootstrapped base."""
    base = _run([sys.executable, str(BUILD), "--docker-host", dockerd.host, "--only", "base"],
                timeout=1500)  # fmt: skip
    assert base.returncode == 0, base.stdout[-3000:] + base.stderr[-3000:]
    tags = _run([sys.executable, str(BUILD), "--print-tags"], timeout=60).stdout.split()
    [base_image] = [tag for tag in tags if tag.startswith("corral.local/gluster/base:")]
    env = {
        **os.environ,
        "DOCKER_HOST": dockerd.host,
        "CORRAL_BASE": base_image,
        "CORRAL_EXTRA_CA_CERTS": local_ca_certificates(),
        "CORRAL_JOIN_TOKEN": NO_TOKEN,
    }
    built = _run(["docker-compose", "-f", str(COMPOSE), "-p", PROJECT, "build", "init"],
                 env=env, timeout=1500)  # fmt: skip
    assert built.returncode == 0, built.stdout[-6000:] + built.stderr[-3000:]
    return IMAGE


def local_ca_certificates() -> str:
    """The CAs this machine adds to Debian's (a proxy's, say), for pip in the build."""
    directory = Path("/usr/local/share/ca-certificates")
    if not directory.is_dir():
        return ""
    return "".join(path.read_text() for path in sorted(directory.rglob("*.crt")))


def copy_images(source: Dockerd, target: Dockerd, images: list[str]) -> None:
    for image in images:
        # Streamed (the corral image is a few hundred megabytes), and saved by
        # this very name: by ID an image loads untagged, and Image.save(named=True)
        # takes the image's first tag, which other tests may have added.
        target.client().images.load(source.client().api.get_image(image))
        target.client().images.get(image)


class Stack:
    def __init__(self, daemon: Dockerd, files: list[Path], agent_dir: Path) -> None:
        assert daemon.root is not None
        self.files = [arg for path in files for arg in ("-f", str(path))]
        self.env = {
            **os.environ,
            "DOCKER_HOST": daemon.host,
            "CORRAL_DOCKER_SOCKET": str(daemon.root / "docker.sock"),
            "CORRAL_AGENT_DIR": str(agent_dir),
            "CORRAL_JOIN_TOKEN": NO_TOKEN,
        }
        self.last_error = ""

    def compose(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        result = self.try_compose(*args, stdin=stdin, timeout=timeout)
        assert result.returncode == 0, (
            f"docker-compose {' '.join(args)}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
        return result.stdout

    def try_compose(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        argv = ["docker-compose", *self.files, "-p", PROJECT, *args]
        return _run(argv, env=self.env, input=stdin, timeout=timeout)

    def corral(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = self.try_compose(
            "exec", "-T", "apiserver", "corral", *args, "--kubeconfig", KUBECONFIG,
            stdin=stdin, timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            # For the failure message, should a wait on this end in one.
            self.last_error = (
                f"corral {' '.join(args)}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result

    def get(self, *args: str) -> Any:
        result = self.corral("get", *args, "-o", "json")
        return json.loads(result.stdout) if result.returncode == 0 else None

    def logs(self) -> str:
        return self.try_compose("logs", "--no-color", "--tail", "40", timeout=120).stdout


@pytest.fixture
def stack(namespaced_dockerd: Dockerd, tmp_path: Path) -> Iterator[Stack]:
    files = [COMPOSE]
    if capabilities_missing():
        files.append(unprivileged_override(tmp_path))
        print(f"no privileged containers here: the agents run with {files[-1]}")
    # On the host: Docker bind-mounts pods' files from the agents' data dirs.
    agent_dir = Path(tempfile.mkdtemp(prefix="crl-compose-agents-"))
    running = Stack(namespaced_dockerd, files, agent_dir)
    try:
        yield running
    finally:
        running.try_compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300)
        # The agents' own pods are not compose's: the dockerd's clean stop
        # removes them; their mounts under agent_dir go first.
        for container in namespaced_dockerd.client().containers.list(all=True):
            container.remove(force=True)
        for point in mounts_under(str(agent_dir)):
            _run(["umount", "-l", point], timeout=30)
        shutil.rmtree(agent_dir, ignore_errors=True)
    assert not agent_dir.exists()


def ready_nodes(stack: Stack) -> set[str]:
    listed = stack.get("nodes")
    ready = set()
    for node in (listed or {}).get("items", []):
        conditions = node.get("status", {}).get("conditions", [])
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready.add(node["metadata"]["name"])
    return ready


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: compose-smoke
  namespace: default
spec:
  containers:
    - name: main
      image: {image}
      imagePullPolicy: Never
      command: ["sleep", "3600"]
"""


def test_the_compose_stack_runs_a_pod(
    dockerd: Dockerd,
    corral_image: str,
    test_image: str,
    namespaced_dockerd: Dockerd,
    stack: Stack,
) -> None:
    copy_images(dockerd, namespaced_dockerd, [corral_image, test_image])

    def waited(check: Any, timeout: float, what: str) -> None:
        try:
            wait_until(check, timeout, what, interval=2)
        except Exception as error:
            raise AssertionError(f"{error}\n{stack.last_error}\n{stack.logs()}") from error

    stack.compose("up", "-d", *CONTROL_PLANE)
    waited(lambda: stack.corral("get", "nodes").returncode == 0, 300, "the API server")

    token = stack.corral("token", "create")
    assert token.returncode == 0, token.stderr
    stack.env["CORRAL_JOIN_TOKEN"] = token.stdout.strip()
    stack.compose("up", "-d", *AGENTS)
    waited(lambda: ready_nodes(stack) == set(AGENTS), 300, "two Ready nodes")

    applied = stack.corral("apply", "-f", "-", stdin=POD.format(image=test_image))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    def running() -> bool:
        pod = stack.get("pod", "compose-smoke", "-n", "default")
        return bool(pod) and pod.get("status", {}).get("phase") == "Running"

    waited(running, 300, "the pod Running")
    pod = stack.get("pod", "compose-smoke", "-n", "default")
    assert pod["spec"].get("nodeName") in AGENTS
    # An address on the agent's pod network, not loopback only.
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network("10.244.0.0/16")

    check_only_init_and_the_api_server_hold_the_cluster_secrets(namespaced_dockerd)
    check_agents_cannot_reach_etcd(namespaced_dockerd)
    check_etcd_refuses_the_api_servers_container_without_a_certificate(namespaced_dockerd)
    check_pods_cannot_reach_etcd_even_through_a_service(stack, namespaced_dockerd, waited)


# --- isolation: who reaches etcd, who holds the cluster's secrets ---------------------

DATA_VOLUME = "corral-data"
SECRET_FILES = ("ca.key", "tokens.csv", "encryption.yaml")
ETCD_VERSION_MARK = "etcdserver"

# Connects to each (host, port), sends a plaintext GET /version, prints what happened.
PLAINTEXT_PROBE = """
import json, socket, sys
results = {}
for host, port in json.loads(sys.argv[1]):
    found = {"connected": False, "answer": "", "error": ""}
    try:
        with socket.create_connection((host, port), timeout=3) as conn:
            found["connected"] = True
            conn.sendall(b"GET /version HTTP/1.0\\r\\nHost: etcd\\r\\n\\r\\n")
            conn.settimeout(3)
            found["answer"] = conn.recv(4096).decode(errors="replace")
    except OSError as error:
        found["error"] = f"{type(error).__name__}: {error}"
    results[f"{host}:{port}"] = found
print(json.dumps(results))
"""

# etcd's /version over TLS, verifying etcd by its CA, with a client certificate if given.
TLS_PROBE = """
import json, socket, ssl, sys
ca, cert, key = sys.argv[1:4]
context = ssl.create_default_context(cafile=ca)
if cert:
    context.load_cert_chain(cert, key)
try:
    with socket.create_connection(("etcd", 2379), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="etcd") as tls:
            tls.sendall(b"GET /version HTTP/1.1\\r\\nHost: etcd\\r\\nConnection: close\\r\\n\\r\\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    print(json.dumps({"answer": answer.decode(errors="replace")}))
except ssl.SSLError as error:
    print(json.dumps({"tls_error": str(error)}))
"""


def service_container(daemon: Dockerd, service: str) -> Container:
    labels = [f"com.docker.compose.project={PROJECT}", f"com.docker.compose.service={service}"]
    [found] = daemon.client().containers.list(all=True, filters={"label": labels})
    return found


def run_in(container: Container, argv: list[str]) -> tuple[int, str]:
    code, output = container.exec_run(argv)
    return int(code), output.decode(errors="replace")


def probe(container: Container, targets: list[tuple[str, int]]) -> dict[str, dict[str, Any]]:
    code, output = run_in(container, ["python3", "-c", PLAINTEXT_PROBE, json.dumps(targets)])
    assert code == 0, output
    found: dict[str, dict[str, Any]] = json.loads(output)
    return found


def network_addresses(container: Container) -> dict[str, str]:
    """Each compose network the container is on (without the project prefix): its address."""
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    return {name.removeprefix(f"{PROJECT}_"): info["IPAddress"] for name, info in networks.items()}


def named_volumes(container: Container) -> set[str]:
    mounts = container.attrs["Mounts"]
    return {m["Name"].removeprefix(f"{PROJECT}_") for m in mounts if m["Type"] == "volume"}


def check_only_init_and_the_api_server_hold_the_cluster_secrets(daemon: Dockerd) -> None:
    holders = {
        service
        for service in (*CONTROL_PLANE, *AGENTS)
        if DATA_VOLUME in named_volumes(service_container(daemon, service))
    }
    assert holders == {"init", "apiserver"}
    for agent in AGENTS:
        container = service_container(daemon, agent)
        assert named_volumes(container) == {"corral-node-ca"}, agent
        code, listing = run_in(container, ["ls", "-A", "/etc/corral"])
        assert (code, listing.split()) == (0, ["ca.crt"]), listing
        # Where the API server sees them, the agent sees nothing.
        for name in SECRET_FILES:
            code, output = run_in(container, ["test", "-e", f"/data/pki/{name}"])
            assert code != 0, (agent, name, output)
    apiserver = service_container(daemon, "apiserver")
    for name in SECRET_FILES:
        assert run_in(apiserver, ["test", "-e", f"/data/pki/{name}"])[0] == 0, name
    # Read-only where it holds them: a compromised API server cannot rewrite its own keys.
    code, output = run_in(apiserver, ["touch", "/data/pki/written-by-apiserver"])
    assert code != 0 and "Read-only" in output, output


def check_agents_cannot_reach_etcd(daemon: Dockerd) -> None:
    etcd = network_addresses(service_container(daemon, "etcd"))
    assert set(etcd) == {"control-plane"}, etcd
    apiserver = network_addresses(service_container(daemon, "apiserver"))
    for agent in AGENTS:
        assert set(network_addresses(service_container(daemon, agent))) == {"default"}, agent
        targets = [("etcd", 2379), *((ip, 2379) for ip in etcd.values())]
        # The probe itself works: the API server is reachable from here.
        control = [("apiserver", 6443), (apiserver["default"], 6443)]
        results = probe(service_container(daemon, agent), [*targets, *control])
        for host, port in control:
            assert results[f"{host}:{port}"]["connected"], (agent, results)
        for host, port in targets:
            found = results[f"{host}:{port}"]
            assert not found["connected"], (agent, host, found)
            assert ETCD_VERSION_MARK not in found["answer"], (agent, host, found)
        # No name for etcd either: Docker's DNS answers only a network's members.
        assert "gaierror" in results["etcd:2379"]["error"], results


def check_etcd_refuses_the_api_servers_container_without_a_certificate(daemon: Dockerd) -> None:
    apiserver = service_container(daemon, "apiserver")
    ca = "/data/pki/etcd/ca.crt"
    pair = ["/data/pki/apiserver-etcd-client.crt", "/data/pki/apiserver-etcd-client.key"]

    def tls_probe(cert: str, key: str) -> dict[str, str]:
        code, output = run_in(apiserver, ["python3", "-c", TLS_PROBE, ca, cert, key])
        assert code == 0, output
        result: dict[str, str] = json.loads(output)
        return result

    # With the API server's etcd client certificate etcd answers, so the refusal below is
    # about the certificate, not the path.
    assert ETCD_VERSION_MARK in tls_probe(*pair).get("answer", ""), tls_probe(*pair)
    refused = tls_probe("", "")
    assert "tls_error" in refused, refused
    # A certificate from the cluster CA (the admin's, here) is no better than none.
    admin = tls_probe("/data/pki/admin.crt", "/data/pki/admin.key")
    assert "tls_error" in admin, admin
    # Plaintext reaches the port but gets no etcd answer.
    plain = probe(apiserver, [("etcd", 2379)])["etcd:2379"]
    assert ETCD_VERSION_MARK not in plain["answer"], plain


SERVICE_AND_ENDPOINTS = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
spec:
  ports:
    - name: tcp
      port: {port}
      protocol: TCP
---
apiVersion: v1
kind: Endpoints
metadata:
  name: {name}
  namespace: default
subsets:
  - addresses: [{addresses}]
    ports:
      - name: tcp
        port: {port}
        protocol: TCP
"""


def check_pods_cannot_reach_etcd_even_through_a_service(
    stack: Stack, daemon: Dockerd, waited: Any
) -> None:
    """A Service whose Endpoints a user points at etcd: the agent NATs pods' traffic to it.

    Anyone who may write Endpoints in a namespace can aim a Service anywhere;
    the agent then masquerades a pod's connections as its own. With etcd on
    the agents' network that reached it; here the agent has no way there.
    """
    etcd = network_addresses(service_container(daemon, "etcd"))
    apiserver = network_addresses(service_container(daemon, "apiserver"))
    services = {"etcd-probe": (2379, list(etcd.values())),
                "apiserver-probe": (6443, [apiserver["default"]])}  # fmt: skip
    for name, (port, ips) in services.items():
        addresses = ", ".join(f"{{ip: {ip}}}" for ip in ips)
        manifest = SERVICE_AND_ENDPOINTS.format(name=name, port=port, addresses=addresses)
        applied = stack.corral("apply", "-f", "-", stdin=manifest)
        assert applied.returncode == 0, applied.stdout + applied.stderr
    cluster_ips = {name: stack.get("service", name, "-n", "default")["spec"]["clusterIP"]
                   for name in services}  # fmt: skip
    labels = ["io.corral.pod.name=compose-smoke", "io.corral.container.name=main"]
    [pod] = daemon.client().containers.list(filters={"label": labels})

    def through_service(name: str) -> tuple[int, str]:
        port = services[name][0]
        request = "printf 'GET /version HTTP/1.0\\r\\n\\r\\n'"
        return run_in(pod, ["sh", "-c", f"{request} | nc -w 3 {cluster_ips[name]} {port}"])

    # The Service path works (the agent has programmed it) before etcd's is judged.
    waited(lambda: through_service("apiserver-probe")[0] == 0, 120, "the apiserver-probe Service")
    code, output = through_service("etcd-probe")
    assert code != 0, output
    assert ETCD_VERSION_MARK not in output, output
