"""``corral backup save|restore``: an etcd snapshot plus what is needed to use it.

A backup is a tar file (mode 0600) holding ``metadata.json``, ``snapshot.db``
(etcd's own consistent snapshot, streamed from the Maintenance API) and,
with ``--data-dir``, the cluster's ``pki/`` directory: its CA, certificates
and the encryption key, without which the Secrets in the snapshot cannot be
read. Restoring unpacks into a fresh data directory with ``etcdctl snapshot
restore``, which keeps every key's revision, so every object comes back
with the same uid and resourceVersion; ``corral up --data-dir`` then starts
on it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aetcd import rpc

from controlplane import backupset
from controlplane.storage.etcd import EtcdClient, EtcdError, EtcdTLS
from corral.version import VERSION

FORMAT = "corral-backup/v1"
_SNAPSHOT = "snapshot.db"
_METADATA = "metadata.json"
_PKI = "pki"


class BackupError(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _snapshot(
    endpoints: list[str], out: Path, tls: EtcdTLS | None = None
) -> tuple[int, str, int]:
    """Stream etcd's snapshot to ``out``: (revision, sha256, bytes)."""
    client = EtcdClient(endpoints, timeout=30.0, tls=tls)
    digest = hashlib.sha256()
    size = 0
    try:
        revision = await client.current_revision()
        with out.open("wb") as sink:
            async for chunk in client.maintenance.Snapshot(rpc.SnapshotRequest()):
                sink.write(chunk.blob)
                digest.update(chunk.blob)
                size += len(chunk.blob)
    finally:
        await client.close()
    return revision, digest.hexdigest(), size


def _etcd_endpoints(args: argparse.Namespace) -> list[str]:
    if args.etcd:
        return [e.strip() for e in args.etcd.split(",") if e.strip()]
    if args.data_dir:
        ports = Path(args.data_dir) / "ports.json"
        try:
            return [f"http://127.0.0.1:{json.loads(ports.read_text())['etcd_client']}"]
        except (OSError, ValueError, KeyError):
            raise BackupError(f"no etcd found for {args.data_dir}: pass --etcd") from None
    raise BackupError("say which etcd to back up: --etcd URLS or --data-dir D")


def _etcd_tls(args: argparse.Namespace) -> EtcdTLS | None:
    if not args.etcd_cafile:
        if args.etcd_certfile or args.etcd_keyfile:
            raise BackupError("--etcd-certfile and --etcd-keyfile need --etcd-cafile")
        return None
    return EtcdTLS(args.etcd_cafile, args.etcd_certfile or None, args.etcd_keyfile or None)


def _target(args: argparse.Namespace) -> Path:
    """The file to write: FILE itself, or a new timestamped name inside a directory."""
    target = Path(args.file)
    if target.is_dir():
        return target / backupset.new_name(datetime.now(UTC))
    if args.keep is not None:
        raise BackupError(f"--keep needs a directory to keep backups in; {target} is not one")
    return target


def _pki_dir(args: argparse.Namespace) -> Path | None:
    if args.pki_dir:
        return Path(args.pki_dir)
    return Path(args.data_dir) / _PKI if args.data_dir else None


def save(args: argparse.Namespace) -> int:
    if args.keep is not None and args.keep < 1:
        raise BackupError("--keep: at least 1")
    target = _target(args)
    with tempfile.TemporaryDirectory(prefix="corral-backup-") as scratch:
        snapshot = Path(scratch) / _SNAPSHOT
        try:
            revision, sha256, size = asyncio.run(
                _snapshot(_etcd_endpoints(args), snapshot, _etcd_tls(args))
            )
        except (EtcdError, OSError) as error:
            raise BackupError(f"cannot take an etcd snapshot: {error}") from None
        pki = _pki_dir(args)
        metadata = {
            "format": FORMAT,
            "created": datetime.now(UTC).isoformat(),
            "corralVersion": VERSION,
            "etcdRevision": revision,
            "snapshotSha256": sha256,
            "snapshotBytes": size,
            "includesPki": bool(pki and pki.is_dir()),
        }
        partial = target.with_name(target.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            encoded = json.dumps(metadata, indent=2).encode()
            info = tarfile.TarInfo(_METADATA)
            info.size, info.mode = len(encoded), 0o600
            archive.addfile(info, io.BytesIO(encoded))
            archive.add(snapshot, _SNAPSHOT)
            if metadata["includesPki"]:
                assert pki is not None
                archive.add(pki, _PKI)
        os.replace(partial, target)
    keys = ", with the cluster's pki/ (keep it secret)" if metadata["includesPki"] else ""
    print(f"saved {target}: etcd revision {revision}, {size} bytes of snapshot{keys}")
    if args.keep is not None:
        for gone in backupset.prune(target.parent, args.keep):
            print(f"removed {gone} (keeping the newest {args.keep})")
    return 0


def list_backups(args: argparse.Namespace) -> int:
    """A table of the backups in a directory, newest last, each checked as it is read."""
    directory = Path(args.directory)
    if not directory.is_dir():
        raise BackupError(f"{directory} is not a directory")
    rows = [("NAME", "CREATED", "ETCD REVISION", "SIZE", "KEYS")]
    for entry in backupset.entries(directory):
        try:
            with tarfile.open(entry.path, "r:*") as archive:
                metadata = _read_metadata(archive)
            rows.append(
                (
                    entry.path.name,
                    str(metadata.get("created", "")),
                    str(metadata.get("etcdRevision", "")),
                    str(entry.path.stat().st_size),
                    "yes" if metadata.get("includesPki") else "no",
                )
            )
        except (BackupError, OSError, tarfile.TarError) as error:
            rows.append((entry.path.name, f"unreadable: {error}", "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _read_metadata(archive: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = archive.extractfile(_METADATA)
        metadata: dict[str, Any] = json.loads(member.read()) if member else {}
    except (KeyError, ValueError):
        raise BackupError(f"not a corral backup (no readable {_METADATA})") from None
    if metadata.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {metadata.get('format')!r}; expected {FORMAT}")
    return metadata


def restore(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    etcd_dir = data_dir / "etcd"
    if etcd_dir.exists() and any(etcd_dir.iterdir()):
        raise BackupError(f"{etcd_dir} is not empty: restore into a fresh data directory")
    etcdctl = shutil.which("etcdctl")
    if etcdctl is None:
        raise BackupError("etcdctl is not installed (Debian: apt install etcd-client)")
    with tarfile.open(args.file, "r:*") as archive, tempfile.TemporaryDirectory() as scratch:
        metadata = _read_metadata(archive)
        archive.extract(_SNAPSHOT, scratch, filter="data")
        snapshot = Path(scratch) / _SNAPSHOT
        digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
        if digest != metadata.get("snapshotSha256"):
            raise BackupError("the snapshot does not match its checksum: the file is damaged")
        data_dir.mkdir(parents=True, exist_ok=True)
        ports = {"etcd_client": _free_port(), "etcd_peer": _free_port()}
        # An installed master's member keeps its own name and peer URL, so the
        # other masters can join the restored one-member cluster again.
        peer = args.peer_url or f"http://127.0.0.1:{ports['etcd_peer']}"
        name = args.member_name
        result = subprocess.run(
            [
                etcdctl, "snapshot", "restore", str(snapshot),
                "--data-dir", str(etcd_dir),
                "--name", name,
                "--initial-cluster", f"{name}={peer}",
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster-token", "corral-corral",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "ETCDCTL_API": "3"},
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise BackupError(f"etcdctl snapshot restore failed: {result.stderr.strip()}")
        (data_dir / "ports.json").write_text(json.dumps(ports))
        if metadata.get("includesPki") and not (data_dir / _PKI).exists():
            members = [m for m in archive.getmembers() if m.name.startswith(f"{_PKI}/")]
            archive.extractall(data_dir, members=members, filter="data")
            (data_dir / _PKI).chmod(0o700)
    print(f"restored etcd revision {metadata['etcdRevision']} into {etcd_dir}; "
          f"start it with: corral up --data-dir {data_dir}")  # fmt: skip
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="corral backup")
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("save", help="write an etcd snapshot (and the cluster's keys)")
    s.add_argument("file", help="the file to write, or a directory to add a timestamped one to")
    s.add_argument("--etcd", default="", help="etcd URLs, comma-separated")
    s.add_argument("--etcd-cafile", default="", help="etcd's CA, for etcd over TLS")
    s.add_argument("--etcd-certfile", default="", help="a client certificate etcd's CA issued")
    s.add_argument("--etcd-keyfile", default="", help="its key")
    s.add_argument("--data-dir", default="", help="a corral up data directory: its etcd and pki/")
    s.add_argument("--pki-dir", default="", help="the cluster's keys to include (default: D/pki)")
    s.add_argument(
        "--keep", type=int, default=None, help="with a directory: keep only the newest N backups"
    )
    s.set_defaults(run=save)
    ls = commands.add_parser("list", help="the backups in a directory")
    ls.add_argument("directory")
    ls.set_defaults(run=list_backups)
    r = commands.add_parser("restore", help="unpack a backup into a fresh data directory")
    r.add_argument("file")
    r.add_argument("--data-dir", required=True)
    r.add_argument(
        "--member-name",
        default="corral",
        help="the restored etcd member's name (an installed master's: its --name)",
    )
    r.add_argument(
        "--peer-url",
        default="",
        help="its peer URL (an installed master's: "
        "https://ADVERTISE:ETCD_PORT+1); default: a free port on 127.0.0.1 for corral up",
    )
    r.set_defaults(run=restore)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (BackupError, OSError, tarfile.TarError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
