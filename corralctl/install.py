"""``corral install master|minion`` and ``corral uninstall``: corral on an ostree-style host.

Nothing goes under ``/usr`` (read-only on Atomic, Fedora CoreOS, RHEL for
Edge): the program into a virtualenv under ``/var/lib/corral``, the
configuration and keys into ``/etc/corral``, state into ``/var/lib/corral``,
logs into ``/var/log/corral``, and systemd units into ``/etc/systemd/system``.
When systemd runs the machine the units are enabled and started; otherwise
the installer says so and leaves starting them to the caller.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from corral.client import kubeconfig
from corral.pki import write_private
from corralctl import cluster, logstoreunits, units
from corralctl.context import CliContext
from corralctl.units import Layout

_MASTER_UNITS = (
    "corral-etcd.service",
    "corral-apiserver.service",
    "corral-controller-manager.service",
    "corral-scheduler.service",
)
_AGENT_UNIT = "corral-agent.service"
_BACKUP_UNITS = ("corral-backup.service", "corral-backup.timer")


def _source() -> Path:
    """The source tree (or sdist) this corral runs from: what the venv installs."""
    return Path(__file__).resolve().parents[1]


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    layout = argparse.ArgumentParser(add_help=False)
    layout.add_argument("--etc-dir", default="/etc/corral")
    layout.add_argument("--state-dir", default="/var/lib/corral")
    layout.add_argument("--log-dir", default="/var/log/corral")
    layout.add_argument("--unit-dir", default="/etc/systemd/system")
    layout.add_argument(
        "--no-start", action="store_true", help="write the units, do not enable or start them"
    )

    install = sub.add_parser("install", help="install corral as systemd services on this host")
    isub = install.add_subparsers(dest="role", required=True)
    master = isub.add_parser("master", parents=[layout], help="etcd and the control plane")
    master.add_argument("--host", default="0.0.0.0", help="the API server's listen address")
    master.add_argument("--port", type=int, default=6443)
    master.add_argument("--etcd-port", type=int, default=2379, help="and this + 1 for peers")
    master.add_argument(
        "--apiserver-workers",
        type=int,
        default=None,
        metavar="N",
        help="processes the API server runs on its port (default: one per usable core)",
    )
    master.add_argument("--san", action="append", default=[], help="another name for the API")
    master.add_argument(
        "--advertise-address",
        default=socket.gethostname(),
        help="the name or address nodes reach the API at (default: the hostname)",
    )
    defaults = units.BackupPlan()
    master.add_argument(
        "--backup-dir",
        default=str(defaults.directory),
        help="where the backup timer writes; may be a mount (default: %(default)s)",
    )
    master.add_argument(
        "--backup-keep",
        type=int,
        default=defaults.keep,
        help="how many backups the timer keeps (default: %(default)s)",
    )
    master.add_argument(
        "--backup-schedule",
        default=defaults.schedule,
        help="when the timer runs, in systemd's OnCalendar syntax (default: %(default)s)",
    )
    master.set_defaults(func=run_install_master, needs_server=False)
    minion = isub.add_parser("minion", parents=[layout], help="a node agent joining a master")
    minion.add_argument("--server", required=True, help="the master's API URL")
    minion.add_argument("--token", required=True, help="a join token: corral token create")
    minion.add_argument("--ca-file", required=True, help="the cluster CA (the master's ca.crt)")
    minion.add_argument("--node-name", default=socket.gethostname())
    minion.add_argument("--docker-host", default="unix:///var/run/docker.sock")
    minion.add_argument("--pod-network", choices=("bridge", "none"), default="bridge")
    minion.add_argument(
        "--log-store",
        default="",
        help="where the agent ships container logs (default: the master's log store "
        "on port 19532; none: keep them on the node)",
    )
    minion.set_defaults(func=run_install_minion, needs_server=False)

    uninstall = sub.add_parser("uninstall", parents=[layout], help="remove what install added")
    uninstall.add_argument(
        "--purge", action="store_true", help="also remove state: etcd data, keys, pod data"
    )
    uninstall.set_defaults(func=run_uninstall, needs_server=False)


def _layout(args: argparse.Namespace) -> Layout:
    return Layout(
        etc_dir=Path(args.etc_dir),
        state_dir=Path(args.state_dir),
        log_dir=Path(args.log_dir),
        unit_dir=Path(args.unit_dir),
    )


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _venv(layout: Layout) -> None:
    """A virtualenv with corral and its dependencies, under the state directory."""
    if not (layout.venv / "bin" / "python").exists():
        _step(f"creating {layout.venv}")
        subprocess.run([sys.executable, "-m", "venv", str(layout.venv)], check=True)
    _step(f"installing corral from {_source()} into it")
    # The versions CI tested (constraints.txt), so a master and its minions agree.
    pins = _source() / "constraints.txt"
    pip = [str(layout.venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--constraint", str(pins), str(_source())], check=True)


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def _enable(names: list[str], args: argparse.Namespace) -> bool:
    if args.no_start or not _systemd_running():
        return False
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    subprocess.run(["systemctl", "enable", "--now", *names], check=True)
    return True


def _systemctl(*argv: str) -> None:
    subprocess.run(["systemctl", *argv], check=False)


def _write_units(layout: Layout, found: dict[str, str]) -> None:
    layout.unit_dir.mkdir(parents=True, exist_ok=True)
    for name, text in found.items():
        (layout.unit_dir / name).write_text(text)
        _step(f"wrote {layout.unit_dir / name}")


async def run_install_master(ctx: CliContext, args: argparse.Namespace) -> int:
    del ctx
    layout = _layout(args)
    etcd = shutil.which("etcd")
    if etcd is None:
        print("error: etcd is not installed (Debian: apt install etcd-server)", file=sys.stderr)
        return 1
    for directory in (layout.etc_dir, layout.state_dir, layout.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    layout.etc_dir.chmod(0o700)
    _venv(layout)
    _step(f"creating the cluster CA, certificates and keys in {layout.pki}")
    # prepare_pki keeps its files in <dir>/pki; the configuration dir is that <dir>.
    hosts = cluster.serving_hosts(args.host, [*args.san, args.advertise_address])
    cluster_pki = cluster.prepare_pki(layout.etc_dir, hosts)
    server = f"https://{args.advertise_address}:{args.port}"
    cluster_pki.write_kubeconfigs(server)
    admin = layout.etc_dir / "admin.kubeconfig"
    kubeconfig.write(admin, cluster_pki.admin_kubeconfig(server))
    if args.backup_keep < 1:
        print("error: --backup-keep: at least 1", file=sys.stderr)
        return 1
    if args.apiserver_workers is not None and args.apiserver_workers < 1:
        print("error: --apiserver-workers: at least 1", file=sys.stderr)
        return 1
    _write_units(
        layout,
        units.master_units(
            layout,
            etcd_binary=etcd,
            port=args.port,
            etcd_port=args.etcd_port,
            host=args.host,
            apiserver_workers=args.apiserver_workers,
        ),
    )
    plan = units.BackupPlan(Path(args.backup_dir), args.backup_keep, args.backup_schedule)
    _write_units(layout, units.backup_units(layout, plan, args.etcd_port))
    log_store = logstoreunits.units_or_note(
        layout, cluster_pki, [args.advertise_address, *args.san]
    )
    _write_units(layout, log_store)
    # The timer is enabled, not the service: it starts the service on schedule.
    started = _enable([*_MASTER_UNITS, "corral-backup.timer", *log_store], args)
    print()
    print(f"admin kubeconfig: {admin}")
    if started:
        print("the control plane is starting; to join a node, run on the master:")
    else:
        print("systemd is not running this machine: start the units' ExecStart lines, then:")
    print(f"  {layout.corral} token create --print-join-command --kubeconfig {admin}")
    print(f"and copy {cluster_pki.ca_cert} to the node; there, run:")
    print(f"  corral install minion --server {server} --ca-file ca.crt --token TOKEN")
    return 0


async def run_install_minion(ctx: CliContext, args: argparse.Namespace) -> int:
    del ctx
    layout = _layout(args)
    for directory in (layout.etc_dir, layout.state_dir):
        directory.mkdir(parents=True, exist_ok=True)
    layout.etc_dir.chmod(0o700)
    _venv(layout)
    shutil.copyfile(args.ca_file, layout.etc_dir / "ca.crt")
    write_private(layout.agent_env, f"CORRAL_BOOTSTRAP_TOKEN={args.token}\n".encode())
    _step(f"wrote {layout.agent_env} (the join token, root only)")
    _write_units(
        layout,
        {
            _AGENT_UNIT: units.agent_unit(
                layout,
                server=args.server,
                node_name=args.node_name,
                docker_host=args.docker_host,
                pod_network=args.pod_network,
                log_store=logstoreunits.agent_store_url(args.server, args.log_store),
            )
        },
    )
    if _enable([_AGENT_UNIT], args):
        print(f"the agent is starting; `corral get nodes` on the master shows {args.node_name}")
    else:
        print("systemd is not running this machine: start the unit's ExecStart line yourself")
    return 0


async def run_uninstall(ctx: CliContext, args: argparse.Namespace) -> int:
    del ctx
    layout = _layout(args)
    log_store = [logstoreunits.TLS_UNIT, logstoreunits.STORE_UNIT]
    names = [*_MASTER_UNITS, *_BACKUP_UNITS, *log_store, _AGENT_UNIT]
    present = [n for n in names if (layout.unit_dir / n).exists()]
    managed = bool(present) and _systemd_running() and not args.no_start
    if managed:
        _systemctl("disable", "--now", *present)
    for name in present:
        (layout.unit_dir / name).unlink()
        _step(f"removed {layout.unit_dir / name}")
    if managed:
        _systemctl("daemon-reload")
    shutil.rmtree(layout.venv, ignore_errors=True)
    _step(f"removed {layout.venv}")
    if args.purge:
        for directory in (layout.etc_dir, layout.state_dir, layout.log_dir):
            shutil.rmtree(directory, ignore_errors=True)
            _step(f"removed {directory}")
    else:
        print(f"kept {layout.etc_dir}, {layout.state_dir} and {layout.log_dir} "
              "(keys, etcd data, logs); --purge removes them")  # fmt: skip
    return 0
