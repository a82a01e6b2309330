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
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from corral.client import kubeconfig
from corral.pki import write_private
from corralctl import cluster, etcdmembers, etcdpromote, logstoreunits, units
from corralctl.certbundle import Bundle, BundleError
from corralctl.clusterpki import ClusterPki
from corralctl.context import CliContext
from corralctl.etcdmembers import EtcdCredentials, MemberError
from corralctl.etcdpki import EtcdPki
from corralctl.masterjoin import MasterRecord, fetch
from corralctl.units import EtcdMember, Layout

_MASTER_UNITS = (
    "corral-etcd.service",
    "corral-apiserver.service",
    "corral-controller-manager.service",
    "corral-scheduler.service",
)
_AGENT_UNIT = "corral-agent.service"
_BACKUP_UNITS = ("corral-backup.service", "corral-backup.timer")
_LOG_STORE_UNITS = (logstoreunits.TLS_UNIT, logstoreunits.STORE_UNIT)


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
    master.add_argument(
        "--name",
        default=socket.gethostname(),
        help="this master's etcd member name, unique in the cluster (default: the hostname)",
    )
    _add_join_flags(master)
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
    uninstall.add_argument(
        "--force",
        action="store_true",
        help="leave etcd even when the members left would lose their quorum",
    )
    uninstall.set_defaults(func=run_uninstall, needs_server=False)
    etcdpromote.add_parser(sub)


def _add_join_flags(master: argparse.ArgumentParser) -> None:
    master.add_argument(
        "--join",
        default="",
        metavar="URL",
        help="add this host to the cluster whose API server is URL (corral token create "
        "--master, run on a master, prints the whole command)",
    )
    master.add_argument("--token", default="", help="with --join: a master join token")
    master.add_argument(
        "--certificate-key", default="", help="with --join: opens the uploaded certificates"
    )
    master.add_argument("--ca-file", default="", help="with --join: the cluster CA (ca.crt)")


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


def _prepare_master_pki(etc_dir: Path, args: argparse.Namespace) -> ClusterPki:
    """The cluster's keys (made here, or already there from a bundle) and this master's certs."""
    # prepare_pki keeps its files in <dir>/pki; the configuration dir is that <dir>.
    hosts = cluster.serving_hosts(args.host, [*args.san, args.advertise_address])
    cluster_pki = cluster.prepare_pki(etc_dir, hosts)
    EtcdPki(cluster_pki.root).ensure([args.advertise_address, *args.san, args.host])
    server = f"https://{args.advertise_address}:{args.port}"
    cluster_pki.write_kubeconfigs(server)
    kubeconfig.write(etc_dir / "admin.kubeconfig", cluster_pki.admin_kubeconfig(server))
    return cluster_pki


def _check_master_args(args: argparse.Namespace) -> str | None:
    if args.backup_keep < 1:
        return "--backup-keep: at least 1"
    if args.apiserver_workers is not None and args.apiserver_workers < 1:
        return "--apiserver-workers: at least 1"
    if args.join:
        missing = [f for f in ("token", "certificate_key", "ca_file") if not getattr(args, f)]
        if missing:
            names = ", ".join("--" + m.replace("_", "-") for m in missing)
            return f"--join needs {names} (corral token create --master prints them)"
        if not Path(args.ca_file).is_file():
            return f"--ca-file: {args.ca_file} is not a file"
    elif args.token or args.certificate_key:
        return "--token and --certificate-key belong with --join"
    return None


async def run_install_master(ctx: CliContext, args: argparse.Namespace) -> int:
    del ctx
    layout = _layout(args)
    problem = _check_master_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    etcd = shutil.which("etcd")
    if etcd is None:
        print("error: etcd is not installed (Debian: apt install etcd-server)", file=sys.stderr)
        return 1
    if args.join:
        return await _join_master(layout, args, etcd)
    for directory in (layout.etc_dir, layout.state_dir, layout.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    layout.etc_dir.chmod(0o700)
    _venv(layout)
    _step(f"creating the cluster CA, certificates and keys in {layout.pki}")
    cluster_pki = _prepare_master_pki(layout.etc_dir, args)
    member = EtcdMember(args.name, args.advertise_address, args.host, args.etcd_port)
    _write_master(layout, args, etcd, member, cluster_pki)
    started = _enable([*_MASTER_UNITS, "corral-backup.timer", *_log_store_names(layout)], args)
    admin = layout.etc_dir / "admin.kubeconfig"
    server = f"https://{args.advertise_address}:{args.port}"
    print()
    print(f"admin kubeconfig: {admin}")
    if started:
        print("the control plane is starting; to join a node, run on the master:")
    else:
        print("systemd is not running this machine: start the units' ExecStart lines, then:")
    print(f"  {layout.corral} token create --print-join-command --kubeconfig {admin}")
    print(f"and copy {cluster_pki.ca_cert} to the node; there, run:")
    print(f"  corral install minion --server {server} --ca-file ca.crt --token TOKEN")
    print("to add a master (3 for a quorum that survives losing one), run on this one:")
    print(
        f"  {layout.corral} token create --master --etc-dir {layout.etc_dir} --kubeconfig {admin}"
    )
    return 0


def _log_store_names(layout: Layout) -> list[str]:
    return [n for n in _LOG_STORE_UNITS if (layout.unit_dir / n).exists()]


def _write_master(
    layout: Layout,
    args: argparse.Namespace,
    etcd: str,
    member: EtcdMember,
    cluster_pki: ClusterPki,
    peers: tuple[str, ...] = (),
) -> None:
    """The master's units and its record of itself, for token create --master and uninstall."""
    server = f"https://{args.advertise_address}:{args.port}"
    _write_units(
        layout,
        units.master_units(
            layout,
            etcd_binary=etcd,
            port=args.port,
            etcd=member,
            host=args.host,
            apiserver_workers=args.apiserver_workers,
        ),
    )
    plan = units.BackupPlan(Path(args.backup_dir), args.backup_keep, args.backup_schedule)
    _write_units(layout, units.backup_units(layout, plan, member))
    _write_units(
        layout,
        logstoreunits.units_or_note(layout, cluster_pki, [args.advertise_address, *args.san]),
    )
    MasterRecord(
        server, member.name, member.client_url, member.peer_url, member.local_client_url, peers
    ).write(layout.etc_dir)


async def _join_master(layout: Layout, args: argparse.Namespace, etcd: str) -> int:
    """Fetch the cluster's keys, mint this master's certificates, add its etcd member."""
    if layout.etc_dir.exists() and any(layout.etc_dir.iterdir()):
        print(f"error: {layout.etc_dir} is not empty: is corral installed here already?",
              file=sys.stderr)  # fmt: skip
        return 1
    _step(f"fetching the cluster's keys from {args.join}")
    try:
        bundle = await fetch(
            args.join,
            args.token,
            Path(args.ca_file).read_bytes(),
            args.certificate_key,
            now=datetime.now(UTC),
        )
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    layout.etc_dir.parent.mkdir(parents=True, exist_ok=True)
    # Everything lands here first and moves into place once etcd took the member.
    staging = Path(
        tempfile.mkdtemp(prefix=f".{layout.etc_dir.name}-join-", dir=layout.etc_dir.parent)
    )
    try:
        return await _join_from_staging(layout, args, etcd, bundle, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


async def _join_from_staging(
    layout: Layout, args: argparse.Namespace, etcd: str, bundle: Bundle, staging: Path
) -> int:
    staging.chmod(0o700)
    for name, content in bundle.files.items():
        (staging / "pki" / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(staging / "pki" / name, content)
    _step("minting this master's certificates from the cluster's CAs")
    cluster_pki = _prepare_master_pki(staging, args)
    credentials = etcdpromote.credentials(staging / "pki")
    try:
        members = await etcdmembers.list_members(bundle.etcd_endpoints, credentials)
    except MemberError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    unstarted = [m for m in members if not m.started]
    if unstarted:
        print(f"error: etcd member {unstarted[0].id:x} ({', '.join(unstarted[0].peer_urls)}) "
              "was added but never started: start it, or remove it, before adding another",
              file=sys.stderr)  # fmt: skip
        return 1
    if any(m.name == args.name for m in members):
        print(f"error: --name: the cluster has an etcd member named {args.name} already",
              file=sys.stderr)  # fmt: skip
        return 1
    for directory in (layout.state_dir, layout.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    _venv(layout)
    endpoints = [u for m in members for u in m.client_urls]
    member = EtcdMember(args.name, args.advertise_address, args.host, args.etcd_port)
    _step(f"adding etcd member {member.name} at {member.peer_url}")
    try:
        added, now = await etcdmembers.add_member(endpoints, credentials, member.peer_url)
    except MemberError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    moved = False
    try:
        joined = EtcdMember(
            member.name,
            member.advertise,
            member.listen,
            member.client_port,
            initial_cluster=etcdmembers.initial_cluster(now, member.name, member.peer_url),
        )
        if layout.etc_dir.exists():
            layout.etc_dir.rmdir()
        staging.rename(layout.etc_dir)
        moved = True
        # The certificates' paths are the installed ones from here on.
        cluster_pki = ClusterPki(layout.pki)
        _write_master(layout, args, etcd, joined, cluster_pki, tuple(endpoints))
    except BaseException:
        if moved:
            layout.etc_dir.rename(staging)
            credentials = etcdpromote.credentials(staging / "pki")
        await _undo_member(endpoints, credentials, added.id)
        for name in [*_MASTER_UNITS, *_BACKUP_UNITS, *_LOG_STORE_UNITS]:
            (layout.unit_dir / name).unlink(missing_ok=True)
        raise
    started = _enable([*_MASTER_UNITS, "corral-backup.timer", *_log_store_names(layout)], args)
    print()
    print(f"etcd member {added.id:x} added; the cluster has {len(now)} members now.")
    if not started:
        print("systemd is not running this machine: start the units' ExecStart lines now.")
    print("it joins as a learner: the etcd unit's ExecStartPost (corral etcd-promote) "
          "makes it vote once it has caught up. Should it never start, remove it here "
          "with corral uninstall, or on a master with etcdctl member remove "
          f"{added.id:x}.")  # fmt: skip
    print(f"admin kubeconfig: {layout.etc_dir / 'admin.kubeconfig'}")
    return 0


async def _undo_member(endpoints: list[str], credentials: EtcdCredentials, member_id: int) -> None:
    try:
        await etcdmembers.remove_member(endpoints, credentials, member_id)
        print(f"removed etcd member {member_id:x} again", file=sys.stderr)
    except MemberError as error:
        print(f"error: the install failed after adding etcd member {member_id:x}, and removing "
              f"it failed too ({error}); remove it from a master with: etcdctl member remove "
              f"{member_id:x} (--endpoints, --cacert, --cert, --key of etcd's CA)",
              file=sys.stderr)  # fmt: skip


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


async def _answers(member: etcdmembers.Member, credentials: EtcdCredentials) -> bool:
    return bool(member.client_urls) and await etcdmembers.healthy(
        member.client_urls[0], credentials
    )


async def _leave_etcd(layout: Layout, force: bool) -> str | None:
    """Remove this master's etcd member through a remaining one; why not, if it must not."""
    record = MasterRecord.read(layout.etc_dir)
    if record is None or not (layout.unit_dir / "corral-etcd.service").exists():
        return None
    credentials = etcdpromote.credentials(layout.pki)
    try:
        members = await etcdmembers.list_members(record.etcd_endpoints, credentials)
    except (MemberError, OSError) as error:
        if force or not record.etcd_peers:
            # A master that founded its cluster (joined none) is most often its
            # only one, stopped before an uninstall: say what may be left behind.
            print(f"warning: cannot reach etcd ({error}); if other masters joined this "
                  "one, remove its member on one of them: etcdctl member remove ID")  # fmt: skip
            return None
        return (f"cannot list etcd's members through this master's own ({error}): start its "
                "etcd, or pass --force and remove the member from another master")  # fmt: skip
    me = next((m for m in members if record.etcd_peer_url in m.peer_urls), None)
    others = [m for m in members if m is not me]
    if me is None:
        _step("this master is not an etcd member (removed already)")
        return None
    if not others:
        # The cluster's last member: nothing to leave, the cluster ends with it.
        _step("this master holds the cluster's only etcd member")
        return None
    voters = [m for m in others if not m.learner]
    up = [m for m in voters if await _answers(m, credentials)]
    quorum = len(voters) // 2 + 1
    if not me.learner and len(up) < quorum and not force:
        return (f"removing this member leaves {len(voters)} voting members of which "
                f"{len(up)} answer; etcd needs {quorum} of them. Bring members back first, "
                "or pass --force")  # fmt: skip
    endpoints = [u for m in (up or others) for u in m.client_urls] + record.etcd_endpoints
    if not me.learner:
        await _hand_over_leadership(me, others, {m.id for m in up}, credentials)
    try:
        await etcdmembers.remove_member(endpoints, credentials, me.id)
    except MemberError as error:
        return f"removing etcd member {me.id:x}: {error}"
    _step(f"removed etcd member {me.name} ({me.id:x}); {len(others)} remain")
    return None


async def _hand_over_leadership(
    me: etcdmembers.Member,
    others: list[etcdmembers.Member],
    answering: set[int],
    credentials: EtcdCredentials,
) -> None:
    """If this member leads, make another lead before it leaves (failing costs an election)."""
    try:
        if await etcdmembers.leader_id(me.client_urls, credentials) != me.id:
            return
        target = etcdmembers.transferee(me, others, answering)
        if target is None:
            return
        await etcdmembers.move_leader(me, credentials, target.id)
    except (MemberError, OSError) as error:
        print(f"warning: could not hand etcd's leadership over before leaving ({error}); "
              "the others elect a leader once this member is gone")  # fmt: skip
        return
    _step(f"handed etcd's leadership to {target.name} ({target.id:x})")


async def run_uninstall(ctx: CliContext, args: argparse.Namespace) -> int:
    del ctx
    layout = _layout(args)
    refused = await _leave_etcd(layout, args.force)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    names = [*_MASTER_UNITS, *_BACKUP_UNITS, *_LOG_STORE_UNITS, _AGENT_UNIT]
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
