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

from corral import dockerd as dockerd_process
from corral.dockerd import Dockerd
from corral.mounts import mounts_under
from corral.processes import wait_until

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
