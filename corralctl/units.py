"""systemd units for an installed corral: what runs, in what order, with what limits.

Rendered from a ``Layout`` (where the program, configuration and state
live), so that an install under other directories (tests, unusual hosts)
gets units that point at exactly what it installed. Nothing here is
written under ``/usr``: on an ostree host that is read-only.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

# Services that only talk to etcd and the API: no reason to see the rest of
# the system, or to gain privileges.
_HARDENING = """\
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictRealtime=yes
SystemCallArchitectures=native
"""

_ACCOUNTING = """\
CPUAccounting=yes
MemoryAccounting=yes
TasksAccounting=yes
"""


@dataclass(frozen=True)
class Layout:
    etc_dir: Path = Path("/etc/corral")
    state_dir: Path = Path("/var/lib/corral")
    log_dir: Path = Path("/var/log/corral")
    unit_dir: Path = Path("/etc/systemd/system")

    @property
    def venv(self) -> Path:
        return self.state_dir / "venv"

    @property
    def corral(self) -> Path:
        return self.venv / "bin" / "corral"

    @property
    def pki(self) -> Path:
        return self.etc_dir / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def agent_env(self) -> Path:
        return self.etc_dir / "agent.env"


def _command(argv: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in argv)


def _unit(
    description: str,
    argv: list[str],
    *,
    after: list[str],
    wants: list[str],
    extra_service: str = "",
    hardening: bool = True,
    writable: tuple[Path, ...] = (),
) -> str:
    lines = [
        "[Unit]",
        f"Description={description}",
        "Documentation=https://github.com/corral-dev/corral",
        f"After={' '.join(after)}",
    ]
    if wants:
        lines.append(f"Wants={' '.join(wants)}")
    lines += [
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={_command(argv)}",
        "Restart=always",
        "RestartSec=2",
        "TimeoutStopSec=30",
        "LimitNOFILE=65536",
    ]
    text = "\n".join(lines) + "\n" + _ACCOUNTING
    if hardening:
        text += _HARDENING
        if writable:
            text += f"ReadWritePaths={' '.join(str(p) for p in writable)}\n"
    text += extra_service
    text += "\n[Install]\nWantedBy=multi-user.target\n"
    return text


# Where each component serves /metrics: the controller manager's and the
# scheduler's are Kubernetes' secure ports; the API server's is its own
# (behind authentication and RBAC); the agent's is the kubelet's old
# read-only port (its gRPC port is the kubelet's 10250).
METRICS_PORTS = {"apiserver": 6445, "controller-manager": 10257, "scheduler": 10259, "agent": 10255}


def _metrics_flags(layout: Layout, host: str, port: int) -> list[str]:
    """A control-plane component's /metrics, over TLS with the API server's certificate."""
    return [
        "--metrics-bind-address", f"{host}:{port}",
        "--tls-cert-file", str(layout.pki / "apiserver.crt"),
        "--tls-private-key-file", str(layout.pki / "apiserver.key"),
    ]  # fmt: skip


@dataclass(frozen=True)
class EtcdMember:
    """This master's etcd member: TLS for clients and for peers, as kubeadm's stacked etcd.

    Peers and other masters reach it at ``advertise``; it listens where the
    API server does (``listen``), and always on loopback, where the local
    API server and the backup talk to it.
    """

    name: str
    advertise: str
    listen: str
    client_port: int
    # ``--initial-cluster`` from the member API when joining; empty: a new cluster of one.
    initial_cluster: str = ""

    @property
    def peer_port(self) -> int:
        return self.client_port + 1

    @property
    def client_url(self) -> str:
        return f"https://{self.advertise}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.advertise}:{self.peer_port}"

    @property
    def local_client_url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    def listen_client_urls(self) -> str:
        if self.listen in ("0.0.0.0", "::", ""):
            return f"https://0.0.0.0:{self.client_port}"
        if self.listen == "127.0.0.1":
            return self.local_client_url
        return f"{self.local_client_url},https://{self.listen}:{self.client_port}"

    def listen_peer_url(self) -> str:
        host = "0.0.0.0" if self.listen in ("0.0.0.0", "::", "") else self.listen
        return f"https://{host}:{self.peer_port}"


def _etcd_client_flags(layout: Layout) -> list[str]:
    """The API server's (and the backup's) certificate for etcd, from etcd's own CA."""
    pki = layout.pki
    return [
        "--etcd-cafile", str(pki / "etcd" / "ca.crt"),
        "--etcd-certfile", str(pki / "apiserver-etcd-client.crt"),
        "--etcd-keyfile", str(pki / "apiserver-etcd-client.key"),
    ]  # fmt: skip


def master_units(
    layout: Layout,
    *,
    etcd_binary: str,
    port: int,
    etcd: EtcdMember,
    host: str,
    apiserver_workers: int | None = None,
) -> dict[str, str]:
    """etcd, the API server, the scheduler and the controller manager.

    ``apiserver_workers``: its ``--workers``; None leaves its default, one
    process per core the unit may use.
    """
    pki = layout.pki
    return {
        "corral-etcd.service": _etcd_unit(layout, etcd_binary, etcd),
        # Its own member only, as kubeadm's stacked etcd: that member forwards
        # to the leader, and a master cut off from the quorum stops serving.
        "corral-apiserver.service": _apiserver_unit(
            layout, etcd.local_client_url, host, port, apiserver_workers
        ),
        "corral-scheduler.service": _unit(
            "corral scheduler",
            [
                str(layout.corral),
                "scheduler",
                "--kubeconfig",
                str(pki / "scheduler.kubeconfig"),
                *_metrics_flags(layout, host, METRICS_PORTS["scheduler"]),
            ],
            after=["corral-apiserver.service"],
            wants=["corral-apiserver.service"],
        ),
        "corral-controller-manager.service": _unit(
            "corral controller manager",
            [
                str(layout.corral),
                "controller-manager",
                "--kubeconfig",
                str(pki / "controller-manager.kubeconfig"),
                *_metrics_flags(layout, host, METRICS_PORTS["controller-manager"]),
            ],
            after=["corral-apiserver.service"],
            wants=["corral-apiserver.service"],
        ),
    }


def _etcd_unit(layout: Layout, etcd_binary: str, member: EtcdMember) -> str:
    """One etcd member: clients and peers over TLS, each side's certificate from etcd's CA."""
    tls = layout.pki / "etcd"
    initial = member.initial_cluster or f"{member.name}={member.peer_url}"
    # A joined member starts as a learner; once it has caught up it may vote.
    promote = [str(layout.corral), "etcd-promote", "--etc-dir", str(layout.etc_dir)]
    extra = f"ExecStartPost=-{_command(promote)}\nTimeoutStartSec=120\n"
    return _unit(
        "corral's etcd",
        [
            etcd_binary,
            "--name", member.name,
            "--data-dir", str(layout.etcd_data),
            "--listen-client-urls", member.listen_client_urls(),
            "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.listen_peer_url(),
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-state", "existing" if member.initial_cluster else "new",
            "--client-cert-auth",
            "--trusted-ca-file", str(tls / "ca.crt"),
            "--cert-file", str(tls / "server.crt"),
            "--key-file", str(tls / "server.key"),
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file", str(tls / "ca.crt"),
            "--peer-cert-file", str(tls / "peer.crt"),
            "--peer-key-file", str(tls / "peer.key"),
            "--auto-compaction-retention", "0",
        ],
        after=["network-online.target"],
        wants=["network-online.target"],
        writable=(layout.etcd_data,),
        extra_service=extra if member.initial_cluster else "",
    )  # fmt: skip


def _apiserver_unit(
    layout: Layout, etcd_url: str, host: str, port: int, workers: int | None
) -> str:
    pki = layout.pki
    return _unit(
        "corral API server",
        [
            str(layout.corral), "apiserver",
            "--host", host,
            "--port", str(port),
            "--etcd", etcd_url,
            *_etcd_client_flags(layout),
            "--tls-cert-file", str(pki / "apiserver.crt"),
            "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--client-ca-key-file", str(pki / "ca.key"),
            "--token-auth-file", str(pki / "tokens.csv"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-account-key-file", str(pki / "sa.pub"),
            "--agent-client-certificate", str(pki / "apiserver-agent-client.crt"),
            "--agent-client-key", str(pki / "apiserver-agent-client.key"),
            "--node-serving-ca-file", str(pki / "node-serving-ca.crt"),
            "--node-serving-ca-key-file", str(pki / "node-serving-ca.key"),
            "--encryption-provider-config", str(pki / "encryption.yaml"),
            "--audit-log-path", str(layout.log_dir / "audit.log"),
            "--metrics-port", str(METRICS_PORTS["apiserver"]),
            *([] if workers is None else ["--workers", str(workers)]),
        ],
        after=["network-online.target", "corral-etcd.service"],
        wants=["network-online.target", "corral-etcd.service"],
        writable=(layout.log_dir,),
    )  # fmt: skip


def agent_unit(
    layout: Layout,
    *,
    server: str,
    node_name: str,
    docker_host: str,
    pod_network: str,
    log_store: str = "",
) -> str:
    """The node agent: it needs Docker, network namespaces and mounts, so no sandboxing."""
    argv = [
        str(layout.corral), "agent", "--server", server,
        "--ca-file", str(layout.etc_dir / "ca.crt"),
        "--node-name", node_name,
        "--data-dir", str(layout.state_dir / "agent"),
        "--docker-host", docker_host,
        "--network", pod_network,
        # Over TLS with the node's serving certificate, once it has one.
        "--metrics-bind-address", f"0.0.0.0:{METRICS_PORTS['agent']}",
    ]  # fmt: skip
    argv += ["--log-store", log_store] if log_store else []
    return _unit(
        "corral node agent",
        argv,
        after=["network-online.target", "docker.service"],
        wants=["network-online.target", "docker.service"],
        # The bootstrap token stays out of the unit file and `ps`.
        extra_service=f"EnvironmentFile=-{layout.agent_env}\n",
        hardening=False,
    )


@dataclass(frozen=True)
class BackupPlan:
    """Where the backup timer writes, how many it keeps, and when it runs."""

    directory: Path = Path("/var/backups/corral")
    keep: int = 7
    # systemd's OnCalendar syntax.
    schedule: str = "daily"


def backup_units(layout: Layout, plan: BackupPlan, etcd: EtcdMember) -> dict[str, str]:
    """A oneshot ``corral backup save`` and the timer that runs it."""
    argv = [
        str(layout.corral), "backup", "save", str(plan.directory),
        "--keep", str(plan.keep),
        "--etcd", etcd.local_client_url,
        *_etcd_client_flags(layout),
        "--pki-dir", str(layout.pki),
    ]  # fmt: skip
    service = "\n".join(
        [
            "[Unit]",
            "Description=corral backup: an etcd snapshot and the cluster's keys",
            "Documentation=https://github.com/corral-dev/corral",
            "After=corral-etcd.service",
            "Wants=corral-etcd.service",
            "",
            "[Service]",
            "Type=oneshot",
            # The directory may be a mount from elsewhere that appears late.
            f"ExecStartPre=/bin/mkdir -p {_command([str(plan.directory)])}",
            f"ExecStart={_command(argv)}",
            "TimeoutStartSec=15min",
            "UMask=0077",
            "",
        ]
    )
    service += _HARDENING + f"ReadWritePaths={_command([str(plan.directory)])}\n"
    timer = "\n".join(
        [
            "[Unit]",
            "Description=corral backup, on a schedule",
            "Documentation=https://github.com/corral-dev/corral",
            "",
            "[Timer]",
            f"OnCalendar={plan.schedule}",
            # Masters of one cluster, and clusters sharing a backup mount,
            # should not all snapshot at the same second.
            "RandomizedDelaySec=15min",
            # A master that was off at the scheduled time backs up when it is back.
            "Persistent=true",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    return {"corral-backup.service": service, "corral-backup.timer": timer}
