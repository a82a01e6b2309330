"""Backup and restore: 1,000 objects of mixed kinds come back identical, Secrets readable."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.api.resources import ResourceType
from corral.client.rest import Client
from corral.objects import Obj
from corralctl.clusterpki import ClusterPki
from corralctl.processes import ApiServer, Etcd
from tests.conftest import LocalCluster
from tests.support import resource

pytestmark = [pytest.mark.integration, pytest.mark.slow]


NAMESPACES, CONFIGMAPS, SECRETS = (
    resource("namespaces"),
    resource("configmaps"),
    resource("secrets"),
)
SERVICES, PODS, RCS = resource("services"), resource("pods"), resource("replicationcontrollers")
KINDS = [NAMESPACES, CONFIGMAPS, SECRETS, SERVICES, PODS, RCS]


def _backup(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corralctl.main", "backup", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _objects(index: int, namespace: str) -> list[tuple[ResourceType, Obj]]:
    name = f"o{index}"
    labels = {"app": f"a{index % 7}"}
    container = {"name": "c", "image": "busybox:1"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [container]}}
    choices: list[tuple[ResourceType, Obj]] = [
        (CONFIGMAPS, {"metadata": {"name": name}, "data": {"k": f"v{index}"}}),
        (SECRETS, {"metadata": {"name": name}, "stringData": {"password": f"pw{index}"}}),
        (SERVICES, {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}),
        (PODS, {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [container]}}),
        (RCS, {"metadata": {"name": name}, "spec": {"replicas": 0, "template": template}}),
    ]
    return [choices[index % len(choices)]]


async def _everything(client: Client) -> dict[str, Obj]:
    found: dict[str, Obj] = {}
    for rt in KINDS:
        listed = await client.list(rt, all_namespaces=True)
        for item in listed["items"]:
            found[f"{rt.plural}/{item['metadata']['uid']}"] = item
    return found


async def test_backup_and_restore_round_trip_a_thousand_objects(
    cluster_factory: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    # The key file goes where corral up keeps it, in pki/, so the backup carries it.
    keys = tmp_path / "cluster-0" / "pki" / "encryption.yaml"
    keys.parent.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "controlplane", "encryption", "new-config", "--out", str(keys)],
        check=True,
        capture_output=True,
    )
    source = cluster_factory(apiserver_args=("--encryption-provider-config", str(keys)))
    assert source.pki.encryption_key_file == keys

    async with Client(source.client_config(), max_connections=32) as client:
        namespaces = [f"backup-{i}" for i in range(10)]
        for ns in namespaces:
            await client.create(NAMESPACES, {"metadata": {"name": ns}})
        work = [
            (rt, body, namespaces[i % len(namespaces)])
            for i in range(990)
            for rt, body in _objects(i, namespaces[i % len(namespaces)])
        ]
        for start in range(0, len(work), 50):
            await asyncio.gather(
                *(client.create(rt, body, ns) for rt, body, ns in work[start : start + 50])
            )
        before = await _everything(client)
    assert len(before) >= 1000

    archive = tmp_path / "cluster.backup"
    assert source.etcd is not None
    saved = _backup(
        "save", str(archive), "--etcd", source.etcd.endpoint, "--data-dir", str(source.root)
    )
    assert saved.returncode == 0, saved.stderr
    assert archive.stat().st_mode & 0o077 == 0, "a backup holds keys: owner-only"
    source.stop()

    restored_dir = tmp_path / "restored"
    done = _backup("restore", str(archive), "--data-dir", str(restored_dir))
    assert done.returncode == 0, done.stderr
    again = _backup("restore", str(archive), "--data-dir", str(restored_dir))
    assert again.returncode != 0 and "not empty" in again.stderr

    ports = json.loads((restored_dir / "ports.json").read_text())
    etcd = Etcd(
        restored_dir / "etcd",
        client_port=ports["etcd_client"],
        peer_port=ports["etcd_peer"],
        log_path=tmp_path / "restored-etcd.log",
    )
    etcd.start()
    pki = ClusterPki(restored_dir / "pki")
    api = ApiServer(
        [etcd.endpoint],
        log_path=tmp_path / "restored-apiserver.log",
        pki=pki,
        extra_args=("--encryption-provider-config", str(pki.encryption_key_file)),
    )
    try:
        etcd.wait_ready()
        api.start()
        api.wait_ready()
        restored = LocalCluster(restored_dir, etcd, api, tmp_path / "restored.kubeconfig")
        async with Client(restored.client_config(), max_connections=8) as client:
            after = await _everything(client)
            secret = await client.get(SECRETS, "o1", "backup-1")
    finally:
        api.stop()
        etcd.stop()
    assert set(after) == set(before)
    changed = [key for key in before if before[key] != after[key]]
    assert not changed, changed[:3]
    assert secret["data"]["password"] == "cHcx"  # base64 of "pw1": decrypted with the restored key


def test_restore_refuses_a_damaged_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.backup"
    bogus.write_bytes(b"not a tar file")
    result = _backup("restore", str(bogus), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1 and result.stderr.startswith("error:")


def test_a_directory_of_backups_keeps_exactly_the_newest_n(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """What the installed timer runs: N+3 saves into a directory with --keep N leave N."""
    assert cluster.etcd is not None
    keep = 3
    backups = tmp_path / "backups"
    backups.mkdir()
    # Things of other names in the directory (it may be a shared mount) stay.
    (backups / "notes.txt").write_text("not a backup\n")
    saved: list[str] = []
    for _ in range(keep + 3):
        result = _backup(
            "save", str(backups), "--keep", str(keep), "--etcd", cluster.etcd.endpoint,
            "--pki-dir", str(cluster.root / "pki"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        saved.append(result.stdout.split()[1].rstrip(":"))
    names = sorted(p.name for p in backups.iterdir())
    assert names == sorted([*(Path(s).name for s in saved[-keep:]), "notes.txt"])
    listed = _backup("list", str(backups))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == [Path(s).name for s in saved[-keep:]]
    assert all(line.split()[-1] == "yes" for line in lines[1:]), "the keys went with each"


def test_keep_needs_a_directory(tmp_path: Path) -> None:
    result = _backup("save", str(tmp_path / "one.tar.gz"), "--keep", "2", "--etcd", "http://x")
    assert result.returncode == 1
    assert "--keep needs a directory" in result.stderr
