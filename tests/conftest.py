"""Fixtures shared by every test: real etcd and real API server processes.

Integration tests share one etcd and one API server per session and isolate
themselves with a namespace of their own; tests that kill or restart a
process start a cluster of their own with ``cluster_factory``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import shutil
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from corral.api.resources import REGISTRY
from corral.client import kubeconfig
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client
from corralctl import bootstraptokens
from corralctl.clusterpki import ClusterPki
from corralctl.processes import ApiServer, Etcd

_names = itertools.count()

# The tests drive the kubectl ./dev deps pins into the venv's bin
# (tools/kubectl.py), never whichever one the machine has: that bin goes first
# on the PATH every test's subprocesses inherit.
VENV_BIN = Path(sys.executable).parent
if os.environ.get("PATH", "").split(os.pathsep)[0] != str(VENV_BIN):
    os.environ["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])


def require_kubectl() -> str:
    """The pinned kubectl's path; a test that needs it fails (never skips) without it."""
    found = shutil.which("kubectl")
    if found is None or Path(found).parent != VENV_BIN:
        pytest.fail(
            f"kubectl 1.32 is not in {VENV_BIN} (found {found}): "
            "run ./dev deps, which installs the pinned one there"
        )
    return found


@dataclass
class LocalCluster:
    root: Path
    etcd: Etcd | None
    apiserver: ApiServer
    kubeconfig: Path
    bootstrap_token: str = ""

    @property
    def url(self) -> str:
        return self.apiserver.url

    @property
    def pki(self) -> ClusterPki:
        assert self.apiserver.pki is not None
        return self.apiserver.pki

    def client_config(self, namespace: str = "default") -> ClientConfig:
        """The administrator: the cluster CA and a system:masters client certificate."""
        return self.pki.admin_config(self.url, namespace)

    def agent_args(self, node: str) -> list[str]:
        """How a node agent joins this cluster: its API, the CA and a bootstrap token."""
        return [
            "--server", self.url,
            "--control", f"127.0.0.1:{self.apiserver.agent_port}",
            "--ca-file", str(self.pki.ca_cert),
            "--bootstrap-token", self.bootstrap_token,
            "--node-name", node,
        ]  # fmt: skip

    def component_kubeconfig(self, component: str) -> Path:
        """The scheduler's or controller manager's own identity, as ``corral up`` writes it."""
        self.pki.write_kubeconfigs(self.url)
        return self.pki.component_kubeconfig(component)

    def ssl_context(self) -> ssl.SSLContext:
        """For tests that speak raw HTTP: trusts the cluster CA, shows the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(self.pki.admin_cert, self.pki.admin_key)
        return context

    def restart_apiserver(self, *, kill: bool = False) -> None:
        if kill:
            self.apiserver.kill()
        else:
            self.apiserver.stop()
        self.apiserver.start()
        self.apiserver.wait_ready()

    def stop(self) -> None:
        self.apiserver.stop()
        if self.etcd is not None:
            self.etcd.stop()


def start_cluster(root: Path, *, apiserver_args: tuple[str, ...] = ()) -> LocalCluster:
    root.mkdir(parents=True, exist_ok=True)
    etcd = Etcd(root / "etcd", log_path=root / "etcd.log")
    etcd.start()
    try:
        etcd.wait_ready()
        pki = ClusterPki(root / "pki")
        pki.ensure(["127.0.0.1"])
        api = ApiServer(
            [etcd.endpoint],
            log_path=root / "apiserver.log",
            pki=pki,
            extra_args=apiserver_args,
        )
        api.start()
        api.wait_ready()
    except Exception:
        etcd.stop()
        raise
    config_path = root / "kubeconfig"
    local = LocalCluster(root, etcd, api, config_path)
    kubeconfig.write(config_path, pki.admin_kubeconfig(api.url, "corral-test"))
    # Tests start clusters from inside running event loops too: create the
    # token on a loop of its own, in a thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        local.bootstrap_token = pool.submit(asyncio.run, _create_bootstrap_token(local)).result()
    return local


async def _create_bootstrap_token(local: LocalCluster) -> str:
    token_id, token_secret = bootstraptokens.new_token()
    secret = bootstraptokens.token_secret(
        token_id, token_secret, now=datetime.now(UTC), ttl=timedelta(hours=6)
    )
    async with Client(local.client_config()) as client:
        await client.create(REGISTRY.by_kind("v1", "Secret"), secret, bootstraptokens.NAMESPACE)  # type: ignore[arg-type]
    return f"{token_id}.{token_secret}"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The session's shared etcd and API server."""
    root = tmp_path_factory.mktemp("cluster")
    local = start_cluster(root)
    yield local
    local.stop()


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[object]:
    """Start clusters of the test's own; every one is stopped afterwards."""
    started: list[LocalCluster] = []

    def make(**kwargs: object) -> LocalCluster:
        local = start_cluster(tmp_path / f"cluster-{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(local)
        return local

    yield make
    for local in started:
        local.stop()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[Client]:
    async with Client(cluster.client_config()) as c:
        yield c


@pytest.fixture
async def namespace(client: Client) -> str:
    """A fresh namespace, so tests sharing the cluster never see each other's objects."""
    from corral.api.resources import REGISTRY

    name = unique_name("t")
    rt = REGISTRY.resolve("namespaces")
    assert rt is not None
    await client.create(rt, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
def kubectl_env(cluster: LocalCluster, tmp_path: Path) -> dict[str, str]:
    """Environment for the real kubectl: this cluster's kubeconfig and a private cache."""
    require_kubectl()
    return {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "KUBECACHEDIR": str(tmp_path / "kubecache"),
        "HOME": str(tmp_path),
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if f"{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        elif f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.e2e)
