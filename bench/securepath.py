"""The path ``corral up`` serves, for every bench: its PKI, its flags, its clients.

A bench that measures the API, the scheduler or the controllers starts its
own processes in a scratch directory. They are started here as ``corral up``
starts them: the API server over HTTPS with the cluster's certificates, the
encryption key, RBAC, the audit log and the default admission chain; the
controller manager and the scheduler each with its own kubeconfig (its own
identity under RBAC) and its metrics over TLS; the bench itself as the
administrator, with the client certificate ``D/kubeconfig`` carries. The
PKI comes from the helpers ``corral up`` calls (``cluster.prepare_pki``).
Only the address ranges are left at the API server's defaults, which are
corral up's for a machine's first cluster.

A bench may measure the development server (``--insecure-dev-http``) too,
as a second line that shows what security costs; never as its headline.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from corralctl import cluster, metricsup
from corralctl.clusterpki import ClusterPki
from corralctl.processes import ApiServer, Etcd, ManagedProcess, http_ok, wait_until

SECURE = "secure (HTTPS, admin client cert, RBAC, audit, admission)"
INSECURE = "insecure-dev-http (no TLS/authn/RBAC/audit)"
COMPONENT_READY_TIMEOUT = 120.0


def cpu_seconds(pid: int | None) -> float:
    """CPU time of a process, its live children and the children it reaped.

    An API server's figure then includes its workers (``--workers``
    defaults to one per core, as under ``corral up``).
    """
    if pid is None:
        return 0.0
    members = [pid]
    try:
        members += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return 0.0
    total = 0
    for member in members:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    """An API server and the credentials a client shows it; picklable for the generators."""

    url: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def session(self, limit: int = 100) -> aiohttp.ClientSession:
        context = self.ssl_context()
        tls: ssl.SSLContext | bool = context if context is not None else True
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, ssl=tls))

    def get(self, url: str, timeout: float = 30.0) -> bytes:
        """A blocking GET with these credentials (for scrapes, between the timed phases)."""
        with urllib.request.urlopen(url, timeout=timeout, context=self.ssl_context()) as response:
            body: bytes = response.read()
            return body


@dataclass(frozen=True)
class SecureApi:
    """A secure API server not yet started, its PKI, and its administrator."""

    api: ApiServer
    pki: ClusterPki
    admin: Target
    data_dir: Path


def secure_api(
    root: Path,
    etcd: Etcd,
    *,
    name: str = "secure",
    workers: int | None = None,
    metrics: bool = True,
    extra_args: Sequence[str] = (),
) -> SecureApi:
    """The API server with the flags ``corral up`` gives it (``corralctl.up._apiserver``).

    ``name`` names its data directory under ``root`` and its etcd key
    prefix, so that several servers on one etcd each start empty.
    ``workers``: None is the server's default, one per usable core, as
    ``corral up`` leaves it.
    ``metrics=False`` leaves out its /metrics port, which only a bench of
    what metrics cost wants.
    """
    data_dir = root / name
    data_dir.mkdir(parents=True)
    pki = cluster.prepare_pki(data_dir, cluster.serving_hosts("127.0.0.1", []))
    api = ApiServer(
        [etcd.endpoint],
        log_path=data_dir / "apiserver.log",
        pki=pki,
        workers=workers,
        extra_args=(
            "--encryption-provider-config", str(pki.encryption_key_file),
            "--audit-log-path", str(data_dir / "audit.log"),
            *(metricsup.api_args(data_dir) if metrics else ()),
            "--etcd-prefix", f"/{name}",
            *extra_args,
        ),
    )  # fmt: skip
    pki.write_kubeconfigs(api.url)
    admin = Target(api.url, str(pki.ca_cert), str(pki.admin_cert), str(pki.admin_key))
    return SecureApi(api, pki, admin, data_dir)


def metrics_port(data_dir: Path, component: str) -> int:
    """The port ``corral up`` chose for ``component``'s /metrics (``metricsup.ports``)."""
    return metricsup.ports(data_dir)[component]


def start_component(
    secure: SecureApi, component: str, module_argv: Sequence[str], extra_args: Sequence[str] = ()
) -> ManagedProcess:
    """The controller manager or the scheduler as ``corral up`` starts it, once ready.

    ``module_argv``: after ``python -m``, e.g. ``["scheduler"]``. Ready is
    its /healthz answering over TLS on its metrics port.
    """
    port = metrics_port(secure.data_dir, component)
    process = ManagedProcess(
        component,
        [
            sys.executable, "-m", *module_argv,
            "--kubeconfig", str(secure.pki.component_kubeconfig(component)),
            "--metrics-bind-address", f"127.0.0.1:{port}",
            "--tls-cert-file", str(secure.pki.apiserver_cert),
            "--tls-private-key-file", str(secure.pki.apiserver_key),
            *extra_args,
        ],
        secure.data_dir / f"{component}.log",
    )  # fmt: skip
    process.start()
    wait_until(
        lambda: http_ok(f"https://127.0.0.1:{port}/healthz", ca_file=secure.pki.ca_cert),
        COMPONENT_READY_TIMEOUT,
        component,
        alive=process.running,
    )
    return process


def component_metrics_url(secure: SecureApi, component: str) -> str:
    """Where ``component`` (the API server too) serves /metrics."""
    return f"https://127.0.0.1:{metrics_port(secure.data_dir, component)}/metrics"
